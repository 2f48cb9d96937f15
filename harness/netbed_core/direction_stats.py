"""What an impairment backend counted for one direction: one type for the router and the harness.

The two router backends count different things. The userspace engine sees every packet and
counts every decision; tc netem (the kernel backend) keeps only a qdisc's counters: packets
and bytes sent, drops, overlimits, requeues and the backlog. A counter a backend cannot measure
is ``None``, never 0, so that "nothing was duplicated" and "duplicates are not counted here"
cannot be confused: a test that needs evidence an impairment acted must take it elsewhere
(from what the receiver measured) when the router's counter is ``None``.

On the wire (the router agent's ``impair_status`` reply) a ``DirectionStats`` is the flat dict
``to_dict()`` returns: the counters by name (``null`` when not measured), the drop causes as
``dropped_by_cause``, plus ``measured`` and ``not_measured`` (lists of counter names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The drop causes the userspace engine tells apart (``dropped_<cause>`` fields).
DROP_CAUSES: tuple[str, ...] = ("loss", "limit", "partition", "error")

#: Every counter, in the order `netbed status` prints them.
COUNTERS: tuple[str, ...] = (
    "seen", "passed", "dropped", "dropped_loss", "dropped_limit", "dropped_partition", "dropped_error",
    "duplicated", "corrupted", "reordered", "delayed", "ecn_marked",
    "queue_depth", "queue_depth_max", "backlog_bytes", "overlimits", "requeues",
    "bytes_in", "bytes_out", "errors",
)

#: Counters that are totals of independent events, so the sum over directions means something
#: (not queue depths and maxima, which are instantaneous or per direction).
ADDITIVE: frozenset[str] = frozenset(COUNTERS) - {"queue_depth", "queue_depth_max", "backlog_bytes"}

_CAUSE_FIELD = {cause: f"dropped_{cause}" for cause in DROP_CAUSES}


@dataclass(frozen=True)
class DirectionStats:
    """One direction's counters since its impairment was last applied; ``None``: not measured.

    Units: packets, except ``*_bytes`` and ``bytes_*`` (bytes). ``bytes_in``/``bytes_out`` are IP
    packet lengths on the userspace backend; on the kernel backend ``bytes_out`` is what the qdisc
    counts, which includes the 14-byte Ethernet header.
    """

    seen: int | None = None
    """Packets that reached the impairment."""
    passed: int | None = None
    """Packets sent on (duplicate copies included), after any delay."""
    dropped: int | None = None
    """Packets dropped, for any cause."""
    dropped_loss: int | None = None
    """... because the loss model said so."""
    dropped_limit: int | None = None
    """... because the held-packet queue was full (``limit``)."""
    dropped_partition: int | None = None
    """... by a partition."""
    dropped_error: int | None = None
    """... because the packet could not be handled (e.g. a duplicate could not be injected)."""
    duplicated: int | None = None
    """Duplicate copies created."""
    corrupted: int | None = None
    """Packets with a flipped bit."""
    reordered: int | None = None
    """Packets sent ahead of the delayed ones (``reorder``)."""
    delayed: int | None = None
    """Packets held for a later send (delay, jitter, rate, slot)."""
    ecn_marked: int | None = None
    """Losses turned into a CE mark (``ecn``)."""
    queue_depth: int | None = None
    """Packets held now."""
    queue_depth_max: int | None = None
    """Most packets held at once."""
    backlog_bytes: int | None = None
    """Bytes held now."""
    overlimits: int | None = None
    """Times the qdisc was over its limit (tc's ``overlimits``)."""
    requeues: int | None = None
    """Packets the device handed back to the qdisc (tc's ``requeues``)."""
    bytes_in: int | None = None
    """Bytes that reached the impairment."""
    bytes_out: int | None = None
    """Bytes sent on."""
    errors: int | None = None
    """Errors in the backend's packet loop (see ``last_error``)."""
    seed: int | None = None
    """The seed of the active impairment, for replay (not a counter; None: unseeded or unknown)."""
    last_error: str | None = None
    """The last error's text (not a counter)."""

    def __post_init__(self) -> None:
        for name in COUNTERS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}: a counter is an int >= 0 or None (not measured), got {value!r}")

    @property
    def measured(self) -> frozenset[str]:
        """The counters this backend measures (the others are None)."""
        return frozenset(name for name in COUNTERS if getattr(self, name) is not None)

    @property
    def not_measured(self) -> tuple[str, ...]:
        """The counters this backend cannot measure, in COUNTERS order."""
        return tuple(name for name in COUNTERS if getattr(self, name) is None)

    def counters(self) -> dict[str, int | None]:
        """Every counter by name, None where not measured."""
        return {name: getattr(self, name) for name in COUNTERS}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        out: dict[str, Any] = {name: value for name, value in self.counters().items()
                               if name not in _CAUSE_FIELD.values()}
        out["dropped_by_cause"] = {cause: getattr(self, f) for cause, f in _CAUSE_FIELD.items()}
        out["seed"] = self.seed
        out["last_error"] = self.last_error
        out["measured"] = [name for name in COUNTERS if name in self.measured]
        out["not_measured"] = list(self.not_measured)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DirectionStats:
        """Read ``to_dict()``'s form. Keys it does not know are ignored (a status entry carries
        more than the counters); a missing counter is None (a router that did not report it)."""
        values: dict[str, Any] = {name: data.get(name) for name in COUNTERS if name not in _CAUSE_FIELD.values()}
        causes = data.get("dropped_by_cause")
        if causes is not None and not isinstance(causes, Mapping):
            raise ValueError(f"dropped_by_cause: expected an object, got {causes!r}")
        for cause, name in _CAUSE_FIELD.items():
            values[name] = (causes or {}).get(cause)
        return cls(**values, seed=data.get("seed"), last_error=data.get("last_error"))

    @classmethod
    def measuring(cls, measured: Iterable[str], *, seed: int | None = None, last_error: str | None = None,
                  **counts: int | None) -> DirectionStats:
        """A ``DirectionStats`` with exactly the ``measured`` counters set: those missing from
        ``counts`` are 0, the others None. Raises ValueError for an unknown counter name, or for a
        value given for a counter outside ``measured``."""
        wanted = frozenset(measured)
        unknown = (wanted | counts.keys()) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown counter(s) {sorted(unknown)}; known: {', '.join(COUNTERS)}")
        extra = sorted(k for k, v in counts.items() if k not in wanted and v is not None)
        if extra:
            raise ValueError(f"counter(s) {extra} given but not measured by this backend")
        full = {name: (counts.get(name) or 0) if name in wanted else None for name in COUNTERS}
        return cls(**full, seed=seed, last_error=last_error)


def total(stats: Iterable[DirectionStats]) -> DirectionStats:
    """The sum of additive counters over ``stats`` (e.g. both directions). A counter is None when
    any part did not measure it; depths and backlogs are None (a sum of them means nothing)."""
    parts = list(stats)
    sums: dict[str, int | None] = {}
    for name in COUNTERS:
        values = [getattr(p, name) for p in parts]
        sums[name] = sum(v for v in values if v is not None) if (
            name in ADDITIVE and parts and None not in values) else None
    return DirectionStats(**sums, seed=None, last_error=None)


__all__ = ["ADDITIVE", "COUNTERS", "DROP_CAUSES", "DirectionStats", "total"]
