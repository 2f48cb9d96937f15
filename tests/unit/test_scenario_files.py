"""Scenario files and the harness's step builders: the bundled named scenarios, errors naming the
file, the line and the step, flap and ramp steps, and RunningScenario against a fake router."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netbed import scenario as scenarios
from netbed.scenario_files import NAMED_FILE, ScenarioFileError, load_file, load_named, resolve
from netbed_core.scenario import ScenarioError, parse_scenario

REQUIRED = {"flaky-wifi", "tunnel", "handover", "degrading-wan"}


def test_bundled_scenarios_exist_parse_and_describe_themselves() -> None:
    named = load_named()
    assert REQUIRED <= set(named)
    for item in named.values():
        assert item.about, f"scenario {item.name} has no 'about'"


def test_every_bundled_step_cites_a_source() -> None:
    """Each step's netem line is preceded by a comment, or repeats a value cited above it."""
    text = NAMED_FILE.read_text()
    data = yaml.safe_load(text)
    cited: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- netem:"):
            value = line.split(":", 1)[1].strip()
            commented = lines[i - 1].strip().startswith("#")
            assert commented or value in cited or value in ("partition", "clear"), f"line {i + 1}: no source"
            cited.add(value)
    assert all(body["steps"] for body in data.values())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_a_bad_netem_line_names_file_line_and_step(tmp_path: Path) -> None:
    path = write(tmp_path, "repeat: 2\nsteps:\n  - netem: delay 10ms\n    duration: 1s\n"
                           "  - netem: delay 10ms loss 120%\n    duration: 1s\n")
    with pytest.raises(ScenarioFileError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}:5: scenario: step 2: netem 'delay 10ms loss 120%': ")


@pytest.mark.parametrize(("text", "where"), [
    ("steps:\n  - netem: clear\n    duraton: 1s\n", ":2: scenario: step 1: unknown key(s) 'duraton'"),
    ("repeat: -1\nsteps:\n  - netem: clear\n    duration: 1s\n", ":1: scenario: repeat: expected a whole number"),
    ("steps: [\n", ":2: not valid YAML"),
    ("stepz: []\n", ":1: scenario: unknown key(s) 'stepz'"),
    ("- 1\n", ":1: scenario: expected a mapping"),
])
def test_malformed_files_say_where(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as info:
        load_file(path)
    assert f"{path}{where}" in str(info.value)


def test_resolve_names_and_files(tmp_path: Path) -> None:
    assert resolve("handover").name == "handover"
    path = write(tmp_path, "steps:\n  - netem: partition\n    duration: 1s\n  - netem: clear\n")
    assert resolve(str(path)).scenario.steps[1].action == "clear"
    with pytest.raises(ScenarioFileError, match="unknown scenario 'nope'; known: degrading-wan"):
        resolve("nope")
    with pytest.raises(ScenarioFileError, match="cannot read scenario file"):
        resolve(str(tmp_path / "missing.yaml"))


def test_flap_is_an_outage_then_a_heal() -> None:
    s = parse_scenario(scenarios.flap_steps(up="20s", down="5s", direction="to-client"), repeat=3)
    assert [(st.start_ms, st.describe()) for st in s.steps] == [(0.0, "to-client: partition"),
                                                                 (5000.0, "to-client: clear")]
    assert s.cycle_ms == 25000.0


def test_ramp_spaces_values_evenly_and_keeps_the_extra() -> None:
    steps = scenarios.ramp_steps("delay", "10ms", "200ms", over="30s", steps=3, extra="loss 1%")
    assert [st["netem"] for st in steps] == ["delay 10ms loss 1%", "delay 105ms loss 1%", "delay 200ms loss 1%"]
    assert parse_scenario(steps).cycle_ms == 30000.0
    rates = scenarios.ramp_steps("rate", "1mbit", "3mbit", over="2s", steps=3)
    assert [st["netem"] for st in rates] == ["rate 1000000bit", "rate 2000000bit", "rate 3000000bit"]
    with pytest.raises(ScenarioError, match="ramp: can move delay, loss, rate, not 'jitter'"):
        scenarios.ramp_steps("jitter", "1ms", "2ms", over="1s")
    with pytest.raises(ScenarioError, match="ramp delay: 'ten' or '20ms' is not a time like 100ms"):
        scenarios.ramp_steps("delay", "ten", "20ms", over="1s")


class FakeRouter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.states = ["running", "finished"]

    def call(self, op: str, /, **args: Any) -> dict[str, Any]:
        self.calls.append((op, args))
        if op == "scenario_start":
            return {"started_wall_ns": 5, "state": "running"}
        if op == "scenario_status":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return {"state": state, "error": None, "timeline": [
                {"step": 1, "cycle": 0, "action": "both: partition", "by": "router", "scheduled_wall_ns": 5,
                 "effective_wall_ns": 6, "late_ms": 1e-6, "error": None}]}
        if op == "scenario_stop":
            return {"state": "stopped", "timeline": []}
        raise AssertionError(op)


def test_running_scenario_waits_reads_the_timeline_and_stops_on_exit() -> None:
    router = FakeRouter()
    with scenarios.start(router, [{"netem": "partition", "duration": "1ms"}], repeat=1, name="x") as sc:
        assert sc.wait(timeout=5)["state"] == "finished"
        (entry,) = sc.timeline()
        assert (entry.step, entry.scheduled_ns, entry.effective_ns) == (1, 5, 6)
    assert router.calls[0] == ("scenario_start", {"name": "x", "steps": [
        {"at": "0.0ms", "duration": "1.0ms", "netem": "partition", "direction": "both"}], "repeat": 1})
    assert router.calls[-1][0] == "scenario_stop"


def test_bad_steps_fail_before_the_router_hears_of_them() -> None:
    router = FakeRouter()
    with pytest.raises(ScenarioError, match="step 1: netem 'delya 1ms'"):
        scenarios.start(router, [{"netem": "delya 1ms"}])
    assert router.calls == []


class FakeContainer:
    def __init__(self, log: list[tuple[str, str, int]], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def _do(self, what: str) -> None:
        self.log.append((what, self.name, time.time_ns()))
        if self.fail:
            raise RuntimeError("docker said no")

    def pause(self) -> None:
        self._do("pause")

    def unpause(self) -> None:
        self._do("unpause")

    def restart(self) -> None:
        self._do("restart")


def test_host_faults_run_at_the_routers_schedule_and_stop_unpauses() -> None:
    log: list[tuple[str, str, int]] = []
    targets = {"server": FakeContainer(log, "server"), "client": FakeContainer(log, "client")}
    s = parse_scenario([{"pause": "server", "duration": "50ms"}, {"resume": "server", "duration": "50ms"},
                        {"restart": "client", "duration": "50ms"}, {"pause": "server", "duration": "1s"}])
    t0 = time.time_ns()
    faults = scenarios.HostFaults(s, targets, t0)
    deadline = time.monotonic() + 10
    while len(log) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    faults.stop()
    assert [(w, n) for w, n, _ in log] == [("pause", "server"), ("unpause", "server"), ("restart", "client"),
                                           ("pause", "server"), ("unpause", "server")]  # the last: stop's
    for (_, _, at), due_ms in zip(log, (0, 50, 100, 150), strict=False):
        assert at >= t0 + due_ms * 1_000_000  # never early
    rows = faults.merged([{"step": 2, "cycle": 0, "by": "harness", "action": "resume server"}])
    assert rows[0]["effective_wall_ns"] is not None and rows[0]["late_ms"] >= 0


def test_a_failed_host_fault_is_recorded_and_the_scenario_goes_on() -> None:
    log: list[tuple[str, str, int]] = []
    faults = scenarios.HostFaults(parse_scenario([{"restart": "server"}]), {"server": FakeContainer(log, "s", True)},
                                  time.time_ns())
    faults._thread.join(5)
    faults.stop()
    assert faults.records[0]["error"] == "RuntimeError: docker said no"


@pytest.mark.parametrize(("steps", "message"), [
    ([{"pause": "router"}], "the router runs the scenario"),
    ([{"pause": "db"}], "unknown host 'db'; hosts: client, server"),
])
def test_host_faults_need_a_reachable_host(steps: list[dict[str, Any]], message: str) -> None:
    router = FakeRouter()
    log: list[tuple[str, str, int]] = []
    with pytest.raises(ScenarioError, match=message):
        scenarios.start(router, steps, targets={"client": FakeContainer(log, "c"), "server": FakeContainer(log, "s"),
                                                "router": FakeContainer(log, "r")})
    assert router.calls == [] and log == []
