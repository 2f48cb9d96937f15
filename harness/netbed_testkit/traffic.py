"""Test traffic between the namespaces of a topology: UDP and ICMP echo flows.

A ``Flow`` sends numbered packets and receives them (or their echo replies) on one socket,
recording per packet the send time and the receiving kernel's timestamp (``SO_TIMESTAMPNS``,
CLOCK_REALTIME: the namespaces share one clock).  So one-way delays do not depend on when
this process got round to reading, and no receiver thread is needed: the flow reads what has
arrived between sends and in ``settle``.

    with udp_flow(topo.client, topo.server, topo.server_end.ipv4) as flow:
        flow.send(200, interval_s=0.001)
        flow.settle()
        flow.lost, statistics.median(flow.one_way_ms())
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .namespaces import inside

SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
#: Receive buffer of every flow's receiving socket, bytes (set as root, past rmem_max).
RCVBUF_BYTES = 8 << 20
#: UDP payloads start with the sequence number, big-endian.
SEQ = struct.Struct("!I")
ECHO = struct.Struct("!BBHHH")  # ICMP type, code, checksum, identifier, sequence


class Received(NamedTuple):
    """One packet that arrived: its sequence number, when it was sent and received
    (CLOCK_REALTIME, ns; received = the kernel's timestamp) and its bytes."""

    seq: int
    sent_ns: int
    recv_ns: int
    data: bytes

    @property
    def one_way_ms(self) -> float:
        return (self.recv_ns - self.sent_ns) / 1e6


def kernel_timestamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The SO_TIMESTAMPNS receive time in ``recvmsg``'s ancillary data (now, if absent)."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("@qq", data[:16])
            return int(sec) * 1_000_000_000 + int(nsec)
    return time.time_ns()


def receiving_socket(family: int, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket with kernel receive timestamps and a large receive buffer."""
    s = socket.socket(family, kind, proto)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
    s.setblocking(False)
    return s


class Flow:
    """Numbered packets out through ``transmit(seq)``, back in on ``rx`` (``parse(data)`` gives
    a packet's sequence number, or None for a packet that is not the flow's).

    ``sent_ns[seq]``: send time; ``received``: every arrival in order (duplicates included);
    ``foreign``: arrivals whose sequence number was never sent (e.g. a corrupted header).
    """

    def __init__(self, transmit: Callable[[int], object], rx: socket.socket,
                 parse: Callable[[bytes], int | None], closing: tuple[socket.socket, ...] = ()) -> None:
        self._transmit, self.rx, self._parse = transmit, rx, parse
        self._closing = (rx, *closing)
        self.sent_ns: dict[int, int] = {}
        self.received: list[Received] = []
        self.foreign: list[bytes] = []
        self._lock = threading.Lock()  # send_one may run on another thread than settle

    # -- sending ---------------------------------------------------------------------------
    def send_one(self, seq: int) -> None:
        with self._lock:
            self.sent_ns[seq] = time.time_ns()
        self._transmit(seq)

    def send(self, count: int, interval_s: float = 0.0, start: int = 0) -> None:
        """Send ``count`` packets (``start`` .. ``start + count - 1``) ``interval_s`` apart
        (0: as fast as possible), reading arrivals in the gaps."""
        t0 = time.monotonic()
        for i in range(count):
            if interval_s:
                self.drain(max(0.0, t0 + i * interval_s - time.monotonic()))
            elif i % 32 == 31:
                self.drain(0)
            self.send_one(start + i)

    # -- receiving -------------------------------------------------------------------------
    def drain(self, timeout_s: float) -> int:
        """Read what arrives within ``timeout_s`` (at least what is queued); returns how many."""
        got = 0
        while True:
            ready, _, _ = select.select([self.rx], [], [], timeout_s)
            if not ready:
                return got
            while True:
                try:
                    data, anc, _flags, _addr = self.rx.recvmsg(65536, 256)
                except BlockingIOError:
                    break
                got += 1
                self._record(data, kernel_timestamp_ns(anc))
            timeout_s = 0

    def _record(self, data: bytes, recv_ns: int) -> None:
        seq = self._parse(data)
        with self._lock:
            sent = self.sent_ns.get(seq) if seq is not None else None
        if seq is None or sent is None:
            self.foreign.append(data)
        else:
            self.received.append(Received(seq, sent, recv_ns, data))

    def settle(self, quiet_s: float = 0.3, max_s: float = 10.0, *, until_complete: bool = True) -> None:
        """Receive until nothing has arrived for ``quiet_s`` (or ``max_s`` passed); with
        ``until_complete``, stop as soon as every packet sent has arrived (pass False when
        duplicates that may still be on their way must be counted too)."""
        deadline = time.monotonic() + max_s
        quiet_until = time.monotonic() + quiet_s
        while True:
            if until_complete and not self.missing():
                return
            now = time.monotonic()
            if now >= quiet_until or now >= deadline:
                return
            if self.drain(min(0.05, quiet_until - now, deadline - now)):
                quiet_until = time.monotonic() + quiet_s

    # -- results ---------------------------------------------------------------------------
    def missing(self) -> set[int]:
        """Sequence numbers sent and not (yet) received."""
        return set(self.sent_ns) - {r.seq for r in self.received}

    @property
    def lost(self) -> int:
        return len(self.missing())

    @property
    def duplicates(self) -> int:
        return len(self.received) - len({r.seq for r in self.received})

    def one_way_ms(self) -> list[float]:
        """Receive minus send time per arrival, ms (for echo flows: the round trip)."""
        return [r.one_way_ms for r in self.received]

    def median_ms(self) -> float:
        delays = self.one_way_ms()
        return statistics.median(delays) if delays else float("inf")

    def clear(self) -> None:
        """Forget what was sent and received (the sockets stay)."""
        with self._lock:
            self.sent_ns.clear()
        self.received.clear()
        self.foreign.clear()

    def close(self) -> None:
        for s in self._closing:
            s.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UdpFlow(Flow):
    """UDP datagrams of ``size_bytes`` from ``src_ns`` to ``dst:port`` in ``dst_ns``: the
    sequence number, then ``filler`` (default: a byte ramp) up to the size."""

    def __init__(self, src_ns: str, dst_ns: str, dst: str, port: int, *, size_bytes: int = 64,
                 filler: bytes | None = None, src_port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        with inside(dst_ns):
            rx = receiving_socket(family, socket.SOCK_DGRAM)
            rx.bind((dst, port))
        with inside(src_ns):
            self.tx = socket.socket(family, socket.SOCK_DGRAM)
            if src_port:
                self.tx.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", src_port))
        self.dst = (dst, port)
        body_len = max(0, size_bytes - SEQ.size)
        self.filler = bytes(i & 0xFF for i in range(body_len)) if filler is None else filler
        super().__init__(self._send_datagram, rx, self._seq_of, (self.tx,))

    def payload(self, seq: int) -> bytes:
        return SEQ.pack(seq) + self.filler

    def _send_datagram(self, seq: int) -> None:
        self.tx.sendto(self.payload(seq), self.dst)

    @staticmethod
    def _seq_of(data: bytes) -> int | None:
        return SEQ.unpack_from(data)[0] if len(data) >= SEQ.size else None


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class EchoFlow(Flow):
    """ICMP or ICMPv6 echo requests from ``src_ns`` to ``dst``; ``received`` holds the
    replies, so ``one_way_ms`` is the round-trip time."""

    def __init__(self, src_ns: str, dst: str) -> None:
        self.v6 = ":" in dst
        self.dst = dst
        self.ident = os.getpid() & 0xFFFF
        with inside(src_ns):
            if self.v6:
                sock = receiving_socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            else:
                sock = receiving_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock = sock
        super().__init__(self._send_request, sock, self._seq_of_reply)

    def _send_request(self, seq: int) -> None:
        if self.v6:  # the kernel fills in the ICMPv6 checksum
            self.sock.sendto(ECHO.pack(128, 0, 0, self.ident, seq) + b"netbed", (self.dst, 0))
        else:
            body = ECHO.pack(8, 0, 0, self.ident, seq) + b"netbed"
            self.sock.sendto(body[:2] + struct.pack("!H", _icmp_checksum(body)) + body[4:], (self.dst, 0))

    def _seq_of_reply(self, data: bytes) -> int | None:
        if not self.v6:  # a raw IPv4 socket reads the IP header too
            data = data[(data[0] & 0x0F) * 4:]
        if len(data) < ECHO.size:
            return None
        kind, _code, _sum, ident, seq = ECHO.unpack_from(data)
        return seq if kind == (129 if self.v6 else 0) and ident == self.ident else None
