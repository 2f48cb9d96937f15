"""The router's scenario operations: ``scenario_start``, ``scenario_stop``, ``scenario_status``.

At most one scenario runs at a time, owned by the router agent (not by the connection that
started it: ``netbed scenario`` may start one and exit, ``netbed status`` then shows its step).
The per-test ``reset`` stops it (``ScenarioSlot.stop_running``).

``ops.py`` builds the operations with its ``apply_directions`` and ``clear_directions`` (this
module never imports ``ops``, which imports it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_core.scenario import ScenarioError, parse_scenario

from .match import parse_match
from .scenario import (
    ApplyDirections,
    ClearDirections,
    ConfirmDirections,
    RouterSteps,
    ScenarioRunner,
    ScheduleDirections,
)
from .trace_ops import refuse_trace_on


class ScenarioSlot:
    """The router's one scenario: the running one, or the last one (its final status)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runner: ScenarioRunner | None = None

    def summary(self) -> dict[str, Any] | None:
        """``{"name", "state", "step", "cycle", "action"}`` of the current (or last) scenario."""
        runner = self.runner
        if runner is None:
            return None
        status = runner.status(timeline=False)
        current = status["current"] or {}
        return {"name": status["name"], "state": status["state"], "step": current.get("step"),
                "cycle": current.get("cycle"), "action": current.get("action"), "error": status["error"]}

    def stop_running(self) -> bool:
        """Stop a running scenario without restoring (the caller resets). True if one ran."""
        with self.lock:
            runner = self.runner
            if runner is None or not runner.running:
                return False
            runner.stop(restore=False)
            return True


SCENARIO = ScenarioSlot()


def scenario_ops(apply: ApplyDirections, clear: ClearDirections, backend: Callable[[], Any],
                 schedule: ScheduleDirections | None = None,
                 confirm: ConfirmDirections | None = None) -> dict[str, Callable[[Args], dict[str, Any]]]:
    """The three operations, executing steps through ``apply`` and ``clear``, or handed to the
    engine ahead of time through ``schedule`` and ``confirm`` where it can (scenario.py)."""

    def op_scenario_start(args: Args) -> dict[str, Any]:
        """Validate every step (netem lines, directions, matches), then start; nothing changes
        when any step is bad. Answers ``scenario_status`` at t0 (``started_wall_ns``)."""
        steps = args.raw("steps", required=True)
        repeat = args.raw("repeat", 1)
        name = args.str("name", "")
        args.finish()
        try:
            scenario = parse_scenario(steps, repeat)
        except ScenarioError as exc:
            raise RequestError(f"scenario_start: {exc}", kind="bad_netem" if exc.bad_netem else "bad_request") \
                from None
        name_of_backend = str(getattr(backend(), "name", ""))  # no backend: say why before starting anything
        for step in scenario.steps:
            try:
                parse_match(step.match)
            except ValueError as exc:
                raise RequestError(f"scenario_start: step {step.index}: {exc}") from None
            if step.netem is not None:
                refuse_trace_on(name_of_backend, step.netem, f"scenario_start: step {step.index}")
        with SCENARIO.lock:
            if SCENARIO.runner is not None and SCENARIO.runner.running:
                raise RequestError(f"scenario_start: scenario {SCENARIO.runner.name!r} is running; stop it first "
                                   "(scenario_stop, or reset)", kind="busy")
            executor = RouterSteps(apply, clear, backend, parse_match, schedule, confirm)
            runner = ScenarioRunner(scenario, executor, name=name)
            SCENARIO.runner = runner
            return runner.start()

    def op_scenario_stop(args: Args) -> dict[str, Any]:
        """Stop the running scenario; the directions it touched return to pristine forwarding.
        Answers its final status (``state: none`` when no scenario ever ran)."""
        args.finish()
        with SCENARIO.lock:
            runner = SCENARIO.runner
            if runner is None:
                return {"state": "none"}
            return runner.stop(restore=True)

    def op_scenario_status(args: Args) -> dict[str, Any]:
        """State, current step and the timeline so far (``timeline: false`` leaves it out)."""
        with_timeline = args.bool("timeline", True)
        args.finish()
        runner = SCENARIO.runner
        if runner is None:
            return {"state": "none"}
        return runner.status(timeline=with_timeline)

    return {"scenario_start": op_scenario_start, "scenario_stop": op_scenario_stop,
            "scenario_status": op_scenario_status}


__all__ = ["SCENARIO", "ScenarioSlot", "scenario_ops"]
