"""Sequenced-packet sockets (SOCK_SEQPACKET): records kept, reliable, ordered.

The primer: "similar to a stream socket, with the exception that record boundaries are
preserved".  Two transports:

* AF_UNIX between the client and server hosts, through a socket file in the directory both
  see (testbed.shared_dir: the volume both containers mount at /run/netbed-unix, or a directory
  of the machine for network-namespace hosts; every kernel has it; it does not cross the router);
* SCTP across the router (SOCK_SEQPACKET over IP needs it), skipped where the kernel has
  no SCTP.
"""

from __future__ import annotations

import errno
import socket
import uuid
from collections.abc import Iterator

import pytest
from conditions import Condition, impaired, params

from netbed.errors import RemoteOSError
from netbed.host import Host, Router
from netbed.measure import arrivals_from
from netbed.pytest_plugin import AnyTestbed
from netbed.remote_socket import RemoteSocket

#: Record sizes, bytes: from one byte to a record larger than a TCP segment.
RECORD_SIZES = [1, 3, 100, 1000, 9000, 60000]


def record(size: int, tag: int) -> bytes:
    return bytes((tag * 31 + i) % 251 for i in range(size))


@pytest.fixture
def unix_pair(testbed: AnyTestbed, client: Host, server: Host) -> Iterator[tuple[RemoteSocket, RemoteSocket]]:
    """(client socket, server's accepted socket) of an AF_UNIX SOCK_SEQPACKET connection made
    through the directory both hosts see; the socket file is removed afterwards."""
    path = f"{testbed.shared_dir}/seqpacket-{uuid.uuid4().hex[:12]}.sock"
    listener = server.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    try:
        listener.listen()
        cli = client.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cli.connect(path, timeout=5)
        conn, _peer = listener.accept(timeout=5)
        yield cli, conn
    finally:
        server.exec(["rm", "-f", path])


@pytest.mark.property("seqpacket (AF_UNIX): records kept")
def test_unix_records_kept(unix_pair: tuple[RemoteSocket, RemoteSocket]) -> None:
    """Records of 1 B .. 60000 B, all queued before the first read, come back one record per
    read, each exactly as written (a stream would run them together)."""
    cli, conn = unix_pair
    records = [record(size, i) for i, size in enumerate(RECORD_SIZES)]
    for rec in records:
        assert cli.send(rec) == len(rec)
    for rec in records:
        assert conn.recv(100_000, timeout=5) == rec


@pytest.mark.property("seqpacket (AF_UNIX): reliable, in order")
def test_unix_reliable_in_order(unix_pair: tuple[RemoteSocket, RemoteSocket]) -> None:
    """2000 sequence-numbered records sent flat out all arrive, each once, in sending order,
    intact (the sender blocks instead of dropping when the receiver falls behind)."""
    cli, conn = unix_pair
    count = 2000
    receiver = conn.start_recv_sequence(duration_s=20, expect=count, idle_s=2.0)
    sent = cli.send_sequence(count, size=200, timeout=20)
    got = receiver.wait(timeout=25)
    assert sent["sent"] == count and not sent["errors"]
    arrivals = arrivals_from(got["arrivals"])
    assert [a.seq for a in arrivals] == list(range(count))
    assert all(a.size_bytes == 200 and a.crc_ok for a in arrivals)


@pytest.mark.property("seqpacket (AF_UNIX): long record truncated, not split")
def test_unix_long_record_truncated(unix_pair: tuple[RemoteSocket, RemoteSocket]) -> None:
    """A 1000-byte record read with a 100-byte buffer yields its first 100 bytes with MSG_TRUNC
    set; the other 900 bytes are discarded: the next read returns the NEXT record."""
    cli, conn = unix_pair
    long_record = record(1000, 9)
    cli.send(long_record)
    cli.send(b"next record")
    message = conn.recvmsg(100, timeout=5)
    assert message.data == long_record[:100]
    assert message.truncated and message.msg_flags & socket.MSG_TRUNC
    assert conn.recv(100_000, timeout=5) == b"next record"


# -- over IP: SCTP across the router ------------------------------------------------------------
SCTP_MISSING = "kernel has no SCTP (CONFIG_IP_SCTP not set): SOCK_SEQPACKET over IP needs it"


@pytest.fixture
def sctp(client: Host, server: Host) -> None:
    """Skip unless both ends can open an SCTP SOCK_SEQPACKET socket."""
    for host in (client, server):
        try:
            host.socket("AF_INET", "SOCK_SEQPACKET", "IPPROTO_SCTP").close()
        except RemoteOSError as exc:
            if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                pytest.skip(f"{host.name}: {SCTP_MISSING}")
            raise


def sctp_pair(client: Host, server: Host) -> tuple[RemoteSocket, RemoteSocket, tuple[str, int]]:
    """(client one-to-many socket, server one-to-many listening socket, server address)."""
    srv = server.socket("AF_INET", "SOCK_SEQPACKET", "IPPROTO_SCTP")
    port = srv.bind(("", 0))[1]
    srv.listen()
    cli = client.socket("AF_INET", "SOCK_SEQPACKET", "IPPROTO_SCTP")
    return cli, srv, (server.ipv4, port)


@pytest.mark.property("seqpacket over IP (SCTP): records kept")
@pytest.mark.usefixtures("sctp")
def test_sctp_records_kept(client: Host, server: Host) -> None:
    """Across the router, SCTP records of 1 B .. 60000 B sent back to back are received one per
    read, each whole (MSG_EOR set) and exactly as written."""
    cli, srv, address = sctp_pair(client, server)
    records = [record(size, i) for i, size in enumerate(RECORD_SIZES)]
    for rec in records:
        cli.sendto(rec, address, timeout=10)
    for rec in records:
        message = srv.recvmsg(100_000, timeout=10)
        assert message.data == rec
        assert message.msg_flags & socket.MSG_EOR, "a whole record carries MSG_EOR"
        assert message.address[0] == client.ipv4


@pytest.mark.property("seqpacket over IP (SCTP): reliable, in order")
@pytest.mark.usefixtures("sctp")
@pytest.mark.parametrize("condition", params("clean", "loss", "reorder", "duplicate", "corrupt"))
def test_sctp_reliable_in_order(client: Host, server: Host, router: Router, condition: Condition) -> None:
    """Across the router, 1000 sequence-numbered SCTP records all arrive once, in order and
    intact, whatever the router does (SCTP retransmits, reorders and checks CRC32c)."""
    cli, srv, address = sctp_pair(client, server)
    count = 1000
    with impaired(router, condition):
        receiver = srv.start_recv_sequence(duration_s=40, expect=count, idle_s=5.0)
        sent = cli.send_sequence(count, size=200, address=address, timeout=40)
        got = receiver.wait(timeout=45)
    assert sent["sent"] == count and not sent["errors"], sent
    arrivals = arrivals_from(got["arrivals"])
    assert [a.seq for a in arrivals] == list(range(count))
    assert all(a.size_bytes == 200 and a.crc_ok for a in arrivals)


@pytest.mark.property("seqpacket over IP (SCTP): long record delivered in parts up to MSG_EOR")
@pytest.mark.usefixtures("sctp")
def test_sctp_long_record_partial_delivery(client: Host, server: Host) -> None:
    """SCTP differs from AF_UNIX here: a 1000-byte record read with a 100-byte buffer is not
    discarded but delivered in parts; only the part that ends the record carries MSG_EOR, so
    the boundary is still kept (sctp(7), "partial delivery")."""
    cli, srv, address = sctp_pair(client, server)
    long_record = record(1000, 9)
    cli.sendto(long_record, address, timeout=10)
    cli.sendto(b"next record", address, timeout=10)
    parts = []
    while True:
        message = srv.recvmsg(100, timeout=10)
        assert len(message.data) <= 100
        parts.append(message)
        if message.msg_flags & socket.MSG_EOR:
            break
        assert len(parts) < 20, "no MSG_EOR after the whole record"
    assert len(parts) > 1
    assert b"".join(p.data for p in parts) == long_record
    assert srv.recv(100_000, timeout=10) == b"next record"
