"""Ports across the router: which socket a packet reaches, and what happens when none does.

The primer: "A port is a logical identifier assigned to a process in order to identify
that process uniquely ... Not all the network protocol uses a port for communication. For
example, ICMP doesn't use a port ... A client computer is requesting the server for a
virtual connection with the port number 23."

Also the harness's answers to bad input: a non-existent address, a port outside 0-65535,
an unknown socket option -- each a clear error, never a hang.
"""

from __future__ import annotations

import errno
import random
import socket
import struct
import time

import pytest

from netbed.errors import AgentError, RemoteOSError
from netbed.host import Host, Router
from netbed.measure import arrivals_from
from netbed.remote_socket import RemoteSocket

TELNET_PORT = 23
CONCURRENT_CONNECTIONS = 50


def listen_tcp(server: Host, port: int = 0, reuseaddr: bool = False,
               family: int = socket.AF_INET) -> tuple[RemoteSocket, int]:
    """A listening TCP socket on the server and its port."""
    sock = server.socket(family, socket.SOCK_STREAM)
    if reuseaddr:
        sock.setsockopt("SOL_SOCKET", "SO_REUSEADDR", 1)
    bound = int(sock.bind(("", port))[1])
    sock.listen()
    return sock, bound


def closed_port(server: Host, kind: int) -> int:
    """A port with no socket of `kind` on the server (bound once, then closed; never listened)."""
    probe = server.socket(socket.AF_INET, kind)
    port = int(probe.bind(("", 0))[1])
    probe.close()
    return port


@pytest.mark.property("ports: each port reaches its own socket")
def test_ports_reach_distinct_sockets(client: Host, server: Host) -> None:
    """Two listeners on two server ports: a connection to each port is accepted by that port's
    socket (peer = that client socket), and bytes sent on it are read there and nowhere else."""
    listeners = [listen_tcp(server) for _ in range(2)]
    clients = []
    for _listener, port in listeners:
        cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.connect((server.ipv4, port))
        clients.append(cli)
    for (listener, port), cli in zip(listeners, clients, strict=True):
        conn, peer = listener.accept(timeout=5)
        assert peer == (client.ipv4, cli.getsockname()[1])
        assert conn.getsockname()[1] == port
        cli.sendall(f"for port {port}".encode())
        assert conn.recv(100, timeout=5) == f"for port {port}".encode()
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0.2)  # nothing else queued on this port


@pytest.mark.property("ports: TCP and UDP port numbers are independent")
def test_same_number_tcp_and_udp_are_independent(client: Host, server: Host) -> None:
    """TCP and UDP have separate port spaces: one number bound by both is two services; closing
    the TCP one leaves the UDP one answering and makes TCP refuse."""
    tcp, port = listen_tcp(server)
    tcp.echo()
    udp = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert udp.bind(("", port))[1] == port  # same number, no EADDRINUSE
    udp.echo()
    stream = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    stream.connect((server.ipv4, port))
    stream.sendall(b"over TCP")
    assert stream.recv(100, timeout=5) == b"over TCP"
    dgram = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dgram.sendto(b"over UDP", (server.ipv4, port))
    assert dgram.recvfrom(100, timeout=5) == (b"over UDP", (server.ipv4, port))
    tcp.close()
    with pytest.raises(OSError) as info:
        client.socket(socket.AF_INET, socket.SOCK_STREAM).connect((server.ipv4, port))
    assert info.value.errno == errno.ECONNREFUSED
    dgram.sendto(b"still here?", (server.ipv4, port))
    assert dgram.recvfrom(100, timeout=5)[0] == b"still here?"


@pytest.mark.property("ports: well-known port 23 answers (the primer's example)")
def test_service_on_port_23(client: Host, server: Host) -> None:
    """A service bound to the well-known telnet port 23 on the server accepts a client's
    connection to port 23 and answers it (an echo service stands in for telnetd)."""
    listener, port = listen_tcp(server, TELNET_PORT, reuseaddr=True)
    assert port == TELNET_PORT
    listener.echo()
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.connect((server.ipv4, TELNET_PORT))
    assert cli.getpeername() == (server.ipv4, TELNET_PORT)
    cli.sendall(b"login: guest\r\n")
    assert cli.recv(100, timeout=5) == b"login: guest\r\n"


@pytest.mark.property("ports: closed port refuses (TCP reset / ICMP port unreachable)")
def test_closed_tcp_port_refuses(client: Host, server: Host) -> None:
    """A TCP connection to a port with no listener fails with ECONNREFUSED: the server's kernel
    answered with a reset (its Tcp OutRsts counter rises)."""
    port = closed_port(server, socket.SOCK_STREAM)
    before = server.snmp()["Tcp"]["OutRsts"]
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        cli.connect((server.ipv4, port), timeout=5)
    assert info.value.errno == errno.ECONNREFUSED
    assert server.snmp()["Tcp"]["OutRsts"] > before


@pytest.mark.property("ports: closed port refuses (TCP reset / ICMP port unreachable)")
def test_closed_udp_port_answers_port_unreachable(client: Host, server: Host) -> None:
    """A datagram to a UDP port with no socket is answered with ICMP port unreachable: the
    server's Udp NoPorts counter rises, the client receives an ICMP destination unreachable,
    and a connected client socket reports ECONNREFUSED."""
    port = closed_port(server, socket.SOCK_DGRAM)
    server_before = server.snmp()["Udp"]["NoPorts"]
    client_before = client.snmp()["Icmp"]["InDestUnreachs"]
    cli = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.connect((server.ipv4, port))
    cli.send(b"hello?")
    with pytest.raises(OSError) as info:
        cli.recv(100, timeout=5)
    assert info.value.errno == errno.ECONNREFUSED
    assert server.snmp()["Udp"]["NoPorts"] > server_before
    assert client.snmp()["Icmp"]["InDestUnreachs"] > client_before


@pytest.mark.property("ports: concurrent connections told apart by client ephemeral port")
def test_concurrent_connections_distinct(client: Host, server: Host) -> None:
    """50 simultaneous connections from one client to ONE server port are 50 distinct sockets:
    the server tells them apart by the client's source port, all different and all inside the
    client's net.ipv4.ip_local_port_range; each connection carries its own bytes."""
    listener, port = listen_tcp(server)
    low, high = (int(x) for x in client.sysctl("net.ipv4.ip_local_port_range").split())
    clients = []
    for _ in range(CONCURRENT_CONNECTIONS):
        cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.connect((server.ipv4, port))
        clients.append(cli)
    by_port: dict[int, RemoteSocket] = {}
    for _ in clients:
        conn, peer = listener.accept(timeout=5)
        assert conn.getsockname() == (server.ipv4, port)
        by_port[peer[1]] = conn
    local_ports = [cli.getsockname()[1] for cli in clients]
    assert len(set(local_ports)) == CONCURRENT_CONNECTIONS
    assert set(by_port) == set(local_ports)
    assert all(low <= p <= high for p in local_ports), f"ports outside {low}-{high}: {local_ports}"
    for i, cli in enumerate(clients):
        cli.sendall(f"connection {i}".encode())
    for i, cli in enumerate(clients):
        assert by_port[cli.getsockname()[1]].recv(100, timeout=5) == f"connection {i}".encode()


@pytest.mark.property("ports: bind twice -> EADDRINUSE; SO_REUSEADDR / SO_REUSEPORT")
@pytest.mark.parametrize("kind", [pytest.param(socket.SOCK_STREAM, id="tcp"),
                                  pytest.param(socket.SOCK_DGRAM, id="udp")])
def test_bind_twice_fails(server: Host, kind: int) -> None:
    """Binding a second socket to a port already bound (same protocol) fails with EADDRINUSE."""
    first = server.socket(socket.AF_INET, kind)
    port = first.bind(("", 0))[1]
    if kind == socket.SOCK_STREAM:
        first.listen()
    second = server.socket(socket.AF_INET, kind)
    with pytest.raises(OSError) as info:
        second.bind(("", port))
    assert info.value.errno == errno.EADDRINUSE


def _time_wait_on(server: Host, port: int, timeout: float = 5.0) -> bool:
    """Whether a TCP socket on the server's local `port` reaches TIME_WAIT within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, out = server.exec(["ss", "-Htn", "state", "time-wait", f"( sport = :{port} )"])
        if code == 0 and out.strip():
            return True
    return False


@pytest.mark.property("ports: bind twice -> EADDRINUSE; SO_REUSEADDR / SO_REUSEPORT")
def test_reuseaddr_rebinds_port_in_time_wait(client: Host, server: Host) -> None:
    """After the server closes a connection first, its port sits in TIME_WAIT: a new bind to it
    fails with EADDRINUSE without SO_REUSEADDR and succeeds (and listens) with it.  A port with
    a live listener stays EADDRINUSE even with SO_REUSEADDR (Linux semantics)."""
    listener, port = listen_tcp(server, reuseaddr=True)
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.connect((server.ipv4, port))
    conn, _ = listener.accept(timeout=5)
    rival = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    rival.setsockopt("SOL_SOCKET", "SO_REUSEADDR", 1)
    with pytest.raises(OSError) as live:
        rival.bind(("", port))
    assert live.value.errno == errno.EADDRINUSE, "SO_REUSEADDR must not share a live listener's port"
    conn.close()  # the server closes first ...
    assert cli.recv(100, timeout=5) == b""
    cli.close()  # ... so its side ends in TIME_WAIT
    listener.close()
    assert _time_wait_on(server, port), "the server's side never reached TIME_WAIT"
    plain = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        plain.bind(("", port))
    assert info.value.errno == errno.EADDRINUSE
    reuse = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    reuse.setsockopt("SOL_SOCKET", "SO_REUSEADDR", 1)
    assert reuse.bind(("", port))[1] == port
    reuse.listen()


@pytest.mark.property("ports: bind twice -> EADDRINUSE; SO_REUSEADDR / SO_REUSEPORT")
def test_reuseport_shares_a_port(client: Host, server: Host) -> None:
    """Two UDP sockets with SO_REUSEPORT bind the same port (a third without it cannot), and the
    kernel spreads datagrams from 20 client sockets over both; every datagram is read once."""
    sharers = []
    port = 0
    for _ in range(2):
        sock = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt("SOL_SOCKET", "SO_REUSEPORT", 1)
        port = sock.bind(("", port))[1]
        sharers.append(sock)
    outsider = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as info:
        outsider.bind(("", port))
    assert info.value.errno == errno.EADDRINUSE
    senders = 20
    jobs = [s.start_recv_sequence(duration_s=5, idle_s=0.5) for s in sharers]
    for i in range(senders):
        client.socket(socket.AF_INET, socket.SOCK_DGRAM).send_sequence(
            1, address=(server.ipv4, port), first_seq=i)
    received = [[a.seq for a in arrivals_from(job.wait(timeout=10)["arrivals"])] for job in jobs]
    assert sorted(received[0] + received[1]) == list(range(senders))
    assert all(received), f"one socket got everything: {received}"


@pytest.mark.property("ports: ICMP has no ports")
def test_icmp_has_no_port(client: Host, server: Host, router: Router) -> None:
    """ICMP reaches a host, not a port: the 8-byte echo header (type, code, checksum, id, seq)
    has no port field; the server's kernel answers it with no socket of ours bound anywhere,
    and a raw ICMP socket on the server sees the request with the sender's port as 0."""
    watcher = server.socket(socket.AF_INET, socket.SOCK_RAW, "IPPROTO_ICMP")  # not bound to anything
    sock = client.socket(socket.AF_INET, socket.SOCK_RAW, "IPPROTO_ICMP")
    ident = random.randrange(1, 0xFFFF)
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    csum = _checksum(header)
    sock.sendto(struct.pack("!BBHHH", 8, 0, csum, ident, 1), (server.ipv4, 0))
    seen = _icmp_with_id(watcher, 8, ident)
    assert seen[1] == (client.ipv4, 0)
    reply = _icmp_with_id(sock, 0, ident)
    assert reply[1] == (server.ipv4, 0)


def _checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _icmp_with_id(sock: RemoteSocket, kind: int, ident: int, timeout: float = 5.0) -> tuple[bytes, object]:
    """(ICMP message, sender address) of the first ICMP `kind` message with identifier `ident`."""
    deadline = time.monotonic() + timeout
    while True:
        data, address = sock.recvfrom(65536, timeout=max(0.05, deadline - time.monotonic()))
        icmp = data[(data[0] & 0x0F) * 4:]
        if len(icmp) >= 8 and icmp[0] == kind and struct.unpack("!H", icmp[4:6])[0] == ident:
            return icmp, address


# -- bad input: clear errors, never a hang ---------------------------------------------------
@pytest.mark.property("bad input: clear error, no hang")
def test_connect_to_absent_address_fails_fast(client: Host) -> None:
    """Connecting to an unused address on the client's own subnet (.99: on-link, nobody there)
    fails within the 3 s timeout -- EHOSTUNREACH once ARP gives up, or the operation's
    timeout -- instead of hanging."""
    absent = client.ipv4.rsplit(".", 1)[0] + ".99"
    assert "routes" in client.route_get(absent)
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        cli.connect((absent, 80), timeout=3.0)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError) or info.value.errno in (errno.EHOSTUNREACH, errno.ETIMEDOUT)
    assert "connect" in str(info.value)
    assert elapsed < 4.0, f"took {elapsed:.1f} s"


@pytest.mark.property("bad input: clear error, no hang")
@pytest.mark.parametrize("port", [65536, 70000, -1])
def test_port_out_of_range_is_named(client: Host, server: Host, port: int) -> None:
    """A port outside 0-65535 is refused by the harness with a message naming the port, for
    connect, bind and sendto alike (no kernel call is made)."""
    stream = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    dgram = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for call in (lambda: stream.connect((server.ipv4, port)), lambda: dgram.bind(("", port)),
                 lambda: dgram.sendto(b"x", (server.ipv4, port))):
        with pytest.raises(AgentError) as info:
            call()
        assert info.value.kind == "bad_request"
        assert str(port) in str(info.value) and "0-65535" in str(info.value)


@pytest.mark.property("bad input: clear error, no hang")
def test_unknown_socket_option_is_named(client: Host) -> None:
    """An option name the harness does not know fails with a message naming it; a number the
    kernel does not know fails with the kernel's ENOPROTOOPT."""
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(AgentError) as named:
        sock.setsockopt("SOL_SOCKET", "SO_NO_SUCH_OPTION", 1)
    assert "SO_NO_SUCH_OPTION" in str(named.value)
    with pytest.raises(RemoteOSError) as numbered:
        sock.setsockopt("SOL_SOCKET", 9999, 1)
    assert numbered.value.errno == errno.ENOPROTOOPT
