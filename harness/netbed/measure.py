"""What arrived, compared with what was sent: the measurements fidelity tests assert on.

Input is the `arrivals` list of a `recv_sequence` workload: one
[seq, send_ns, recv_ns, size, crc_ok] per datagram, in arrival order.
Reordering follows RFC 4737: an arrival is reordered when its sequence
number is lower than one that arrived before it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any


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


def delivery(arrivals: list[list[Any]], sent: int, first_seq: int = 0) -> Delivery:
    seqs = [int(a[0]) for a in arrivals]
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
        bad_checksum=sum(1 for a in arrivals if not a[4]),
        intact=len({int(a[0]) for a in arrivals if a[4]} & expected),
        lost_seqs=frozenset(expected - got),
    )


def one_way_delays_ms(arrivals: list[list[Any]]) -> list[float]:
    """recv - send per arrival, ms (all hosts share the host kernel's clock)."""
    return [(int(a[2]) - int(a[1])) / 1e6 for a in arrivals]


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
