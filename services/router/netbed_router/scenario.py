"""A scenario (``netbed_core.scenario``) executed by the router itself, on its monotonic clock.

One thread per running scenario. Step k of cycle c is due at the absolute time
``t0 + c * cycle + offset_k`` (``time.monotonic_ns``), computed from the start, never from the
previous step's end: a late step does not push the later ones back, so error never accumulates.
The thread waits on an Event (so ``stop`` wakes it at once) until ``SPIN_NS`` before the
deadline, then polls the clock up to it: ``Event.wait`` alone wakes up to a scheduler tick
late, the poll costs at most ``SPIN_NS`` of CPU per step.

For every step the timeline records when it was due, when applying began and when the apply
returned (``effective``: the backend has switched; for the userspace engine the engine
process has swapped its configuration, for tc the ``replace`` has returned), in monotonic ns
and in CLOCK_REALTIME ns (the clock the sequence receivers stamp arrivals with; all containers
share the host's clocks).

Host faults (``pause``, ``resume``, ``restart``) need Docker, which the router does not have:
the router only records when they were due (``by: harness``); the harness executes them.

Standard library only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from netbed_core.netem import Netem
from netbed_core.scenario import Scenario, Step

log = logging.getLogger("netbed_agent")

#: How long before a deadline the runner stops sleeping and polls the clock, ns.
SPIN_NS = 1_000_000
#: Timeline records kept (the oldest are dropped beyond; ``timeline_dropped`` counts them).
MAX_RECORDS = 10_000
#: How long ``stop`` waits for the thread to end, seconds (a step in progress finishes first).
STOP_TIMEOUT_S = 20.0


class StepExecutor(Protocol):
    """What the runner needs of the router (``RouterSteps`` below; a fake in unit tests)."""

    def prepare(self, directions: Sequence[str]) -> None:
        """Before the first step: make switching these directions fast (userspace: keep their
        packets queued to the engine even while clear, so no iptables change is on the path)."""

    def run(self, step: Step, origin: str) -> None:
        """Apply ``step`` (netem or clear) now. Raises on failure."""

    def release(self, directions: Sequence[str]) -> None:
        """Undo ``prepare``, leaving each direction's current setting as it is."""

    def restore(self, directions: Sequence[str], origin: str) -> None:
        """Pristine forwarding for ``directions``, and undo ``prepare``."""


ApplyDirections = Callable[[Sequence[str], Netem, "str | None", "dict[str, Any] | None", str], None]
ClearDirections = Callable[[Sequence[str], str], None]


class RouterSteps:
    """The router's :class:`StepExecutor`: netem and clear steps through the same two functions
    as the ``impair`` and ``clear`` operations (``ops.apply_directions``, ``ops.clear_directions``)."""

    def __init__(self, apply: ApplyDirections, clear: ClearDirections, backend: Callable[[], Any],
                 parse_match: Callable[[str | None], dict[str, Any] | None]) -> None:
        self._apply, self._clear, self._backend, self._parse_match = apply, clear, backend, parse_match

    def _keep(self, directions: Sequence[str], on: bool) -> None:
        keep = getattr(self._backend(), "keep_queued", None)
        if keep is not None:
            for direction in directions:
                keep(direction, on)

    def prepare(self, directions: Sequence[str]) -> None:
        self._keep(directions, True)

    def run(self, step: Step, origin: str) -> None:
        if step.netem is None:
            self._clear(step.directions, origin)
        else:
            self._apply(step.directions, step.netem, step.match, self._parse_match(step.match), origin)

    def release(self, directions: Sequence[str]) -> None:
        self._keep(directions, False)

    def restore(self, directions: Sequence[str], origin: str) -> None:
        try:
            self._clear(directions, origin)
        finally:
            self._keep(directions, False)


class ScenarioRunner:
    """Runs one scenario in a thread; ``status()`` at any time, ``stop()`` to end it.

    ``clock_ns`` (monotonic) and ``wall_ns`` (CLOCK_REALTIME) and ``wait`` (an Event-like
    ``wait(seconds) -> bool``, True when stopped) are injectable for tests."""

    def __init__(self, scenario: Scenario, executor: StepExecutor, *, name: str = "",
                 clock_ns: Callable[[], int] = time.monotonic_ns, wall_ns: Callable[[], int] = time.time_ns,
                 wait: Callable[[float], bool] | None = None, spin_ns: int = SPIN_NS,
                 max_records: int = MAX_RECORDS) -> None:
        self.scenario, self.name = scenario, name
        self._executor = executor
        self._clock, self._wall = clock_ns, wall_ns
        self._spin_ns = spin_ns
        self._stop = threading.Event()
        self._wait = wait if wait is not None else self._stop.wait
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._recorded = 0
        self._thread: threading.Thread | None = None
        self.state = "new"
        self.error: str | None = None
        self.t0_ns = 0
        self.wall_offset_ns = 0
        self.current: dict[str, Any] | None = None
        self._directions = scenario.router_directions

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Prepare the directions, fix t0 (now) and start the thread; returns ``status()``."""
        self._executor.prepare(self._directions)
        self.wall_offset_ns = self._wall() - self._clock()
        self.t0_ns = self._clock()
        self.state = "running"
        self._thread = threading.Thread(target=self._run, name=f"scenario {self.name or '(unnamed)'}", daemon=True)
        self._thread.start()
        return self.status()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the thread has ended (finished, failed or stopped)."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self, *, restore: bool = True) -> dict[str, Any]:
        """End it now (a step being applied completes first); with ``restore`` the directions it
        touched return to pristine forwarding (else they keep their setting and the caller
        clears them). Idempotent; returns ``status()``."""
        self._stop.set()
        if not self.wait(STOP_TIMEOUT_S):
            raise RuntimeError(f"scenario {self.name!r}: its thread did not end within {STOP_TIMEOUT_S:g} s")
        with self._lock:
            if self.state == "running":
                self.state = "stopped"
            self.current = None
        if restore:
            self._executor.restore(self._directions, "scenario stop")
        else:
            self._executor.release(self._directions)  # the caller clears (the per-test reset)
        return self.status()

    @property
    def running(self) -> bool:
        return self.state == "running"

    # -- the thread -------------------------------------------------------------------------------
    def _sleep_until(self, deadline_ns: int) -> bool:
        """Wait until ``deadline_ns`` (monotonic); True when stopped meanwhile."""
        remaining = deadline_ns - self._clock()
        if remaining > self._spin_ns and self._wait((remaining - self._spin_ns) / 1e9):
            return True
        while self._clock() < deadline_ns:
            if self._stop.is_set():
                return True
        return self._stop.is_set()

    def _run(self) -> None:
        final = "finished"
        try:
            for cycle, step, offset_ms in self.scenario.schedule():
                due = self.t0_ns + round(offset_ms * 1e6)
                if self._sleep_until(due):
                    return
                self._execute(cycle, step, due)
                if self.error is not None:
                    final = "failed"
                    break
        except Exception as exc:  # noqa: BLE001 - a bug must end the scenario visibly, not silently
            self.error = f"{type(exc).__name__}: {exc}"
            final = "failed"
        finally:
            with self._lock:
                if self.state == "running" and not self._stop.is_set():
                    self.state = final
            if final == "failed":
                log.error("scenario %r failed: %s; its directions return to pristine forwarding", self.name,
                          self.error)
                try:
                    self._executor.restore(self._directions, "scenario failed")
                except Exception as exc:  # noqa: BLE001 - already failing; say both
                    self.error = f"{self.error}; restoring pristine forwarding also failed: {exc}"
            elif final == "finished" and not self._stop.is_set():
                self._executor.release(self._directions)

    def _execute(self, cycle: int, step: Step, due_ns: int) -> None:
        began = self._clock()
        error = None
        if step.on_router:
            try:
                self._executor.run(step, f"scenario step {step.index}")
            except Exception as exc:  # noqa: BLE001 - recorded, and it ends the scenario
                error = f"{type(exc).__name__}: {exc}"
        effective = self._clock()
        record = {
            "step": step.index,
            "cycle": cycle,
            "action": step.describe(),
            "by": "router" if step.on_router else "harness",
            "scheduled_ns": due_ns,
            "began_ns": began,
            "effective_ns": effective if step.on_router and error is None else None,
            "scheduled_wall_ns": due_ns + self.wall_offset_ns,
            "effective_wall_ns": effective + self.wall_offset_ns if step.on_router and error is None else None,
            "late_ms": (effective - due_ns) / 1e6 if step.on_router and error is None else None,
            "error": error,
        }
        with self._lock:
            self._records.append(record)
            self._recorded += 1
            if error is None:
                self.current = {"step": step.index, "cycle": cycle, "action": step.describe(),
                                "since_wall_ns": record["effective_wall_ns"] or record["scheduled_wall_ns"]}
            else:
                self.error = f"step {step.index} (cycle {cycle}): {error}"

    # -- status -----------------------------------------------------------------------------------
    def status(self, *, timeline: bool = True) -> dict[str, Any]:
        """State (running, finished, stopped, failed), the current step, and the timeline so far."""
        with self._lock:
            out: dict[str, Any] = {
                "state": self.state,
                "name": self.name,
                "repeat": self.scenario.repeat,
                "cycle_ms": self.scenario.cycle_ms,
                "steps": [s.to_wire() for s in self.scenario.steps],
                "started_ns": self.t0_ns,
                "started_wall_ns": self.t0_ns + self.wall_offset_ns,
                "current": dict(self.current) if self.current else None,
                "error": self.error,
                "timeline_dropped": self._recorded - len(self._records),
            }
            if timeline:
                out["timeline"] = [dict(r) for r in self._records]
        return out


__all__ = ["MAX_RECORDS", "SPIN_NS", "RouterSteps", "ScenarioRunner", "StepExecutor"]
