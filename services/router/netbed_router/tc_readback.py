"""Read-back: what `tc -j qdisc show` should print for a Netem (iproute2 6.x JSON),
and the comparison that tells the kernel backend whether the kernel holds what
was asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netbed_core.netem import Netem
from netbed_core.netem.registry import REGISTRY

# tolerances: tc keeps times in 64 ns ticks and prints them rounded to a microsecond;
# percentages are u32 fractions printed with 6 significant digits.
TIME_ABS_S = 2e-6
TIME_REL = 1e-5
PCT_ABS = 2e-6
PCT_REL = 1e-5

_TIME_FIELDS = frozenset({"delay", "jitter", "min-delay", "max-delay", "distribution"})  # seconds
_PCT_SECTIONS = frozenset({"loss-random", "loss-state", "loss-gemodel", "duplicate", "corrupt", "reorder"})


def expected_netem_options(netem: Netem) -> dict[str, Any]:
    """The ``options`` object ``tc -j qdisc show`` prints for ``netem`` (times in seconds,
    percentages as fractions, rate in bytes/s), for the fields it can show: the union of
    what each section reads back (:meth:`Section.readback`).

    Not comparable, so left out by the sections: the delay distribution table (not printed),
    the duplicate correlation (Linux 6.1 reports 0 whatever was set).
    """
    exp: dict[str, Any] = {}
    for section in netem.sections():
        exp |= section.readback()
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
    zeros = REGISTRY.readback_zeros()
    for section in sorted(set(zeros) & (set(expected) | set(got))):
        want_sec = expected.get(section)
        got_sec = got.get(section)
        if want_sec is None:
            want_sec = zeros[section]
            if want_sec is None:  # a section the kernel must not show when not asked
                if got_sec:
                    problems.append(f"{section}: not asked, kernel has {got_sec}")
                continue
        if not isinstance(got_sec, Mapping):
            got_sec = zeros[section] or {}
        for key, want in want_sec.items():
            value = got_sec.get(key, 0)
            if not isinstance(value, int | float) or not _close(key, section, float(want), float(value)):
                problems.append(f"{section}.{key}: asked {want:g}, kernel has {value!r}")
    return problems
