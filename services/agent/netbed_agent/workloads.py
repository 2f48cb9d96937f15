"""Bulk workloads that run inside the agent, so control round trips do not
distort timing: sequence-numbered senders and receivers, a byte-stream
checker, and an echo service.

Sequence messages start with a 24-byte header, network byte order:
magic b"NBSQ", sequence number (u64), send time (u64, ns since the epoch,
CLOCK_REALTIME) and a CRC-32 (u32) over everything else in the message, header
fields included, so a flipped bit anywhere shows (crc_ok false).  All
containers share the host kernel's clock, so arrival minus send time is the
one-way delay.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from . import names
from .args import MAX_TIMEOUT_S, Args
from .errors import OperationTimeout, RequestError
from .limits import MAX_ECHO_CONNECTIONS

if TYPE_CHECKING:
    from .session import Session

HEADER = struct.Struct("!4sQQI")
MAGIC = b"NBSQ"
MAX_COUNT = 10_000_000


def _sock(args: Args) -> socket.socket:
    return args.session.sockets.get(args.raw("fd", required=True))


PREFIX = struct.Struct("!4sQQ")  # the header without its CRC


def build_message(seq: int, size: int, filler: bytes) -> bytes:
    body = filler[: size - HEADER.size]
    prefix = PREFIX.pack(MAGIC, seq, time.time_ns())
    return prefix + struct.pack("!I", zlib.crc32(body, zlib.crc32(prefix))) + body


def message_intact(data: bytes, crc: int) -> bool:
    return zlib.crc32(data[HEADER.size:], zlib.crc32(data[:PREFIX.size])) == crc


def op_send_sequence(args: Args) -> dict[str, Any]:
    """Send `count` messages of `size` bytes at `rate_pps` (0: as fast as possible).

    With `address`, each message goes by sendto(); otherwise by send() on a
    connected socket.  Errors from individual sends (ECONNREFUSED after an ICMP
    port unreachable, ENOBUFS) are counted by name, not fatal.
    """
    sock = _sock(args)
    count = args.int("count", required=True, minimum=0, maximum=MAX_COUNT)
    size = args.int("size", 64, minimum=HEADER.size, maximum=65507)
    rate = args.float("rate_pps", 0.0)
    first = args.int("first_seq", 0, minimum=0, maximum=(1 << 64) - 1 - MAX_COUNT)
    addr = names.address(sock.family, args.raw("address")) if args.has("address") else None
    if not args.has("address"):
        args.raw("address")
    timeout = args.timeout(60.0)
    args.finish()
    filler = bytes(random.Random(size).randbytes(size))
    errors: dict[str, int] = {}
    sent = 0
    session = args.session
    start = time.monotonic()
    deadline = start + timeout
    interval = 1.0 / rate if rate > 0 else 0.0
    sock_timeout = max(timeout, 0.001)
    sock.settimeout(sock_timeout)
    for i in range(count):
        # The wait for the next send is cut short by the deadline (a tiny
        # rate_pps must not sleep past the timeout) and by close_all.
        due = start + i * interval if interval else 0.0
        if due > deadline:
            session.sleep(deadline - time.monotonic())
        elif interval:
            session.sleep(due - time.monotonic())
        if session.cancelled.is_set():
            raise OperationTimeout(f"stopped after {sent} of {count} messages: the connection's work was cleared")
        if time.monotonic() > deadline:
            raise OperationTimeout(f"sent {sent} of {count} messages before the {timeout:g} s timeout")
        remaining = deadline - time.monotonic()
        if remaining < sock_timeout - 0.1:
            # Tightened in 0.1 s steps, not per message: settimeout costs two
            # fcntl calls, and a blocked send still ends by the deadline (+0.1 s).
            sock_timeout = max(remaining, 0.001)
            sock.settimeout(sock_timeout)
        msg = build_message(first + i, size, filler)
        try:
            if addr is None:
                sock.send(msg)
            else:
                sock.sendto(msg, addr)
            sent += 1
        except TimeoutError:
            raise OperationTimeout(f"sent {sent} of {count} messages before the {timeout:g} s timeout") from None
        except OSError as exc:
            name = _errno_name(exc)
            errors[name] = errors.get(name, 0) + 1
    return {"sent": sent, "errors": errors, "duration_s": time.monotonic() - start}


def _errno_name(exc: OSError) -> str:
    import errno as errno_mod

    return errno_mod.errorcode.get(exc.errno or 0, str(exc.errno))


def op_recv_sequence(args: Args) -> dict[str, Any]:
    """Receive sequence messages until `duration_s` passes, `expect` messages
    have arrived, or nothing arrived for `idle_s` after the first one.

    Returns every arrival as [seq, send_ns, recv_ns, size, crc_ok], in arrival
    order, plus the count of datagrams that were not sequence messages.  With
    `record_tos` (IPv4), each arrival also carries the IP TOS byte it came
    with (IP_RECVTOS), whose low two bits are the ECN field (3 = CE).
    """
    sock = _sock(args)
    duration = args.float("duration_s", 10.0, maximum=MAX_TIMEOUT_S)
    expect = args.opt_int("expect", minimum=1, maximum=MAX_COUNT)
    idle = args.float("idle_s", 1.0, maximum=MAX_TIMEOUT_S)
    bufsize = args.int("bufsize", 65536, minimum=HEADER.size, maximum=1 << 20)
    record_tos = args.bool("record_tos", False)
    args.finish()
    if record_tos:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    arrivals: list[list[Any]] = []
    foreign = 0
    end = time.monotonic() + duration
    while True:
        now = time.monotonic()
        remaining = end - now
        if remaining <= 0:
            break
        sock.settimeout(min(remaining, idle) if arrivals else remaining)
        tos = None
        try:
            if record_tos:
                data, ancillary, _flags, _addr = sock.recvmsg(bufsize, socket.CMSG_SPACE(1))
                tos = next((item[2][0] for item in ancillary
                            if item[:2] == (socket.IPPROTO_IP, socket.IP_TOS) and item[2]), None)
            else:
                data = sock.recv(bufsize)
        except TimeoutError:
            if arrivals:
                break
            continue
        if not data and (args.session.cancelled.is_set() or sock.type == socket.SOCK_STREAM):
            break  # shut down (close_all, end of stream): nothing more will come
        recv_ns = time.time_ns()
        if len(data) < HEADER.size or data[:4] != MAGIC:
            foreign += 1
            continue
        _magic, seq, send_ns, crc = HEADER.unpack_from(data)
        ok = message_intact(data, crc)
        arrivals.append([seq, send_ns, recv_ns, len(data), ok] + ([tos] if record_tos else []))
        if expect is not None and len(arrivals) >= expect:
            break
    return {"arrivals": arrivals, "foreign": foreign}


def op_stream_send(args: Args) -> dict[str, Any]:
    """Write `nbytes` pseudo-random bytes (from `seed`) in writes of `chunk`
    bytes, then optionally shut down the write side.  Returns the SHA-256."""
    sock = _sock(args)
    nbytes = args.int("nbytes", required=True, minimum=0, maximum=1 << 31)
    chunk = args.int("chunk", 65536, minimum=1, maximum=1 << 24)
    seed = args.int("seed", 0, minimum=0)
    shutdown = args.bool("shutdown", True)
    timeout = args.timeout(60.0)
    args.finish()
    rng = random.Random(seed)
    digest = hashlib.sha256()
    deadline = time.monotonic() + timeout
    left = nbytes
    try:
        while left:
            block = rng.randbytes(min(chunk, left))
            # One deadline for the whole transfer, not one timeout per chunk.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            sock.sendall(block)
            digest.update(block)
            left -= len(block)
    except TimeoutError:
        raise OperationTimeout(f"stream_send: wrote {nbytes - left} of {nbytes} bytes before {timeout:g} s") from None
    if shutdown:
        sock.shutdown(socket.SHUT_WR)
    return {"bytes": nbytes, "sha256": digest.hexdigest()}


def op_stream_recv(args: Args) -> dict[str, Any]:
    """Read until end of stream (or `max_bytes`); return byte count, SHA-256,
    the sizes of the first reads (to show that boundaries are not kept) and the
    seconds from the first read to the last (for goodput)."""
    sock = _sock(args)
    max_bytes = args.int("max_bytes", 1 << 31, minimum=1)
    bufsize = args.int("bufsize", 65536, minimum=1, maximum=1 << 24)
    timeout = args.timeout(60.0)
    args.finish()
    digest = hashlib.sha256()
    total = 0
    sizes: list[int] = []
    first_ns = last_ns = 0
    deadline = time.monotonic() + timeout
    while total < max_bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OperationTimeout(f"stream_recv: got {total} bytes, no end of stream within {timeout:g} s")
        sock.settimeout(remaining)
        try:
            data = sock.recv(min(bufsize, max_bytes - total))
        except TimeoutError:
            raise OperationTimeout(f"stream_recv: got {total} bytes, no end of stream within {timeout:g} s") from None
        if not data:
            break
        last_ns = time.monotonic_ns()
        first_ns = first_ns or last_ns
        digest.update(data)
        total += len(data)
        if len(sizes) < 1000:
            sizes.append(len(data))
    return {"bytes": total, "sha256": digest.hexdigest(), "read_sizes": sizes, "reads": len(sizes),
            "first_to_last_s": (last_ns - first_ns) / 1e9}


def _echo_stream_conn(conn: socket.socket, session: Session, slots: threading.BoundedSemaphore) -> None:
    try:
        with conn:
            conn.settimeout(None)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
    finally:
        session.release(conn)
        slots.release()


def _echo_loop(sock: socket.socket, session: Session) -> None:
    sock.settimeout(None)
    slots = threading.BoundedSemaphore(MAX_ECHO_CONNECTIONS)
    try:
        if sock.type == socket.SOCK_STREAM or sock.type == socket.SOCK_SEQPACKET:
            while True:
                # At most MAX_ECHO_CONNECTIONS threads: further connections
                # wait in the listen backlog until one ends.
                while not slots.acquire(timeout=0.5):
                    if session.cancelled.is_set():
                        return
                conn, _ = sock.accept()
                # Adopted by the session so close_all wakes its thread too.
                session.adopt(conn)
                if session.cancelled.is_set():
                    conn.close()
                    return
                session.spawn(_echo_stream_conn, "echo-conn", conn, session, slots)
        else:
            while True:
                data, peer = sock.recvfrom(65536)
                if peer is None:
                    return  # woken by shutdown(): the socket is closing
                sock.sendto(data, peer)
    except OSError:
        # The harness closed the socket: the echo service ends with it.
        return


def op_echo(args: Args) -> dict[str, Any]:
    """Serve echo on this socket in the background until it is closed.

    A listening stream/seqpacket socket echoes on every accepted connection;
    a datagram socket sends each datagram back to its sender.
    """
    handle = args.raw("fd", required=True)
    sock = args.session.sockets.get(handle)
    args.finish()
    if sock.type == socket.SOCK_STREAM or sock.type == socket.SOCK_SEQPACKET:
        try:
            sock.getsockname()
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            listening = 0
        if not listening:
            raise RequestError("echo: a stream socket must be listening first (bind, listen)")
    args.session.sockets.mark_background(handle)
    args.session.spawn(_echo_loop, "echo", sock, args.session)
    return {}


OPS = {
    "send_sequence": op_send_sequence,
    "recv_sequence": op_recv_sequence,
    "stream_send": op_stream_send,
    "stream_recv": op_stream_recv,
    "echo": op_echo,
}
