"""The engine's configuration: a validated impairment in the engine's units.

:class:`EngineConfig` holds times in ns and probabilities as netem's u32 thresholds;
:meth:`EngineConfig.from_netem` builds it with one step per netem section
(:data:`CONFIG_STEPS`), so a new section needs one step here and its decision in
``engine.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netbed_core.netem import (
    Corrupt,
    Delay,
    Duplicate,
    Ecn,
    GemodelLoss,
    Limit,
    Netem,
    NetemError,
    Partition,
    RandomLoss,
    Rate,
    Reorder,
    Section,
    Seed,
    Slot,
    StateLoss,
)
from netbed_core.netem import from_dict as netem_from_dict
from netbed_core.netem.trace_section import TraceLink

from .trace_link import STORE

U32_MAX = 0xFFFFFFFF
DEFAULT_LIMIT = 1000


def pct_to_u32(pct: float) -> int:
    """A percentage 0..100 as netem's u32 probability (iproute2 ``get_percent``)."""
    return int(round(pct / 100.0 * U32_MAX))


@dataclass(frozen=True)
class EngineConfig:
    """A validated impairment; times in ns, probabilities as u32 thresholds."""

    latency_ns: int = 0
    jitter_ns: int = 0
    delay_corr: int = 0
    dist: str | None = None  # None = uniform
    loss_model: str | None = None  # None, "random", "state", "gemodel"
    loss: int = 0
    loss_corr: int = 0
    clg: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # netem's a1..a5
    duplicate: int = 0
    dup_corr: int = 0
    corrupt: int = 0
    corrupt_corr: int = 0
    reorder: int = 0
    reorder_corr: int = 0
    gap: int = 0
    rate_bytes_per_s: int = 0
    packet_overhead: int = 0
    cell_size: int = 0
    cell_overhead: int = 0
    slot_min_ns: int = 0
    slot_max_ns: int = 0
    slot_dist: str | None = None
    slot_dist_delay_ns: int = 0
    slot_dist_jitter_ns: int = 0
    slot_max_packets: int = 0
    slot_max_bytes: int = 0
    slot_with_dist: bool = False
    limit: int = DEFAULT_LIMIT
    ecn: bool = False
    partition: bool = False
    seed: int | None = None
    trace_ms: tuple[int, ...] = ()
    """A link trace's delivery opportunities, ms (``trace NAME``, trace_link.py); () for none."""

    @property
    def slot_enabled(self) -> bool:
        """netem: a slot is active if min, max or jitter of the slot is non-zero."""
        return bool(self.slot_min_ns or self.slot_max_ns or self.slot_dist_jitter_ns)

    @property
    def is_noop(self) -> bool:
        """True when no packet would be changed, dropped or held (limit/ecn/seed alone)."""
        return not (
            self.latency_ns
            or self.jitter_ns
            or self.loss_model
            or self.duplicate
            or self.corrupt
            or (self.reorder and self.gap)
            or self.rate_bytes_per_s
            or self.slot_enabled
            or self.partition
            or self.trace_ms
        )

    @property
    def gso_safe(self) -> bool:
        """True when a GSO super-packet may be decided as one unit (``NFQA_CFG_F_GSO``): every
        segment of it would get the same treatment and nothing reads or rewrites its payload.

        That is: a partition (every segment dropped), or a fixed delay (no jitter, so no random
        draw; no loss, duplicate, corrupt, reorder, rate or slot, which decide per wire packet or
        space packets by their size).  ``limit`` then counts held units, not segments, like
        netem on a device with TSO.  See docs/engine.md, "GSO units".

        Not for "no impairment", though every segment would pass alike: its rule is removed, so
        nothing is queued to gain from, and the flag would stay on into the next impairment's
        first packets (queued with partial checksums, which that impairment cannot rewrite or
        copy; measured: a few duplicates lost after each apply).
        """
        if self.partition:
            return True
        return bool(
            self.latency_ns
            and not (
                self.jitter_ns
                or self.loss_model
                or self.duplicate
                or self.corrupt
                or self.reorder
                or self.gap
                or self.rate_bytes_per_s
                or self.slot_enabled
            )
        )

    @property
    def needs_payload(self) -> bool:
        """Whether whole packets must be copied to userspace (mangle or re-inject)."""
        return bool(self.duplicate or self.corrupt or self.ecn)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> EngineConfig:
        """Validate the impairment dict with the shared model (netbed_core.netem: ValueError
        names the bad key) and convert it to the engine's units."""
        return cls.from_netem(netem_from_dict(spec))

    @classmethod
    def from_netem(cls, n: Netem) -> EngineConfig:
        """The engine's units for a validated impairment: ns, and u32 probabilities.

        One step per section (:data:`CONFIG_STEPS`); a section the engine has no step for is
        refused rather than silently ignored.
        """
        kw: dict[str, Any] = {}
        for section in n.sections():
            step = CONFIG_STEPS.get(type(section))
            if step is None:
                raise NetemError(f"netem: the userspace engine cannot apply {section.keywords[0]!r} yet",
                                 token=section.keywords[0], expected="a section the engine implements")
            kw.update(step(section))
        return cls(**kw)


def ms_to_ns(ms: float) -> int:
    return int(round(ms * 1e6))


# --------------------------------------------------------------------------------------
# Engine units per section
# --------------------------------------------------------------------------------------
def _delay(d: Delay) -> dict[str, Any]:
    return {"latency_ns": ms_to_ns(d.delay_ms),
            "jitter_ns": min(0x7FFFFFFF, ms_to_ns(d.jitter_ms)),  # netem: s32 ns
            "delay_corr": pct_to_u32(d.correlation_pct),
            "dist": d.distribution}  # None = netem's default (uniform)


def _random_loss(loss: RandomLoss) -> dict[str, Any]:
    threshold = pct_to_u32(loss.pct)
    return {"loss": threshold, "loss_corr": pct_to_u32(loss.correlation_pct),
            "loss_model": "random" if threshold else None}


def _state_loss(loss: StateLoss) -> dict[str, Any]:
    # netem a1..a5 = p13, p31, p32, p14, p23
    return {"loss_model": "state",
            "clg": tuple(pct_to_u32(p) for p in (loss.p13_pct, loss.p31_pct, loss.p32_pct,
                                                   loss.p14_pct, loss.p23_pct))}


def _gemodel_loss(loss: GemodelLoss) -> dict[str, Any]:
    # tc passes h = 0xffffffff - (1-h) to the kernel; a4 is 1-k as given.
    return {"loss_model": "gemodel",
            "clg": (pct_to_u32(loss.p_pct), pct_to_u32(loss.r_pct),
                    U32_MAX - pct_to_u32(loss.one_minus_h_pct), pct_to_u32(loss.one_minus_k_pct), 0)}


def _duplicate(d: Duplicate) -> dict[str, Any]:
    return {"duplicate": pct_to_u32(d.pct), "dup_corr": pct_to_u32(d.correlation_pct)}


def _corrupt(c: Corrupt) -> dict[str, Any]:
    return {"corrupt": pct_to_u32(c.pct), "corrupt_corr": pct_to_u32(c.correlation_pct)}


def _reorder(r: Reorder) -> dict[str, Any]:
    threshold = pct_to_u32(r.pct)
    return {"reorder": threshold, "reorder_corr": pct_to_u32(r.correlation_pct),
            "gap": r.gap if threshold else 0}


def _rate(r: Rate) -> dict[str, Any]:
    return {"rate_bytes_per_s": r.bits_per_s // 8,  # tc converts bit/s to the kernel's byte/s
            "packet_overhead": r.packet_overhead_bytes,
            "cell_size": r.cell_size_bytes,
            "cell_overhead": r.cell_overhead_bytes}


def _slot(slot: Slot) -> dict[str, Any]:
    kw: dict[str, Any] = {"slot_max_packets": slot.max_packets or 0, "slot_max_bytes": slot.max_bytes or 0}
    if slot.distribution is not None:
        kw |= {"slot_with_dist": True,
               "slot_dist": None if slot.distribution == "uniform" else slot.distribution,
               "slot_dist_delay_ns": ms_to_ns(slot.delay_ms or 0.0),
               "slot_dist_jitter_ns": min(0x7FFFFFFF, ms_to_ns(slot.jitter_ms or 0.0))}
    else:
        kw |= {"slot_min_ns": ms_to_ns(slot.min_delay_ms), "slot_max_ns": ms_to_ns(slot.max_delay_ms)}
    return kw


def _step(convert: Callable[[Any], dict[str, Any]]) -> Callable[[Section], dict[str, Any]]:
    return convert


CONFIG_STEPS: dict[type[Section], Callable[[Section], dict[str, Any]]] = {
    Limit: _step(lambda s: {"limit": s.packets}),
    Delay: _step(_delay),
    RandomLoss: _step(_random_loss),
    StateLoss: _step(_state_loss),
    GemodelLoss: _step(_gemodel_loss),
    Duplicate: _step(_duplicate),
    Corrupt: _step(_corrupt),
    Reorder: _step(_reorder),
    Rate: _step(_rate),
    Slot: _step(_slot),
    Ecn: _step(lambda s: {"ecn": s.enabled}),
    Seed: _step(lambda s: {"seed": s.value}),
    Partition: _step(lambda s: {"partition": s.enabled}),
    TraceLink: _step(lambda s: {"trace_ms": STORE.get(s.name)}),
}
"""Each section's engine units (EngineConfig fields), by section class (each loss model apart)."""
