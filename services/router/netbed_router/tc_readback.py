"""Read-back: what `tc -j qdisc show` should print for a Netem (iproute2 6.x JSON),
and the comparison that tells the kernel backend whether the kernel holds what
was asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netbed_core.netem import Netem
from netbed_core.netem.model import GemodelLoss, RandomLoss, StateLoss

# tolerances: tc keeps times in 64 ns ticks and prints them rounded to a microsecond;
# percentages are u32 fractions printed with 6 significant digits.
TIME_ABS_S = 2e-6
TIME_REL = 1e-5
PCT_ABS = 2e-6
PCT_REL = 1e-5

_ZERO_SECTIONS: dict[str, dict[str, float]] = {
    "delay": {"delay": 0.0, "jitter": 0.0, "correlation": 0.0},
    "loss-random": {"loss": 0.0, "correlation": 0.0},
    "loss-state": {"p13": 0.0, "p31": 0.0, "p32": 0.0, "p23": 0.0, "p14": 0.0},
    "loss-gemodel": {"p": 0.0, "r": 0.0, "1-h": 0.0, "1-k": 0.0},
    "duplicate": {"duplicate": 0.0},
    "corrupt": {"corrupt": 0.0, "correlation": 0.0},
    "reorder": {"reorder": 0.0, "correlation": 0.0},
    "rate": {"rate": 0.0, "packetoverhead": 0.0, "cellsize": 0.0, "celloverhead": 0.0},
}
_TIME_FIELDS = frozenset({"delay", "jitter", "min-delay", "max-delay", "distribution"})  # seconds
_PCT_SECTIONS = frozenset({"loss-random", "loss-state", "loss-gemodel", "duplicate", "corrupt", "reorder"})


def expected_netem_options(netem: Netem) -> dict[str, Any]:
    """The ``options`` object ``tc -j qdisc show`` prints for ``netem`` (times in seconds,
    percentages as fractions, rate in bytes/s), for the fields it can show.

    Not comparable, so left out: the delay distribution table (not printed), the duplicate
    correlation (Linux 6.1 reports 0 whatever was set).
    """
    exp: dict[str, Any] = {"limit": netem.limit_packets, "ecn": netem.ecn}
    if netem.partition:
        exp["loss-random"] = {"loss": 1.0, "correlation": 0.0}
        return exp
    if netem.delay is not None:
        d = netem.delay
        exp["delay"] = {"delay": d.delay_ms / 1e3, "jitter": d.jitter_ms / 1e3, "correlation": d.correlation_pct / 100}
    loss = netem.loss
    if isinstance(loss, RandomLoss):
        exp["loss-random"] = {"loss": loss.pct / 100, "correlation": loss.correlation_pct / 100}
    elif isinstance(loss, StateLoss):
        exp["loss-state"] = {"p13": loss.p13_pct / 100, "p31": loss.p31_pct / 100, "p32": loss.p32_pct / 100,
                             "p23": loss.p23_pct / 100, "p14": loss.p14_pct / 100}
    elif isinstance(loss, GemodelLoss):
        exp["loss-gemodel"] = {"p": loss.p_pct / 100, "r": loss.r_pct / 100,
                               "1-h": loss.one_minus_h_pct / 100, "1-k": loss.one_minus_k_pct / 100}
    if netem.duplicate is not None:
        exp["duplicate"] = {"duplicate": netem.duplicate.pct / 100}
    if netem.corrupt is not None:
        exp["corrupt"] = {"corrupt": netem.corrupt.pct / 100, "correlation": netem.corrupt.correlation_pct / 100}
    if netem.reorder is not None and netem.reorder.pct > 0:
        r = netem.reorder
        exp["reorder"] = {"reorder": r.pct / 100, "correlation": r.correlation_pct / 100}
        exp["gap"] = r.gap
    if netem.rate is not None:
        rate = netem.rate
        exp["rate"] = {"rate": rate.bits_per_s / 8, "packetoverhead": rate.packet_overhead_bytes,
                       "cellsize": rate.cell_size_bytes, "celloverhead": rate.cell_overhead_bytes}
    if netem.slot is not None:
        s = netem.slot
        slot: dict[str, float] = {"packets": s.max_packets or 0, "bytes": s.max_bytes or 0}
        if s.distribution is None:
            slot |= {"min-delay": s.min_delay_ms / 1e3, "max-delay": s.max_delay_ms / 1e3}
        else:
            assert s.delay_ms is not None and s.jitter_ms is not None
            slot |= {"distribution": s.delay_ms / 1e3, "jitter": s.jitter_ms / 1e3}
        exp["slot"] = slot
    if netem.seed is not None:
        exp["seed"] = netem.seed
    return exp


def _close(key: str, section: str, want: float, got: float) -> bool:
    if key in _TIME_FIELDS:
        return abs(got - want) <= TIME_ABS_S + TIME_REL * abs(want)
    if section in _PCT_SECTIONS or key == "correlation":
        return abs(got - want) <= PCT_ABS + PCT_REL * abs(want)
    if section == "rate" and key == "rate":
        return abs(got - want) <= 1  # whole bytes per second
    return got == want


def compare_netem_options(expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """Differences between :func:`expected_netem_options` and a ``tc -j`` netem ``options``
    object, as readable lines ([] when they agree). A section tc leaves out counts as zeros."""
    problems: list[str] = []
    for key in ("limit", "ecn"):
        if got.get(key) != expected.get(key):
            problems.append(f"{key}: asked {expected.get(key)!r}, kernel has {got.get(key)!r}")
    if "gap" in expected and got.get("gap") != expected["gap"] and not (expected["gap"] == 1 and got.get("gap") == 0):
        problems.append(f"gap: asked {expected['gap']}, kernel has {got.get('gap')!r}")
    if "seed" in expected and got.get("seed") != expected["seed"]:
        problems.append(f"seed: asked {expected['seed']}, kernel has {got.get('seed')!r}")
    sections = sorted((set(_ZERO_SECTIONS) | {"slot"}) & (set(expected) | set(got)))
    for section in sections:
        want_sec = expected.get(section)
        got_sec = got.get(section)
        if want_sec is None and section == "slot":
            if got_sec:
                problems.append(f"slot: not asked, kernel has {got_sec}")
            continue
        if want_sec is None:
            want_sec = _ZERO_SECTIONS[section]
        if not isinstance(got_sec, Mapping):
            got_sec = _ZERO_SECTIONS.get(section, {})
        for key, want in want_sec.items():
            value = got_sec.get(key, 0)
            if not isinstance(value, int | float) or not _close(key, section, float(want), float(value)):
                problems.append(f"{section}.{key}: asked {want:g}, kernel has {value!r}")
    return problems
