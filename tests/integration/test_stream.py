"""Stream sockets (TCP) across the router: what they promise, on clean and impaired networks.

The primer: "If you send through the stream socket three items 'A, B, C', they will arrive
in the same order - 'A, B, C' ... If delivery is impossible, the sender receives an error
indicator. Data records do not have any boundaries."
"""

from __future__ import annotations

import errno
import hashlib
import socket
import struct
import time
from typing import Any

import pytest
from conditions import CONDITIONS, Condition, assert_acted, impair_counts, impaired

from netbed.host import Host, Router
from netbed.remote_socket import RemoteSocket

#: Size of the end-to-end checked stream, bytes.
STREAM_BYTES = 2 * 1024 * 1024
#: Upper bound for one impaired transfer, seconds (none should come near it).
TRANSFER_TIMEOUT_S = 40.0
#: TCP_USER_TIMEOUT for the partition test, milliseconds; and the slack we allow, seconds.
USER_TIMEOUT_MS = 2000
USER_TIMEOUT_SLACK_S = 2.0

#: Offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h; fields are only ever appended), bytes.
TCPI_DATA_SEGS_IN = 152  # __u32 tcpi_data_segs_in: segments with data received, duplicates included
TCPI_DATA_SEGS_OUT = 156  # __u32 tcpi_data_segs_out: segments with data sent, retransmissions included
TCPI_RCV_OOOPACK = 224  # __u32 tcpi_rcv_ooopack: packets received out of order (Linux 5.4 and later)
TCP_INFO_BYTES = TCPI_RCV_OOOPACK + 4


def tcp_info_u32(sock: RemoteSocket, offset: int) -> int | None:
    """One __u32 of the socket's tcp_info; None if this kernel's tcp_info is too short."""
    raw = sock.getsockopt("IPPROTO_TCP", "TCP_INFO", TCP_INFO_BYTES)
    if not isinstance(raw, bytes) or len(raw) < offset + 4:
        return None
    value: int = struct.unpack_from("=I", raw, offset)[0]
    return value


def receiver_evidence(condition: Condition, sender: RemoteSocket, receiver: RemoteSocket,
                      csum_errors: int) -> tuple[int | None, str]:
    """(count, what) the two ends measured that shows `condition` acted on the stream: data
    segments sent but never received for loss, out-of-order arrivals for reorder, more data
    segments received than sent for duplicate, TCP checksum errors (`csum_errors`, the
    receiver's Tcp InCsumErrors delta) for corrupt.

    Loss is not taken from out-of-order arrivals: a lost segment with nothing sent after it
    (a slow sender with one segment in flight, as in a software-emulated VM) is retransmitted
    on a timeout and never seen out of order, so that evidence depends on the sender's speed."""
    if condition.name == "loss":
        got, sent = tcp_info_u32(receiver, TCPI_DATA_SEGS_IN), tcp_info_u32(sender, TCPI_DATA_SEGS_OUT)
        lost = None if got is None or sent is None else sent - got
        return lost, "data segments sent but not received (tcpi_data_segs_out - tcpi_data_segs_in)"
    if condition.name == "reorder":
        return tcp_info_u32(receiver, TCPI_RCV_OOOPACK), "out-of-order segments (tcpi_rcv_ooopack)"
    if condition.name == "duplicate":
        got, sent = tcp_info_u32(receiver, TCPI_DATA_SEGS_IN), tcp_info_u32(sender, TCPI_DATA_SEGS_OUT)
        extra = None if got is None or sent is None else got - sent
        return extra, "data segments beyond those sent (tcpi_data_segs_in - tcpi_data_segs_out)"
    if condition.name == "corrupt":
        return csum_errors, "TCP checksum errors (Tcp InCsumErrors)"
    return None, "nothing"


def connected_pair(client: Host, server: Host, family: int = socket.AF_INET,
                   rcvbuf: int | None = None) -> tuple[RemoteSocket, RemoteSocket]:
    """(client socket, server's accepted socket) of a fresh TCP connection."""
    listener = server.socket(family, socket.SOCK_STREAM)
    if rcvbuf is not None:
        listener.setsockopt("SOL_SOCKET", "SO_RCVBUF", rcvbuf)  # inherited by accepted sockets
    port = listener.bind(("", 0))[1]
    listener.listen()
    cli = client.socket(family, socket.SOCK_STREAM)
    cli.connect((server.address(family), port), timeout=10)
    conn, peer = listener.accept(timeout=10)
    assert peer[1] == cli.getsockname()[1]
    listener.close()
    return cli, conn


def recv_until_eof(sock: RemoteSocket, timeout: float = 10.0) -> bytes:
    """Everything `sock` reads until end of stream, within `timeout` seconds overall."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536, timeout=max(0.1, deadline - time.monotonic()))
        if not data:
            return b"".join(chunks)
        chunks.append(data)


ORDER_CASES = [pytest.param(socket.AF_INET, CONDITIONS[name], id=f"ipv4-{name}")
               for name in ("clean", "loss", "delay+jitter", "reorder", "duplicate", "corrupt", "rate")]
ORDER_CASES.append(pytest.param(socket.AF_INET6, CONDITIONS["clean"], id="ipv6-clean"))


@pytest.mark.property("stream: every byte arrives once, in order")
@pytest.mark.parametrize(("family", "condition"), ORDER_CASES)
def test_bytes_arrive_once_in_order(client: Host, server: Host, router: Router, family: int,
                                    condition: Condition) -> None:
    """A 2 MiB pseudo-random stream arrives complete, once and in order (SHA-256 equal end to end),
    whatever the router does to the segments."""
    cli, conn = connected_pair(client, server, family)
    csum_before = server.snmp()["Tcp"]["InCsumErrors"]
    with impaired(router, condition):
        receiver = conn.start_stream_recv(timeout=TRANSFER_TIMEOUT_S)
        start = time.monotonic()
        sent = cli.stream_send(STREAM_BYTES, seed=7, timeout=TRANSFER_TIMEOUT_S)
        got = receiver.wait(timeout=TRANSFER_TIMEOUT_S + 5)
        elapsed = time.monotonic() - start
        counts = impair_counts(router) if condition.netem else {}
    csum_errors = server.snmp()["Tcp"]["InCsumErrors"] - csum_before
    assert sent["bytes"] == STREAM_BYTES
    assert got["bytes"] == STREAM_BYTES, f"received {got['bytes']} of {STREAM_BYTES} bytes"
    assert got["sha256"] == sent["sha256"], "bytes arrived altered, duplicated or out of order"
    # Router counters where the backend has them (None on the kernel backend for duplicate,
    # corrupt and reorder), and always what the receiving end measured.
    measured, what = receiver_evidence(condition, cli, conn, csum_errors)
    assert_acted(condition, counts, measured, what)
    if condition.name == "rate":
        floor_s = STREAM_BYTES * 8 / 5e6
        assert elapsed >= 0.9 * floor_s, f"{STREAM_BYTES} B in {elapsed:.2f} s beats the 5 Mbit/s limit"


@pytest.mark.property("stream: no record boundaries (writes coalesce, reads split)")
def test_separate_writes_are_read_coalesced(client: Host, server: Host) -> None:
    """Three separate writes "A, ", "B, ", "C" come back from ONE read as "A, B, C": the stream keeps
    no record boundaries.  (SO_RCVLOWAT=7 makes the read wait until all 7 bytes are there.)"""
    cli, conn = connected_pair(client, server)
    parts = [b"A, ", b"B, ", b"C"]
    conn.setsockopt("SOL_SOCKET", "SO_RCVLOWAT", sum(map(len, parts)))
    for part in parts:
        cli.sendall(part)
    assert conn.recv(4096, timeout=5) == b"A, B, C"


@pytest.mark.property("stream: no record boundaries (writes coalesce, reads split)")
def test_one_write_is_read_in_pieces(client: Host, server: Host) -> None:
    """One 256 KiB write is read back in several pieces even with a 1 MiB read buffer: the receive
    window (SO_RCVBUF 16 KiB) cannot hold the whole record, so it cannot arrive as one read."""
    size = 256 * 1024
    cli, conn = connected_pair(client, server, rcvbuf=16 * 1024)
    receiver = conn.start_stream_recv(timeout=20, bufsize=1024 * 1024)
    sent = cli.stream_send(size, chunk=size, seed=3, timeout=20)  # a single sendall() of 256 KiB
    got = receiver.wait(timeout=25)
    assert got["sha256"] == sent["sha256"]
    sizes: list[int] = got["read_sizes"]
    assert sum(sizes) == size
    assert len(sizes) > 1 and max(sizes) < size, f"the write came back in reads of {sizes}"


#: Linux tcp_info.tcpi_state of a connection the kernel has given up on.
TCP_CLOSE = 7


@pytest.mark.property("stream: undeliverable data -> error to the sender")
@pytest.mark.condition("partition")
def test_partition_fails_send_within_user_timeout(client: Host, server: Host, router: Router) -> None:
    """Under a partition, with TCP_USER_TIMEOUT = 2000 ms, a blocked send fails with ETIMEDOUT
    after about 2 s (no earlier than the timeout, no later than 2 s past it) instead of hanging,
    and the kernel has closed the connection (tcp_info state CLOSE)."""
    cli, conn = connected_pair(client, server)
    cli.setsockopt("IPPROTO_TCP", "TCP_USER_TIMEOUT", USER_TIMEOUT_MS)
    cli.setsockopt("SOL_SOCKET", "SO_SNDBUF", 4096)  # so the send below must block
    bound_s = USER_TIMEOUT_MS / 1000 + USER_TIMEOUT_SLACK_S
    op_timeout_s = bound_s + 5
    with impaired(router, CONDITIONS["partition"]):
        start = time.monotonic()
        with pytest.raises(OSError) as info:
            cli.sendall(b"x" * (512 * 1024), timeout=op_timeout_s)
        elapsed = time.monotonic() - start
        state = cli.getsockopt("IPPROTO_TCP", "TCP_INFO", 8)
    assert USER_TIMEOUT_MS / 1000 * 0.9 <= elapsed <= bound_s, f"error after {elapsed:.2f} s: {info.value!r}"
    assert info.value.errno == errno.ETIMEDOUT, f"expected ETIMEDOUT from the kernel, got {info.value!r}"
    assert isinstance(state, bytes) and state[0] == TCP_CLOSE, f"connection not aborted: tcpi_state {state!r}"


REJECT_RULE = ["FORWARD", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]


def _iptables(router: Router, action: str) -> None:
    code, output = router.exec(["iptables", action, *REJECT_RULE])
    assert code == 0, f"iptables {action} failed: {output}"


@pytest.mark.property("stream: undeliverable data -> error to the sender")
@pytest.mark.condition("reset")
def test_reset_from_router_reaches_sender(client: Host, server: Host, router: Router) -> None:
    """When the router answers a data segment with a TCP reset, the sender's next read fails with
    ECONNRESET; a new connection attempt fails with ECONNREFUSED."""
    cli, conn = connected_pair(client, server)
    _iptables(router, "-I")
    try:
        cli.sendall(b"A, B, C")
        with pytest.raises(OSError) as reset:
            cli.recv(100, timeout=5)
        fresh = client.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(OSError) as refused:
            fresh.connect((server.ipv4, conn.getsockname()[1]), timeout=5)
    finally:
        _iptables(router, "-D")
    assert getattr(reset.value, "errno", None) == errno.ECONNRESET, repr(reset.value)
    assert getattr(refused.value, "errno", None) == errno.ECONNREFUSED, repr(refused.value)


@pytest.mark.property("stream: half-close and orderly close")
def test_half_close(client: Host, server: Host) -> None:
    """After shutdown(SHUT_WR) the peer reads the data then EOF, and can still send back; the
    half-closed side cannot send (EPIPE) but reads the reply, then EOF when the peer closes."""
    cli, conn = connected_pair(client, server)
    cli.sendall(b"request")
    cli.shutdown(socket.SHUT_WR)
    assert recv_until_eof(conn) == b"request"
    conn.sendall(b"reply after your EOF")
    with pytest.raises(OSError) as info:
        cli.send(b"more")
    assert info.value.errno == errno.EPIPE
    conn.close()
    assert recv_until_eof(cli) == b"reply after your EOF"


@pytest.mark.property("stream: half-close and orderly close")
def test_orderly_close_delivers_everything(client: Host, server: Host) -> None:
    """Data written just before close() is all delivered, then the peer reads EOF (not a reset)."""
    cli, conn = connected_pair(client, server)
    payload = bytes(range(256)) * 400  # 100 KiB
    receiver = conn.start_stream_recv(timeout=10)
    cli.sendall(payload)
    cli.close()
    got: dict[str, Any] = receiver.wait(timeout=15)
    assert got["bytes"] == len(payload)
    assert got["sha256"] == hashlib.sha256(payload).hexdigest()
