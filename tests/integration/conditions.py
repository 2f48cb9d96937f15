"""The network conditions the conformance suites run under, as netem strings.

Each condition has a short name (the pytest parametrize id, and the column of the
conformance report) and the netem text handed to ``router.impair``.  "clean" is the
empty string: no impairment at all, so clean-network tests never touch the impairment API.

    @pytest.mark.parametrize("condition", params("clean", "loss", "reorder"))
    def test_x(router, condition):
        with impaired(router, condition):
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Condition:
    """A named network condition: `netem` is tc-netem syntax (or "partition", or "" for none)."""

    name: str
    netem: str

    def __str__(self) -> str:
        return self.name


#: Configured probabilities, as fractions, for tests that measure them.
LOSS_RATE = 0.05
DUPLICATE_RATE = 0.10
CORRUPT_RATE = 0.05

CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("clean", ""),
    Condition("loss", f"loss {LOSS_RATE:.0%}"),
    Condition("delay+jitter", "delay 20ms 5ms"),
    Condition("reorder", "delay 10ms reorder 25%"),
    Condition("duplicate", f"duplicate {DUPLICATE_RATE:.0%}"),
    Condition("corrupt", f"corrupt {CORRUPT_RATE:.0%}"),
    Condition("rate", "rate 5mbit"),
    Condition("partition", "partition"),
)}


def params(*names: str) -> list[Any]:
    """pytest.param entries (id = condition name) for the named conditions."""
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise KeyError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITIONS)}")
    return [pytest.param(CONDITIONS[n], id=n) for n in names]


#: The seed of every randomised impairment in the suites.  The same seed and the same
#: packets give the same decisions (docs/engine.md), so a failed statistical check replays
#: exactly instead of being the 1-in-100 miss a 99% interval allows.  Fixed once, never
#: tuned to make a test pass.
SUITE_SEED = 1


def seeded(router: Any, netem: str) -> str:
    """`netem` with `seed SUITE_SEED` added where the backend supports it.

    The userspace engine seeds on any kernel; tc netem's `seed` needs Linux and
    iproute2 6.3 or later, so on the kernel backend the impairment stays unseeded.
    """
    if not netem or netem.strip() == "partition" or "seed" in netem.split():
        return netem
    if router.impair_status()["backend"] != "userspace":
        return netem
    return f"{netem} seed {SUITE_SEED}"


@contextlib.contextmanager
def impaired(router: Any, condition: Condition | str, direction: str = "both") -> Iterator[None]:
    """Apply `condition` (seeded, see `seeded`) on the router for the block; nothing at
    all for "clean"."""
    netem = condition.netem if isinstance(condition, Condition) else CONDITIONS[condition].netem
    if not netem:
        yield
        return
    with router.impair(seeded(router, netem), direction=direction):
        yield


def impair_counts(router: Any) -> dict[str, int]:
    """The router's impairment counters ("seen", "dropped", "duplicated", "corrupted",
    "reordered", ...; packets) summed over both directions.

    Read from ``impair_status()["directions"][d]["stats"]``.
    """
    totals: dict[str, int] = {}
    for entry in router.impair_status()["directions"].values():
        stats = entry.get("stats")
        for key, value in (stats or {}).items():
            if isinstance(value, int) and not isinstance(value, bool) and key not in ("queue_num", "seed"):
                totals[key] = totals.get(key, 0) + value
    return totals
