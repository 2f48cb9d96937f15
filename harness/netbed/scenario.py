"""Network conditions over time, from Python: a scenario the router runs on its own clock.

    with router.scenario([{"netem": "delay 10ms", "duration": "2s"},
                          {"netem": "partition", "duration": "500ms"}], repeat=3) as sc:
        ...                               # steps change while this runs
        sc.wait()                         # until the third cycle has ended
    sc.timeline()                         # when each step was due and took effect

    with router.flap(up="2s", down="200ms", repeat=5): ...
    with router.ramp("delay", "10ms", "200ms", over="30s", steps=10): ...

The steps are validated here first, with the same parser as the router's
(``netbed_core.scenario``), so a typo fails before anything changes. Leaving the ``with``
block stops the scenario and returns the directions it touched to pristine forwarding;
so does the per-test reset. Times on the timeline are CLOCK_REALTIME ns, the clock the
sequence receivers stamp arrivals with (all containers share the host's clocks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from netbed_core.netem.units import (
    UnitError,
    format_percent,
    format_rate,
    format_time_ms,
    parse_percent,
    parse_rate_bits,
    parse_time_ms,
)
from netbed_core.scenario import Scenario, ScenarioError, parse_duration_ms, parse_scenario

from .errors import NetbedError

#: How often ``wait`` asks the router whether the scenario has ended, seconds.
POLL_S = 0.05


class ScenarioFailed(NetbedError):
    """The router ended a scenario because a step failed (the message names the step)."""


class ScenarioRouter(Protocol):
    """What a running scenario uses of its router (a ``netbed.host.Router``)."""

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TimelineEntry:
    """One executed step: when it was due and when it took effect (CLOCK_REALTIME ns; None
    when it did not: an error, or a host fault the router only records)."""

    step: int
    cycle: int
    action: str
    by: str
    """"router", or "harness" for a host fault."""
    scheduled_ns: int
    effective_ns: int | None
    late_ms: float | None
    """effective - scheduled, ms."""
    error: str | None

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> TimelineEntry:
        return cls(int(row["step"]), int(row["cycle"]), str(row["action"]), str(row["by"]),
                   int(row["scheduled_wall_ns"]),
                   None if row.get("effective_wall_ns") is None else int(row["effective_wall_ns"]),
                   None if row.get("late_ms") is None else float(row["late_ms"]), row.get("error"))


class RunningScenario:
    """A scenario the router is running; a context manager that stops it on exit."""

    def __init__(self, router: ScenarioRouter, scenario: Scenario, name: str, started: Mapping[str, Any]) -> None:
        self.router = router
        self.scenario = scenario
        self.name = name
        self.started_ns = int(started["started_wall_ns"])
        """When the scenario's clock started (step offsets count from here), CLOCK_REALTIME ns."""
        self._final: dict[str, Any] | None = None

    def __enter__(self) -> RunningScenario:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self, timeline: bool = True) -> dict[str, Any]:
        """The router's ``scenario_status`` (docs/agent-protocol.md); the final one once stopped."""
        if self._final is not None:
            return self._final
        return self.router.call("scenario_status", timeline=timeline)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the scenario has ended; its final status. ``timeout`` (seconds) defaults
        to the scenario's length plus 10 s. Raises ScenarioFailed if a step failed and
        TimeoutError if it still runs (a scenario that repeats until stopped always does)."""
        if timeout is None:
            if self.scenario.total_ms is None:
                raise NetbedError(f"scenario {self.name!r} repeats until stopped; give wait() a timeout or stop() it")
            timeout = self.scenario.total_ms / 1000 + 10
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(timeline=False)
            if status["state"] != "running":
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"scenario {self.name!r} still runs after {timeout:g} s "
                                   f"(step {(status.get('current') or {}).get('step')})")
            time.sleep(POLL_S)
        status = self.status()
        if status["state"] == "failed":
            raise ScenarioFailed(f"scenario {self.name!r} failed: {status['error']}")
        return status

    def stop(self) -> dict[str, Any]:
        """Stop it (idempotent); the directions it touched return to pristine forwarding.
        Returns the final status, timeline included."""
        if self._final is None:
            self._final = self.router.call("scenario_stop")
        return self._final

    def timeline(self) -> list[TimelineEntry]:
        """Every step executed so far (or until it stopped), in order."""
        return [TimelineEntry.from_wire(row) for row in self.status().get("timeline", [])]


def start(router: ScenarioRouter, steps: Sequence[Mapping[str, Any]] | Scenario, repeat: int = 1,
          name: str = "") -> RunningScenario:
    """Validate ``steps`` and have the router start them now (``netbed_core.scenario`` for the
    step format). Raises ScenarioError naming the step before anything changes."""
    scenario = steps if isinstance(steps, Scenario) else parse_scenario(list(steps), repeat)
    started = router.call("scenario_start", name=name, **scenario.to_wire())
    return RunningScenario(router, scenario, name, started)


def flap_steps(up: str, down: str, direction: str = "both", match: str | None = None) -> list[dict[str, Any]]:
    """One flap cycle: the link down (a partition) for ``down``, then up (pristine) for ``up``.
    The outage comes first so that a scenario of whole cycles ends healed."""
    where: dict[str, Any] = {"direction": direction, **({"match": match} if match else {})}
    return [{"netem": "partition", "duration": down, **where}, {"netem": "clear", "duration": up, **where}]


def _rate_bits(text: str) -> float:
    return float(parse_rate_bits(text))


def _format_rate(bits_per_s: float) -> str:
    return format_rate(round(bits_per_s))


def _format_time(ms: float) -> str:
    return format_time_ms(ms)


#: What ``ramp`` can move: how its values are read (to a number) and written (netem text).
_RAMPS: dict[str, tuple[Callable[[str], float], Callable[[float], str]]] = {
    "delay": (parse_time_ms, _format_time),
    "loss": (parse_percent, format_percent),
    "rate": (_rate_bits, _format_rate),
}


def ramp_steps(what: str, start: str, end: str, over: str, steps: int = 10, direction: str = "both",
               match: str | None = None, extra: str = "") -> list[dict[str, Any]]:
    """``steps`` equal-length steps moving ``what`` (delay, loss or rate) from ``start`` to
    ``end`` (both included, evenly spaced) over ``over``; ``extra`` is netem text added to each
    step (e.g. "loss 1%"). The last value stays when the ramp ends."""
    if what not in _RAMPS:
        raise ScenarioError(f"ramp: can move {', '.join(_RAMPS)}, not {what!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ScenarioError(f"ramp: steps must be a whole number of at least 2, got {steps!r}")
    read, write = _RAMPS[what]
    try:
        a, b = read(start), read(end)
    except UnitError as exc:
        raise ScenarioError(f"ramp {what}: {start!r} or {end!r} is not {exc}") from None
    total_ms = parse_duration_ms(over, "over")
    each = f"{total_ms / steps!r}ms"
    where: dict[str, Any] = {"direction": direction, **({"match": match} if match else {})}
    return [{"netem": f"{what} {write(a + (b - a) * i / (steps - 1))} {extra}".strip(), "duration": each, **where}
            for i in range(steps)]


__all__ = ["RunningScenario", "ScenarioFailed", "TimelineEntry", "flap_steps", "parse_scenario", "ramp_steps",
           "start"]
