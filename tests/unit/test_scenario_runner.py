"""The router's scenario runner on a fake clock: absolute deadlines (a slow step does not push the
later ones back), the timeline it records, stop and failure returning to pristine forwarding;
the kernel path (tc replace/del at the scheduled times, with a fake tc) and the userspace path
(a clear step inside a scenario swaps the engine and touches no iptables rule)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from test_backend_kernel import FakeKernel
from test_backend_userspace import NETS, FakeHost, FakeWorker

from netbed_core.netem import Netem, parse
from netbed_core.scenario import Step, parse_scenario
from netbed_router.backend import Backend
from netbed_router.backend_kernel import KernelBackend
from netbed_router.backend_userspace import UserspaceBackend
from netbed_router.engine import Engine
from netbed_router.match import parse_match
from netbed_router.scenario import RouterSteps, ScenarioRunner

MS = 1_000_000
T_AT = 9_000 * MS  # a deadline, monotonic ns


class FakeClock:
    """Monotonic ns that only the runner's waits (and slow fake commands) move forward."""

    def __init__(self) -> None:
        self.now = 1_000 * MS
        self.lock = threading.Lock()

    def __call__(self) -> int:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += round(seconds * 1e9)
        return False

    def wall(self) -> int:
        return self.now + 1_700_000_000_000 * MS


class Recorder:
    """A StepExecutor that records (clock, what) and can be slow or fail at a given step."""

    def __init__(self, clock: FakeClock, slow_ms: float = 0.0, fail_at: int | None = None) -> None:
        self.clock, self.slow_ms, self.fail_at = clock, slow_ms, fail_at
        self.events: list[tuple[int, str]] = []

    def prepare(self, directions: Sequence[str]) -> None:
        self.events.append((self.clock(), f"prepare {','.join(directions)}"))

    def run(self, step: Step, origin: str) -> None:
        self.events.append((self.clock(), f"{origin}: {step.describe()}"))
        self.clock.now += round(self.slow_ms * MS)
        if step.index == self.fail_at:
            raise RuntimeError("tc said no")

    def schedule(self, step: Step, at_ns: int) -> object | None:
        return None  # like the kernel backend: every step runs at its time

    def confirm(self, step: Step, ticket: object, origin: str, timeout_s: float) -> int | None:
        raise AssertionError("nothing was handed over")

    def release(self, directions: Sequence[str]) -> None:
        self.events.append((self.clock(), "release"))

    def restore(self, directions: Sequence[str], origin: str) -> None:
        self.events.append((self.clock(), f"restore ({origin})"))


def runner(steps: list[dict[str, Any]], repeat: int, executor: Any, clock: FakeClock) -> ScenarioRunner:
    return ScenarioRunner(parse_scenario(steps, repeat), executor, name="t", clock_ns=clock, wall_ns=clock.wall,
                          wait=clock.wait, spin_ns=0)


FLAP = [{"netem": "clear", "duration": "200ms"}, {"netem": "partition", "duration": "100ms"}]


def test_steps_run_at_absolute_deadlines_even_when_each_one_is_slow() -> None:
    clock = FakeClock()
    rec = Recorder(clock, slow_ms=30)  # every apply takes 30 ms
    r = runner(FLAP, 5, rec, clock)
    t0 = clock.now
    r.start()
    assert r.wait(5)
    runs = [(t - t0) / MS for t, what in rec.events if what.startswith("scenario step")]
    assert runs == [0, 200, 300, 500, 600, 800, 900, 1100, 1200, 1400]  # no drift: not 0, 230, 360...
    status = r.status()
    assert status["state"] == "finished" and rec.events[-1][1] == "release"
    line = status["timeline"][3]
    assert (line["step"], line["cycle"], line["action"]) == (2, 1, "both: partition")
    assert line["scheduled_ns"] == t0 + 500 * MS and line["effective_ns"] == t0 + 530 * MS
    assert line["late_ms"] == 30.0
    assert line["scheduled_wall_ns"] - line["scheduled_ns"] == 1_700_000_000_000 * MS
    assert status["current"]["step"] == 2 and status["current"]["cycle"] == 4


def test_a_failed_step_ends_the_scenario_and_restores_pristine_forwarding() -> None:
    clock = FakeClock()
    rec = Recorder(clock, fail_at=2)
    r = runner(FLAP, 0, rec, clock)
    r.start()
    assert r.wait(5)
    status = r.status()
    assert status["state"] == "failed"
    assert status["error"] == "step 2 (cycle 0): RuntimeError: tc said no"
    assert status["timeline"][-1]["effective_ns"] is None
    assert rec.events[-1][1] == "restore (scenario failed)"


def test_stop_ends_a_scenario_that_repeats_forever_and_restores() -> None:
    gate = threading.Event()

    class Blocking(Recorder):
        def run(self, step: Step, origin: str) -> None:
            super().run(step, origin)
            if step.index == 2:
                gate.set()

    clock = FakeClock()
    rec = Blocking(clock)
    r = ScenarioRunner(parse_scenario(FLAP, 0), rec)
    r.start()  # the real clock: the first step at once, the second 200 ms later
    assert gate.wait(5)
    status = r.stop()
    assert status["state"] == "stopped" and status["current"] is None
    assert rec.events[-1][1] == "restore (scenario stop)"
    assert r.stop()["state"] == "stopped"  # idempotent


class Ahead(Recorder):
    """An executor whose engine takes steps ahead and switches ``switch_late_ms`` after each
    deadline; steps with a match cannot go ahead (they run at their time)."""

    def __init__(self, clock: FakeClock, switch_late_ms: float) -> None:
        super().__init__(clock)
        self.switch_late_ms = switch_late_ms

    def schedule(self, step: Step, at_ns: int) -> object | None:
        if step.match is not None:
            return None
        self.events.append((self.clock(), f"handed {step.describe()} for {at_ns}"))
        return {"at_ns": at_ns}

    def confirm(self, step: Step, ticket: object, origin: str, timeout_s: float) -> int | None:
        assert isinstance(ticket, dict) and self.clock() >= ticket["at_ns"]  # asked after the deadline
        return int(ticket["at_ns"] + self.switch_late_ms * MS)


def test_engine_steps_are_handed_over_ahead_and_the_engines_switch_time_is_recorded() -> None:
    clock = FakeClock()
    rec = Ahead(clock, switch_late_ms=0.25)
    steps = [{"netem": "clear", "duration": "200ms"}, {"netem": "partition", "duration": "50ms"},
             {"netem": "delay 5ms", "match": "udp:5000", "duration": "100ms"}]
    r = runner(steps, 2, rec, clock)
    t0 = clock.now
    r.start()
    assert r.wait(5)
    status = r.status()
    assert status["state"] == "finished"
    handed = [((t - t0) / MS, what) for t, what in rec.events if what.startswith("handed")]
    # LEAD_NS (100 ms) ahead of the deadline (the first step: at once, it is due at t0)
    assert [t for t, _ in handed] == [0, 100, 250, 450]
    assert [what.rsplit(" for ", 1)[1] for _, what in handed] == [
        str(t0 + ms * MS) for ms in (0, 200, 350, 550)]
    runs = [(t - t0) / MS for t, what in rec.events if what.startswith("scenario step")]
    assert runs == [250, 600]  # the step with a match: applied by the thread at its time
    rows = status["timeline"]
    engine_rows = [row for row in rows if row["switched_by"] == "engine"]
    assert len(engine_rows) == 4
    for row in engine_rows:
        assert row["began_ns"] == row["scheduled_ns"]  # the engine never switches before the deadline
        assert row["effective_ns"] == row["scheduled_ns"] + 250_000 and row["late_ms"] == 0.25
        assert row["handed_ns"] <= row["scheduled_ns"]
    assert [row["switched_by"] for row in rows] == ["engine", "engine", "router"] * 2


def test_an_engine_that_does_not_report_its_switch_fails_the_step() -> None:
    class Silent(Ahead):
        def confirm(self, step: Step, ticket: object, origin: str, timeout_s: float) -> int | None:
            return None

    clock = FakeClock()
    rec = Silent(clock, 0)
    r = runner(FLAP, 1, rec, clock)
    r.start()
    assert r.wait(5)
    status = r.status()
    assert status["state"] == "failed" and "did not report taking the step" in status["error"]
    assert status["timeline"][-1]["effective_ns"] is None
    assert rec.events[-1][1] == "restore (scenario failed)"


def test_host_faults_are_recorded_for_the_harness_not_executed() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    r = runner([{"pause": "server", "duration": "1s"}, {"resume": "server"}], 1, rec, clock)
    r.start()
    assert r.wait(5)
    assert not any(what.startswith("scenario step") for _, what in rec.events)
    line = r.status()["timeline"][0]
    assert (line["by"], line["action"], line["effective_ns"]) == ("harness", "pause server", None)


# -- the kernel path: tc replace at the scheduled time, with a fake tc -----------------------------

def steps_on(backend: Backend, clock: FakeClock, log: list[tuple[int, list[str]]]) -> RouterSteps:
    """RouterSteps over ``backend`` with apply/clear functions shaped like ops.py's."""
    def apply(directions: Sequence[str], netem: Netem, match_text: str | None, match: dict[str, Any] | None,
              origin: str) -> None:
        for d in directions:
            backend.apply(d, netem.to_dict(), match)

    def clear(directions: Sequence[str], origin: str) -> None:
        for d in directions:
            backend.clear(d)

    return RouterSteps(apply, clear, lambda: backend, parse_match)


def test_kernel_steps_are_tc_replace_at_the_scheduled_times() -> None:
    clock = FakeClock()
    kernel = FakeKernel()
    log: list[tuple[int, list[str]]] = []

    def timed(argv: Sequence[str]) -> Any:
        if argv[:3] in (["tc", "qdisc", "replace"], ["tc", "qdisc", "del"]):
            log.append((clock(), list(argv)))
        return kernel(argv)

    backend = KernelBackend(*NETS, runner=timed)
    steps = [{"netem": "delay 10ms", "direction": "to-server", "duration": "100ms"},
             {"netem": "delay 50ms", "direction": "to-server", "duration": "100ms"},
             {"netem": "clear", "direction": "to-server", "duration": "100ms"}]
    r = runner(steps, 2, steps_on(backend, clock, log), clock)
    t0 = clock.now
    r.start()
    assert r.wait(5)
    assert r.status()["state"] == "finished"
    got = [((t - t0) / MS, argv[2], argv[-1] if argv[2] == "replace" else argv[4]) for t, argv in log]
    assert got == [(0, "replace", "10ms"), (100, "replace", "50ms"), (200, "del", "eth0"),
                   (300, "replace", "10ms"), (400, "replace", "50ms"), (500, "del", "eth0")]
    assert all(argv[4] == "eth0" for _, argv in log)  # to-server leaves by the server-side interface


# -- the userspace path: inside a scenario a clear step swaps the engine, no iptables ------------

@pytest.fixture
def userspace() -> tuple[UserspaceBackend, FakeHost, list[FakeWorker]]:
    host, workers = FakeHost(), []

    def factory(queue_num: int, name: str) -> Any:
        w = FakeWorker(queue_num, name)
        workers.append(w)
        return w
    b = UserspaceBackend(*NETS, runner=host, worker_factory=factory)
    host.take()
    return b, host, workers


def test_kept_directions_switch_without_touching_iptables(
        userspace: tuple[UserspaceBackend, FakeHost, list[FakeWorker]]) -> None:
    backend, host, workers = userspace
    backend.keep_queued("to-server", True)
    setup = host.take()
    assert any("-A NETBED -i eth1 -o eth0 -j NFQUEUE --queue-num 0" in (stdin or "") for _, stdin in setup)
    for _ in range(3):
        backend.apply("to-server", parse("partition").to_dict())
        assert workers[0].engine.config.partition
        backend.clear("to-server")
        assert workers[0].engine.config.is_noop
    assert host.take() == []  # every switch was an engine swap
    assert not backend.stats().directions["to-server"].active
    backend.keep_queued("to-server", False)  # clear and released: pristine kernel forwarding again
    assert host.jump == {"iptables": False, "ip6tables": False}


class SchedulingWorker(FakeWorker):
    """A FakeWorker that takes engines with a deadline, as EngineProcess does: ``engine`` is the
    desired one at once (the process swaps it in at the deadline)."""

    def __init__(self, queue_num: int, name: str) -> None:
        super().__init__(queue_num, name)
        self.scheduled: list[tuple[Engine, int]] = []
        self.armed: list[bool] = []

    def arm(self, on: bool) -> bool:
        self.armed.append(on)
        return True

    def schedule_engine(self, engine: Engine, at_ns: int) -> None:
        self.scheduled.append((engine, at_ns))
        self.engine = engine

    def wait_switched(self, timeout_s: float) -> int | None:
        return self.scheduled[-1][1] + 1 if self.scheduled else None


def test_kept_directions_hand_steps_to_the_engine_unless_a_rule_would_change() -> None:
    host, workers = FakeHost(), []

    def factory(queue_num: int, name: str) -> Any:
        w = SchedulingWorker(queue_num, name)
        workers.append(w)
        return w
    backend = UserspaceBackend(*NETS, runner=host, worker_factory=factory)
    host.take()
    assert backend.schedule("to-server", parse("partition").to_dict(), None, T_AT) is None  # not kept
    backend.keep_queued("to-server", True)
    host.take()
    assert workers[0].armed == [True]  # an idle worker can be woken by a step handed over
    assert backend.schedule("to-server", parse("partition").to_dict(), parse_match("udp:5000"), T_AT) is None
    applied = backend.schedule("to-server", parse("delay 5ms").to_dict(), None, T_AT)
    assert applied is not None and applied.queued
    engine, at = workers[0].scheduled[-1]
    assert at == T_AT and engine.config.latency_ns == 5 * MS
    assert backend.stats().directions["to-server"].active
    assert backend.schedule("to-server", None, None, T_AT + MS) is not None  # a clear keeps the counters
    assert workers[0].scheduled[-1][0].config.is_noop and workers[0].scheduled[-1][0].stats is engine.stats
    assert backend.wait_switched("to-server", 0) == T_AT + MS + 1
    assert host.take() == []  # no iptables rule changed
    backend.apply("to-server", parse("delay 5ms").to_dict(), parse_match("udp:5000"))
    assert not backend.can_schedule("to-server", None)  # the rule would lose its match
    backend.keep_queued("to-server", False)
    assert workers[0].armed == [True, False]
