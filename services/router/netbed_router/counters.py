"""The userspace engine's hot-path counters, one ``EngineCounters`` per direction.

These are what the engine increments per packet (plain ints in slots, no locks); what the
router reports is :meth:`EngineCounters.direction_stats`, a ``netbed_core`` ``DirectionStats``.

Counters are plain ints updated by the one thread that runs a direction's queue and read
(without a lock) by whoever asks for ``snapshot()``: under the GIL each read is atomic, so
a snapshot is at worst a few packets inconsistent between fields, never corrupt.
"""

from __future__ import annotations

from typing import Any

from netbed_core.direction_stats import COUNTERS, DirectionStats

#: The counters the userspace engine measures: every one except a qdisc's (it has none).
MEASURED: frozenset[str] = frozenset(COUNTERS) - {"backlog_bytes", "overlimits", "requeues"}


class EngineCounters:
    """Counters for one direction (one NFQUEUE queue).

    Units: packets unless the name ends in ``_bytes``; bytes are IP packet lengths
    (IP header included, no link-layer header).
    """

    __slots__ = (
        "seen",
        "passed",
        "dropped_loss",
        "dropped_limit",
        "dropped_partition",
        "dropped_error",
        "duplicated",
        "corrupted",
        "reordered",
        "delayed",
        "ecn_marked",
        "queue_depth",
        "queue_depth_max",
        "bytes_in",
        "bytes_out",
        "errors",
        "last_error",
        "seed",
    )

    def __init__(self) -> None:
        self.seen = 0  # packets received from the kernel queue
        self.passed = 0  # packets (and duplicate copies) sent on, after any delay
        self.dropped_loss = 0  # loss model decided to drop
        self.dropped_limit = 0  # held-packet queue was full (limit_packets)
        self.dropped_partition = 0  # partition: everything dropped
        self.dropped_error = 0  # could not be handled (e.g. duplicate injection failed)
        self.duplicated = 0  # duplicate copies created
        self.corrupted = 0  # packets with one bit flipped
        self.reordered = 0  # packets sent ahead of the delayed ones (reorder)
        self.delayed = 0  # packets held for a later verdict (delay, jitter, rate, slot)
        self.ecn_marked = 0  # loss turned into a CE mark (ecn)
        self.queue_depth = 0  # packets held now
        self.queue_depth_max = 0  # most packets held at once since reset
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0  # exceptions in the engine loop (logged)
        self.last_error: str | None = None
        self.seed: int | None = None  # the seed of the active impairment (for replay)

    def reset(self) -> None:
        """Zero all counters (the seed is kept)."""
        seed = self.seed
        self.__init__()  # type: ignore[misc]
        self.seed = seed

    @property
    def dropped(self) -> int:
        return self.dropped_loss + self.dropped_limit + self.dropped_partition + self.dropped_error

    def direction_stats(self) -> DirectionStats:
        """A typed copy (the qdisc-only counters are None: not measured by this backend)."""
        counts = {name: getattr(self, name) for name in MEASURED if name != "dropped"}
        return DirectionStats.measuring(MEASURED, dropped=self.dropped, seed=self.seed, last_error=self.last_error,
                                        **counts)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy: totals plus ``dropped_by_cause``."""
        return {
            "seen": self.seen,
            "passed": self.passed,
            "dropped": self.dropped,
            "dropped_by_cause": {
                "loss": self.dropped_loss,
                "limit": self.dropped_limit,
                "partition": self.dropped_partition,
                "error": self.dropped_error,
            },
            "duplicated": self.duplicated,
            "corrupted": self.corrupted,
            "reordered": self.reordered,
            "delayed": self.delayed,
            "ecn_marked": self.ecn_marked,
            "queue_depth": self.queue_depth,
            "queue_depth_max": self.queue_depth_max,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": self.errors,
            "last_error": self.last_error,
            "seed": self.seed,
        }
