"""A scenario (``netbed_core.scenario``) executed by the router itself, on its monotonic clock.

One thread per running scenario. Step k of cycle c is due at the absolute time
``t0 + c * cycle + offset_k`` (``time.monotonic_ns``), computed from the start, never from the
previous step's end: a late step does not push the later ones back, so error never accumulates.
The thread waits on an Event (so ``stop`` wakes it at once) until ``SPIN_NS`` before the
deadline, then polls the clock up to it: ``Event.wait`` alone wakes up to a scheduler tick
late, the poll costs at most ``SPIN_NS`` of CPU per step.

Userspace engine steps go AHEAD of time (``StepExecutor.schedule``): up to ``LEAD_NS``
before the deadline (as soon as the previous step took effect, when steps are closer), the
thread hands the step to the direction's engine process with its deadline on
CLOCK_MONOTONIC, and the engine's worker switches by itself for the first packet it reads at
or after the deadline, or at the deadline when idle (``pending_switch.py``). The thread then
sleeps to the deadline (no spinning: it is not on the path) and asks when the switch
happened (``StepExecutor.confirm``). Steps the engine cannot take ahead (a ``match``, which
rewrites iptables rules; the kernel backend) run as before: the thread wakes at the deadline
and applies them.

For every step the timeline records when it was due, when applying began and when it took
effect, in monotonic ns and in CLOCK_REALTIME ns (the clock the sequence receivers stamp
arrivals with; all containers share the host's clocks). ``switched_by: engine`` (a step
handed over ahead): ``began`` is the deadline (the engine never switches before it),
``handed_ns`` when the thread handed it over, ``effective`` the engine's own switch time.
``switched_by: router``: ``began`` is when the thread started applying, ``effective`` when the
apply returned (for tc, the ``replace`` and its read-back; for the engine, its swap).

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
#: How long before a deadline a step is handed to the engine at most, ns (steps closer than
#: this go as soon as the previous one took effect).
LEAD_NS = 100_000_000
#: How long after a deadline the thread waits for the engine to report its switch, seconds
#: (below the supervisor's answer timeout, engine_supervisor.ANSWER_TIMEOUT_S).
CONFIRM_TIMEOUT_S = 2.0
#: How long ``stop`` waits for the thread to end, seconds (a step in progress finishes first).
STOP_TIMEOUT_S = 20.0


class StepExecutor(Protocol):
    """What the runner needs of the router (``RouterSteps`` below; a fake in unit tests)."""

    def prepare(self, directions: Sequence[str]) -> None:
        """Before the first step: make switching these directions fast (userspace: keep their
        packets queued to the engine even while clear, so no iptables change is on the path)."""

    def run(self, step: Step, origin: str) -> None:
        """Apply ``step`` (netem or clear) now. Raises on failure."""

    def schedule(self, step: Step, at_ns: int) -> object | None:
        """Hand ``step`` (netem or clear) over to take effect by itself at ``at_ns``
        (monotonic). A ticket for ``confirm``, or None when it cannot (nothing changed: the
        runner applies it with ``run`` at its time). Raises on failure."""

    def confirm(self, step: Step, ticket: object, origin: str, timeout_s: float) -> int | None:
        """After the deadline: when the step handed over took effect (monotonic ns), waiting up
        to ``timeout_s``; None if it did not report one."""

    def release(self, directions: Sequence[str]) -> None:
        """Undo ``prepare``, leaving each direction's current setting as it is."""

    def restore(self, directions: Sequence[str], origin: str) -> None:
        """Pristine forwarding for ``directions``, and undo ``prepare``."""


ApplyDirections = Callable[[Sequence[str], Netem, "str | None", "dict[str, Any] | None", str], None]
ClearDirections = Callable[[Sequence[str], str], None]
ScheduleDirections = Callable[[Sequence[str], "Netem | None", "dict[str, Any] | None", int], "dict[str, int] | None"]
ConfirmDirections = Callable[[Sequence[str], "Netem | None", "dict[str, int]", str, float], "int | None"]


class RouterSteps:
    """The router's :class:`StepExecutor`: netem and clear steps through the same two functions
    as the ``impair`` and ``clear`` operations (``ops.apply_directions``, ``ops.clear_directions``),
    or handed over ahead through ``ops.schedule_directions`` and ``ops.confirm_directions``
    (without those two, every step runs at its time)."""

    def __init__(self, apply: ApplyDirections, clear: ClearDirections, backend: Callable[[], Any],
                 parse_match: Callable[[str | None], dict[str, Any] | None],
                 schedule: ScheduleDirections | None = None, confirm: ConfirmDirections | None = None) -> None:
        self._apply, self._clear, self._backend, self._parse_match = apply, clear, backend, parse_match
        self._schedule, self._confirm = schedule, confirm

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

    def schedule(self, step: Step, at_ns: int) -> object | None:
        if self._schedule is None or self._confirm is None:
            return None
        return self._schedule(step.directions, step.netem, self._parse_match(step.match), at_ns)

    def confirm(self, step: Step, ticket: object, origin: str, timeout_s: float) -> int | None:
        assert self._confirm is not None and isinstance(ticket, dict)
        return self._confirm(step.directions, step.netem, ticket, origin, timeout_s)

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
                 max_records: int = MAX_RECORDS, lead_ns: int = LEAD_NS) -> None:
        self.scenario, self.name = scenario, name
        self._executor = executor
        self._clock, self._wall = clock_ns, wall_ns
        self._spin_ns = spin_ns
        self._lead_ns = lead_ns
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
                ahead = "no"
                if step.on_router:
                    if self._doze_until(due - self._lead_ns):
                        return
                    ahead = self._execute_ahead(cycle, step, due)
                    if ahead == "stopped":
                        return
                if ahead == "no":
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

    def _doze_until(self, deadline_ns: int) -> bool:
        """Wait until about ``deadline_ns`` (no spinning: precision is not needed); True when stopped."""
        remaining = deadline_ns - self._clock()
        if remaining > 0:
            return self._wait(remaining / 1e9)
        return self._stop.is_set()

    def _execute_ahead(self, cycle: int, step: Step, due_ns: int) -> str:
        """Hand ``step`` over before ``due_ns`` and record when it took effect: ``done``;
        ``no`` when it cannot go ahead (the caller runs it at its time); ``stopped`` when the
        scenario was stopped before the deadline (its stop or reset then sets the directions,
        which cancels the pending switch)."""
        origin = f"scenario step {step.index}"
        handed = self._clock()
        try:
            ticket = self._executor.schedule(step, due_ns)
        except Exception as exc:  # noqa: BLE001 - recorded, and it ends the scenario
            self._record(cycle, step, due_ns, handed, None, f"{type(exc).__name__}: {exc}", "router")
            return "done"
        if ticket is None:
            return "no"
        if self._doze_until(due_ns):
            return "stopped"
        error = None
        try:
            effective = self._executor.confirm(step, ticket, origin, CONFIRM_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - recorded, and it ends the scenario
            effective, error = None, f"{type(exc).__name__}: {exc}"
        if effective is None and error is None:
            error = f"the engine did not report taking the step within {CONFIRM_TIMEOUT_S:g} s of its deadline"
        self._record(cycle, step, due_ns, due_ns, effective, error, "engine", handed_ns=handed)
        return "done"

    def _execute(self, cycle: int, step: Step, due_ns: int) -> None:
        began = self._clock()
        error = None
        if step.on_router:
            try:
                self._executor.run(step, f"scenario step {step.index}")
            except Exception as exc:  # noqa: BLE001 - recorded, and it ends the scenario
                error = f"{type(exc).__name__}: {exc}"
        self._record(cycle, step, due_ns, began, self._clock() if step.on_router else None, error, "router")

    def _record(self, cycle: int, step: Step, due_ns: int, began: int, effective: int | None, error: str | None,
                switched_by: str, *, handed_ns: int | None = None) -> None:
        """Append the step's timeline record; ``effective`` None: it did not take effect."""
        if error is not None:
            effective = None
        record = {
            "step": step.index,
            "cycle": cycle,
            "action": step.describe(),
            "by": "router" if step.on_router else "harness",
            "scheduled_ns": due_ns,
            "began_ns": began,
            "effective_ns": effective,
            "scheduled_wall_ns": due_ns + self.wall_offset_ns,
            "effective_wall_ns": effective + self.wall_offset_ns if effective is not None else None,
            "late_ms": (effective - due_ns) / 1e6 if effective is not None else None,
            "error": error,
        }
        if step.on_router:
            record["switched_by"] = switched_by
        if handed_ns is not None:
            record["handed_ns"] = handed_ns
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


__all__ = ["CONFIRM_TIMEOUT_S", "LEAD_NS", "MAX_RECORDS", "SPIN_NS", "RouterSteps", "ScenarioRunner", "StepExecutor"]
