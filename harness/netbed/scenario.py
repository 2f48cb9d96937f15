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

import threading
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
from netbed_core.scenario import Scenario, ScenarioError, Step, parse_duration_ms, parse_scenario

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


class FaultTarget(Protocol):
    """What a host fault acts on: a Docker SDK container (``Host.container``)."""

    def pause(self) -> None: ...

    def unpause(self) -> None: ...

    def restart(self) -> None: ...


class HostFaults:
    """Executes a scenario's host faults (pause, resume, restart) in a harness thread, at the
    router's schedule: step k of cycle c at ``started_ns + c·cycle + offset`` (CLOCK_REALTIME,
    the router's t0). They need Docker, which the router does not have, so their accuracy is
    the harness's: a thread here, and a Docker API call (tens of ms). Every host it paused is
    unpaused when it stops."""

    def __init__(self, scenario: Scenario, targets: Mapping[str, FaultTarget], started_ns: int) -> None:
        self.scenario, self.targets, self.started_ns = scenario, targets, started_ns
        self.records: list[dict[str, Any]] = []
        self.paused: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="netbed host faults", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        mono_minus_wall = time.monotonic_ns() - time.time_ns()
        for cycle, step, offset_ms in self.scenario.schedule():
            if step.on_router:
                continue
            due_wall = self.started_ns + round(offset_ms * 1e6)
            if self._stop.wait(max(0.0, (due_wall + mono_minus_wall - time.monotonic_ns()) / 1e9)):
                return
            self._execute(cycle, step, due_wall)

    def _execute(self, cycle: int, step: Step, due_wall: int) -> None:
        began = time.time_ns()
        error = None
        host = str(step.host)
        try:
            target = self.targets[host]
            if step.action == "pause":
                target.pause()
                with self._lock:
                    self.paused.add(host)
            elif step.action == "resume":
                target.unpause()
                with self._lock:
                    self.paused.discard(host)
            else:
                target.restart()
        except Exception as exc:  # noqa: BLE001 - recorded in the timeline, the scenario goes on
            error = f"{type(exc).__name__}: {exc}"
        done = time.time_ns()
        with self._lock:
            self.records.append({"step": step.index, "cycle": cycle, "action": step.describe(), "by": "harness",
                                 "scheduled_wall_ns": due_wall, "began_wall_ns": began,
                                 "effective_wall_ns": None if error else done,
                                 "late_ms": None if error else (done - due_wall) / 1e6, "error": error})

    def stop(self) -> None:
        """End the thread and unpause every host it left paused. Idempotent."""
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            paused, self.paused = set(self.paused), set()
        for host in sorted(paused):
            self.targets[host].unpause()

    def merged(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The router's timeline with its host-fault rows replaced by what the harness did."""
        with self._lock:
            done = {(r["step"], r["cycle"]): r for r in self.records}
        return [done.get((r["step"], r["cycle"]), r) if r.get("by") == "harness" else r for r in rows]


def check_fault_targets(scenario: Scenario, targets: Mapping[str, Any] | None) -> None:
    """Every host fault names a host the harness can reach, and not the router (pausing it
    would stop the clock that runs the scenario)."""
    for step in scenario.steps:
        if step.on_router:
            continue
        if step.host == "router":
            raise ScenarioError(f"{step.action}: the router runs the scenario and cannot be paused or "
                                "restarted by it", step.index)
        if targets is None or step.host not in targets:
            known = ", ".join(sorted(h for h in (targets or {}) if h != "router")) or "none reachable here"
            raise ScenarioError(f"{step.action}: unknown host {step.host!r}; hosts: {known}", step.index)


class RunningScenario:
    """A scenario the router is running; a context manager that stops it on exit."""

    def __init__(self, router: ScenarioRouter, scenario: Scenario, name: str, started: Mapping[str, Any],
                 faults: HostFaults | None = None) -> None:
        self.router = router
        self.scenario = scenario
        self.name = name
        self.started_ns = int(started["started_wall_ns"])
        """When the scenario's clock started (step offsets count from here), CLOCK_REALTIME ns."""
        self.faults = faults
        self._final: dict[str, Any] | None = None

    def __enter__(self) -> RunningScenario:
        return self

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` has run (the final status is kept)."""
        return self._final is not None

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self, timeline: bool = True) -> dict[str, Any]:
        """The router's ``scenario_status`` (docs/agent-protocol.md), host faults as the harness
        executed them; the final one once stopped."""
        if self._final is not None:
            return self._final
        return self._merge(self.router.call("scenario_status", timeline=timeline))

    def _merge(self, status: dict[str, Any]) -> dict[str, Any]:
        if self.faults is not None and "timeline" in status:
            status = {**status, "timeline": self.faults.merged(status["timeline"])}
        return status

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
            try:
                if self.faults is not None:
                    self.faults.stop()
            finally:
                self._final = self._merge(self.router.call("scenario_stop"))
        return self._final

    def timeline(self) -> list[TimelineEntry]:
        """Every step executed so far (or until it stopped), in order."""
        return [TimelineEntry.from_wire(row) for row in self.status().get("timeline", [])]


def start(router: ScenarioRouter, steps: Sequence[Mapping[str, Any]] | Scenario, repeat: int = 1,
          name: str = "", targets: Mapping[str, FaultTarget] | None = None) -> RunningScenario:
    """Validate ``steps`` and have the router start them now (``netbed_core.scenario`` for the
    step format); ``targets`` (host name -> container) execute host faults. Raises
    ScenarioError naming the step before anything changes."""
    scenario = steps if isinstance(steps, Scenario) else parse_scenario(list(steps), repeat)
    check_fault_targets(scenario, targets)
    started = router.call("scenario_start", name=name, **scenario.to_wire())
    faults = None
    if targets is not None and any(not s.on_router for s in scenario.steps):
        faults = HostFaults(scenario, targets, int(started["started_wall_ns"]))
    return RunningScenario(router, scenario, name, started, faults)


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


__all__ = ["FaultTarget", "HostFaults", "RunningScenario", "ScenarioFailed", "TimelineEntry", "flap_steps",
           "parse_scenario", "ramp_steps", "start"]
