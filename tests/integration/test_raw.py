"""Raw sockets across the router: hand-built ICMP/ICMPv6 and a custom IP protocol.

The primer: raw sockets "provide users access to the underlying communication protocols
... mainly for those interested in developing new communication protocols".
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time

import pytest
from conditions import CONDITIONS, impair_counts, impaired

from netbed.host import Host, Router
from netbed.remote_socket import RemoteSocket

#: IP protocol number 253: "use for experimentation and testing" (RFC 3692).
EXPERIMENTAL_PROTO = 253
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement sum of 16-bit words, complemented."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(kind: int, ident: int, seq: int, payload: bytes, checksum: bool = True) -> bytes:
    """An ICMP(v6) echo request: type, code 0, checksum, identifier, sequence, payload."""
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if not checksum:
        return header + payload
    csum = internet_checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


def icmpv6_checksum_ok(message: bytes, src: str, dst: str) -> bool:
    """Whether an ICMPv6 message's checksum (over the IPv6 pseudo-header) verifies."""
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
              + struct.pack("!I3xB", len(message), socket.IPPROTO_ICMPV6))
    return internet_checksum(pseudo + message) == 0


def await_echo_reply(sock: RemoteSocket, kind: int, ident: int, has_ip_header: bool,
                     timeout: float = 5.0) -> tuple[bytes, bytes]:
    """(IP header or b"", ICMP message) of the first echo reply with our identifier."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no echo reply with id {ident} within {timeout:g} s")
        data, _addr = sock.recvfrom(65536, timeout=remaining)
        header = b""
        if has_ip_header:
            ihl = (data[0] & 0x0F) * 4
            header, data = data[:ihl], data[ihl:]
        if len(data) >= 8:
            rtype, _code, _csum, rid, _seq = struct.unpack("!BBHHH", data[:8])
            if rtype == kind and rid == ident:
                return header, data


def forwarded(router: Router, family: int) -> int:
    return int(router.counters()["ipv6_forwarded" if family == socket.AF_INET6 else "ipv4_forwarded"])


@pytest.mark.property("raw: hand-built ICMP echo crosses the router and is answered")
def test_icmp_echo_answered_one_hop_away(client: Host, server: Host, router: Router) -> None:
    """An ICMP echo request built by hand (header + RFC 1071 checksum) on a SOCK_RAW IPPROTO_ICMP
    socket is answered by the server's kernel; the reply's checksum verifies, its payload is
    ours, and its TTL is the server's default TTL minus 1: exactly one router hop."""
    sock = client.socket(socket.AF_INET, socket.SOCK_RAW, "IPPROTO_ICMP")
    ident = random.randrange(1, 0xFFFF)
    payload = b"netbed raw echo " + bytes(range(32))
    before = forwarded(router, socket.AF_INET)
    sock.sendto(echo_request(ICMP_ECHO_REQUEST, ident, 1, payload), (server.ipv4, 0))
    header, reply = await_echo_reply(sock, ICMP_ECHO_REPLY, ident, has_ip_header=True)
    assert internet_checksum(reply) == 0, "reply checksum does not verify"
    assert reply[8:] == payload
    assert socket.inet_ntoa(header[12:16]) == server.ipv4
    ttl = header[8]
    assert ttl == int(server.sysctl("net.ipv4.ip_default_ttl")) - 1, f"TTL {ttl}: not one hop away"
    assert forwarded(router, socket.AF_INET) - before >= 2, "request and reply must both be forwarded"


@pytest.mark.property("raw: hand-built ICMP echo crosses the router and is answered")
def test_icmpv6_echo_answered(client: Host, server: Host, router: Router) -> None:
    """An ICMPv6 echo request on a SOCK_RAW IPPROTO_ICMPV6 socket, checksum left 0 (the kernel
    fills in ICMPv6 checksums for raw sockets, over the pseudo-header), is answered across
    the router; the reply's checksum verifies over the IPv6 pseudo-header."""
    sock = client.socket(socket.AF_INET6, socket.SOCK_RAW, "IPPROTO_ICMPV6")
    ident = random.randrange(1, 0xFFFF)
    payload = b"netbed raw echo6 " + bytes(range(32))
    before = forwarded(router, socket.AF_INET6)
    sock.sendto(echo_request(ICMPV6_ECHO_REQUEST, ident, 1, payload, checksum=False), (server.ipv6, 0))
    _none, reply = await_echo_reply(sock, ICMPV6_ECHO_REPLY, ident, has_ip_header=False)
    assert reply[8:] == payload
    assert icmpv6_checksum_ok(reply, server.ipv6, client.ipv6)
    assert forwarded(router, socket.AF_INET6) - before >= 2, "request and reply must both be forwarded"


def proto_pair(client: Host, server: Host, family: int) -> tuple[RemoteSocket, RemoteSocket]:
    """(client, server) raw sockets for the experimental protocol 253."""
    return (client.socket(family, socket.SOCK_RAW, EXPERIMENTAL_PROTO),
            server.socket(family, socket.SOCK_RAW, EXPERIMENTAL_PROTO))


def receive_proto(sock: RemoteSocket, family: int, timeout: float = 5.0) -> tuple[bytes, tuple[str, int]]:
    """(payload, sender address) of one protocol-253 packet; IPv4 raw sockets include the header."""
    data, address = sock.recvfrom(65536, timeout=timeout)
    if family == socket.AF_INET:
        assert data[9] == EXPERIMENTAL_PROTO
        data = data[(data[0] & 0x0F) * 4:]
    return data, address


@pytest.mark.property("raw: custom IP protocol 253 delivered, no ports")
@pytest.mark.parametrize("family", FAMILIES)
def test_custom_protocol_reaches_server(client: Host, server: Host, router: Router, family: int) -> None:
    """A packet of IP protocol 253 sent from a raw socket on the client reaches a raw socket for
    protocol 253 on the server, via the router; the sender's address carries port 0 (this
    layer has no ports)."""
    cli, srv = proto_pair(client, server, family)
    before = forwarded(router, family)
    cli.sendto(b"protocol 253 says hi", (server.address(family), 0))
    data, address = receive_proto(srv, family)
    assert data == b"protocol 253 says hi"
    assert address == (client.address(family), 0)
    assert forwarded(router, family) - before >= 1


@pytest.mark.property("raw: router impairments apply to any IP protocol")
@pytest.mark.condition("partition")
def test_partition_stops_custom_protocol(client: Host, server: Host, router: Router) -> None:
    """Protocol 253 is impaired like TCP/UDP: under a partition nothing reaches the server (the
    router counts the drops); once the partition is lifted packets flow again."""
    cli, srv = proto_pair(client, server, socket.AF_INET)
    with impaired(router, CONDITIONS["partition"]):
        for i in range(3):
            cli.sendto(f"during partition {i}".encode(), (server.ipv4, 0))
        with pytest.raises(TimeoutError):
            srv.recvfrom(65536, timeout=1.0)
        dropped = impair_counts(router).get("dropped", 0)
    assert dropped >= 3, f"router dropped {dropped} packets, expected the 3 sent"
    cli.sendto(b"after partition", (server.ipv4, 0))
    assert receive_proto(srv, socket.AF_INET)[0] == b"after partition"
