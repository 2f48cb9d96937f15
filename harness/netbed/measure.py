"""What arrived, compared with what was sent: the measurements fidelity tests assert on.

Input is the `arrivals` list of a `recv_sequence` workload, one row per datagram in
arrival order, read as :class:`Arrival` (``arrivals_from``).  :func:`udp_pair` and
:func:`run_sequence` produce such a list between two hosts.  Reordering follows RFC 4737:
an arrival is reordered when its sequence number is lower than one that arrived before it.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import test_record
from .host import Host
from .remote_socket import RemoteSocket


class Arrival(NamedTuple):
    """One datagram as the receiver's `recv_sequence` saw it (the agent sends the fields
    as a list in this order; docs/agent-protocol.md).

    `send_ns` is the sender's and `recv_ns` the receiver's CLOCK_REALTIME, ns (all hosts
    share the host kernel's clock); `crc_ok` is false when any byte changed on the way;
    `tos` is the IP TOS byte (ECN in its low two bits), only with `record_tos`.
    """

    seq: int
    send_ns: int
    recv_ns: int
    size_bytes: int
    crc_ok: bool
    tos: int | None = None

    @property
    def one_way_ms(self) -> float:
        return (self.recv_ns - self.send_ns) / 1e6


def arrivals_from(rows: Iterable[Sequence[Any]]) -> list[Arrival]:
    """The `arrivals` rows of a `recv_sequence` result as :class:`Arrival` (idempotent)."""
    return [Arrival(*row) for row in rows]


class UdpPair(NamedTuple):
    """A UDP socket on the sender (`tx`), one on the receiver bound to an ephemeral port
    (`rx`), and the address `tx` sends to (the receiver's address, `rx`'s port)."""

    tx: RemoteSocket
    rx: RemoteSocket
    address: tuple[str, int]


def udp_pair(sender: Host, receiver: Host, family: int = socket.AF_INET,
             rcvbuf_bytes: int | None = None) -> UdpPair:
    """Two UDP sockets for traffic from `sender` to `receiver`; `rcvbuf_bytes` sets the
    receiving socket's SO_RCVBUF (the kernel's limit applies)."""
    rx = receiver.socket(family, socket.SOCK_DGRAM)
    if rcvbuf_bytes is not None:
        rx.setsockopt("SOL_SOCKET", "SO_RCVBUF", rcvbuf_bytes)
    port = int(rx.bind(("", 0))[1])
    tx = sender.socket(family, socket.SOCK_DGRAM)
    return UdpPair(tx, rx, (receiver.address(family), port))


#: Receive buffer of `run_sequence`'s receiver, bytes: room for bursts without overflowing.
SEQUENCE_RCVBUF_BYTES = 4 << 20


@dataclass(frozen=True)
class SequenceRun:
    """What `run_sequence` saw: the arrivals, datagrams that were not sequence messages,
    and when the sender had sent its last one (CLOCK_REALTIME, ns)."""

    arrivals: list[Arrival]
    foreign: int
    sender_done_ns: int


def run_sequence(sender: Host, receiver: Host, count: int, rate_pps: float, *, size_bytes: int = 64,
                 family: int = socket.AF_INET, idle_s: float = 1.0, expect: int | None = None,
                 no_check: bool = False) -> SequenceRun:
    """Send `count` sequence datagrams of `size_bytes` at `rate_pps` over a fresh
    :func:`udp_pair`; the receiver stops after `expect` arrivals (None: no limit) or
    `idle_s` without any.  `no_check` sends without UDP checksum (SO_NO_CHECK, IPv4).

    Raises AssertionError (a failed test, not a harness fault) if the sender could not
    send all `count`.
    """
    pair = udp_pair(sender, receiver, family, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    if no_check:
        pair.tx.setsockopt("SOL_SOCKET", "SO_NO_CHECK", 1)
    duration_s = count / rate_pps + 10
    job = pair.rx.start_recv_sequence(duration_s=duration_s, expect=expect, idle_s=idle_s)
    sent = pair.tx.send_sequence(count, size=size_bytes, rate_pps=rate_pps, address=pair.address,
                                 timeout=duration_s)
    sender_done_ns = time.time_ns()  # all containers share the host kernel's clock
    got = job.wait(timeout=duration_s + 5)
    if sent["sent"] != count:
        raise AssertionError(f"the sender itself failed: {sent}")
    # For the run report's plots (a no-op outside a test); client to server is "to-server".
    direction = {("client", "server"): "to-server", ("server", "client"): "to-client"}.get(
        (sender.name, receiver.name))
    test_record.record_sequence(got["arrivals"], count, rate_pps=rate_pps, direction=direction,
                                label=f"{sender.name} to {receiver.name}, {count} x {size_bytes} B")
    return SequenceRun(arrivals_from(got["arrivals"]), int(got["foreign"]), sender_done_ns)


@dataclass(frozen=True)
class Delivery:
    """Counts over `sent` datagrams: unique ones delivered, lost, duplicated,
    reordered (RFC 4737), arrivals with a bad checksum, and datagrams that arrived
    intact (checksum good; a corrupted sequence number cannot pass for another)."""

    sent: int
    delivered: int
    lost: int
    duplicates: int
    reordered: int
    bad_checksum: int
    intact: int
    lost_seqs: frozenset[int]

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


def delivery(rows: Iterable[Sequence[Any]], sent: int, first_seq: int = 0) -> Delivery:
    """Counts over the arrivals (:class:`Arrival`, or a `recv_sequence` result's rows) of
    `sent` datagrams numbered from `first_seq`."""
    arrivals = arrivals_from(rows)
    seqs = [a.seq for a in arrivals]
    counts = Counter(seqs)
    expected = set(range(first_seq, first_seq + sent))
    got = set(counts) & expected
    reordered = 0
    highest = -1
    seen: set[int] = set()
    for seq in seqs:
        if seq in seen:
            continue  # a duplicate is not a reordering
        seen.add(seq)
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    return Delivery(
        sent=sent,
        delivered=len(got),
        lost=len(expected - got),
        duplicates=sum(c - 1 for c in counts.values()),
        reordered=reordered,
        bad_checksum=sum(1 for a in arrivals if not a.crc_ok),
        intact=len({a.seq for a in arrivals if a.crc_ok} & expected),
        lost_seqs=frozenset(expected - got),
    )


def one_way_delays_ms(rows: Iterable[Sequence[Any]]) -> list[float]:
    """recv - send per arrival, ms (all hosts share the host kernel's clock)."""
    return [a.one_way_ms for a in arrivals_from(rows)]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def stdev(values: list[float]) -> float:
    return float(statistics.stdev(values))


def iqr_sigma(values: list[float]) -> float:
    """A standard deviation estimate robust to rare outliers: IQR / 1.349.

    Exact for normally distributed values; a few scheduler stalls barely move it.
    """
    q1, _q2, q3 = statistics.quantiles(values, n=4)
    return float((q3 - q1) / 1.349)


def burst_lengths(lost: frozenset[int] | set[int], first: int, last: int) -> list[int]:
    """Lengths of runs of consecutive lost sequence numbers in [first, last]."""
    runs: list[int] = []
    run = 0
    for seq in range(first, last + 1):
        if seq in lost:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    return runs
