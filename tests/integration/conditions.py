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
from collections.abc import Iterator, Mapping
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


def impair_counts(router: Any) -> dict[str, int | None]:
    """The router's impairment counters ("seen", "dropped", "duplicated", "corrupted",
    "reordered", ...; packets) summed over both directions.

    A counter the router's backend cannot measure is None, not 0: tc netem (the kernel
    backend, on most users' machines) counts only packets sent, drops and its queue, so
    "duplicated", "corrupted", "reordered" are None there. See `assert_acted`.
    """
    counts: dict[str, int | None] = router.impair_totals().counters()
    return counts


#: The router counter that shows each impairment acted (None on a backend that cannot count it).
ROUTER_EVIDENCE = {"loss": "dropped", "duplicate": "duplicated", "corrupt": "corrupted", "reorder": "reordered"}


def assert_acted(condition: Condition, router_counts: Mapping[str, int | None], receiver_count: int | None,
                 receiver_what: str) -> None:
    """Assert that `condition`'s impairment acted on the traffic.

    Two witnesses: the router's counter (ROUTER_EVIDENCE), asserted > 0 wherever the backend
    measures it, and what the receiving end measured (`receiver_count` of `receiver_what`,
    e.g. out-of-order segments under reorder), asserted > 0 always. The receiver's evidence is
    what remains where the router's counter is None (the kernel backend); asserting it on every
    backend keeps it checked where the router's counter exists too.
    """
    counter = ROUTER_EVIDENCE.get(condition.name)
    if counter is None:
        return
    router_count = router_counts.get(counter)
    if router_count is not None:
        assert router_count > 0, f"router {counter} nothing: the impairment did not act ({dict(router_counts)})"
    if receiver_count is None:
        assert router_count is not None, (
            f"no evidence that {condition.name} acted: the router's backend does not count {counter} and the "
            f"receiver could not measure {receiver_what}")
        return
    assert receiver_count > 0, (
        f"the receiver measured no {receiver_what}: the {condition.name} impairment did not act "
        f"(router {counter}: {'not measured' if router_count is None else router_count})")
