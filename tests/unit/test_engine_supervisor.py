"""The engine process's protocol and its supervision, without root: the child runs the real
``engine_process.serve`` loop on a fake queue worker (no NFQUEUE), so killing it exercises the
real restart path of ``EngineProcess``."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from typing import Any

import pytest

from netbed_core.netem import parse
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, EngineConfig, HeldQueue
from netbed_router.engine_process import EngineHost, config_from_wire, config_to_wire, serve
from netbed_router.engine_supervisor import EngineProcess, exit_reason

FAKE_CHILD = '''
import sys
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, EngineConfig, HeldQueue
from netbed_router.engine_process import EngineHost, serve

class FakeWorker:
    def __init__(self):
        self.held = HeldQueue()
        self.engine = Engine(EngineConfig(seed=0), self.held, EngineCounters())
        self.alive, self.fatal = True, None
    def set_engine(self, engine):
        self.engine = engine
        # what the engine would decide for 20 packets: proof of config, seed and stream
        engine.stats.last_error = repr([engine.on_packet(i, b"", 100, 0) for i in range(20)])
    def flush(self, timeout_s=2.0):
        return True
    def stop(self):
        self.alive = False
    def arm(self, on):
        self.engine.stats.errors = 1 if on else 0  # seen through stats: armed or not
        return on

sys.exit(serve(EngineHost(FakeWorker()), sys.stdin, sys.stdout))
'''


def decisions(text: str, stream: int) -> str:
    eng = Engine(EngineConfig.from_dict(parse(text).to_dict()), stream=stream)
    return repr([eng.on_packet(i, b"", 100, 0) for i in range(20)])


@pytest.fixture
def proc() -> Any:
    p = EngineProcess(1, "to-client", command=[sys.executable, "-c", FAKE_CHILD])
    yield p
    p.stop()


def wait_for(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_config_round_trips_through_json() -> None:
    cfg = EngineConfig.from_dict(parse("loss state 1% 10% 70% 0.1% 0% delay 10ms 2ms seed 3").to_dict())
    assert config_from_wire(json.loads(json.dumps(config_to_wire(cfg)))) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_wire({"latency_ns": 1, "bogus": 2})


def test_exit_reason_names_the_signal() -> None:
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(3) == "exited with status 3"


def test_serve_answers_each_request_and_stops_on_close() -> None:
    class Worker:
        def __init__(self) -> None:
            self.held = HeldQueue()
            self.engine = Engine(EngineConfig(seed=0), self.held, EngineCounters())
            self.alive, self.fatal, self.stopped = True, None, False

        def set_engine(self, engine: Engine) -> None:
            self.engine = engine

        def flush(self, timeout_s: float = 2.0) -> bool:
            return True

        def stop(self) -> None:
            self.stopped = True

    w = Worker()
    cfg = config_to_wire(EngineConfig.from_dict(parse("loss 5% seed 9").to_dict()))
    requests = [{"op": "engine", "config": cfg, "stream": 1}, {"op": "stats"}, {"op": "nope"}, {"op": "close"}]
    out = io.StringIO()
    assert serve(EngineHost(w), io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), out) == 0
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0]["result"]["ready"] is True
    assert answers[1] == {"ok": True, "result": {"seed": 9}}
    assert answers[2]["result"]["counters"]["seed"] == 9 and answers[2]["result"]["worker_alive"] is True
    assert answers[3]["ok"] is False and "unknown" in answers[3]["error"]
    assert answers[4] == {"ok": True, "result": None} and w.stopped and w.engine.stream == 1


def test_a_killed_engine_process_is_restarted_with_the_same_config_seed_and_stream(proc: EngineProcess) -> None:
    text = "loss 30% seed 77"
    engine = Engine(EngineConfig.from_dict(parse(text).to_dict()), proc.held, EngineCounters(), stream=1)
    proc.set_engine(engine)
    assert proc.refresh_stats() is True
    assert proc.engine.stats.last_error == decisions(text, 1)  # the child decided as the agent's copy would
    first = proc.supervision()
    assert first["running"] and first["restarts"] == 0 and first["last_exit"] is None

    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: proc.supervision()["restarts"] == 1 and proc.supervision()["running"], 2.0)
    after = proc.supervision()
    assert after["pid"] != first["pid"] and after["last_exit"] == "killed by SIGKILL" and after["reapplied"] is True
    assert proc.refresh_stats() is True
    # the new process got the same config, seed and stream: the same decisions, from the start
    assert proc.engine.stats.last_error == decisions(text, 1)
    assert proc.engine.stats.seed == 77


def test_a_seed_drawn_at_random_survives_a_restart(proc: EngineProcess) -> None:
    engine = Engine(EngineConfig.from_dict(parse("loss 30%").to_dict()), proc.held, EngineCounters(), stream=1)
    proc.set_engine(engine)
    os.kill(proc.supervision()["pid"], signal.SIGKILL)
    wait_for(lambda: proc.supervision()["restarts"] == 1 and proc.supervision()["running"], 2.0)
    assert proc.refresh_stats() and proc.engine.stats.seed == engine.seed
    assert proc.engine.stats.last_error == decisions(f"loss 30% seed {engine.seed}", 1)


def test_an_armed_worker_is_armed_again_after_a_restart(proc: EngineProcess) -> None:
    assert proc.arm(True) is True
    assert proc.refresh_stats() and proc.engine.stats.errors == 1
    os.kill(proc.supervision()["pid"], signal.SIGKILL)
    wait_for(lambda: proc.supervision()["restarts"] == 1 and proc.supervision()["running"], 2.0)
    assert proc.refresh_stats() and proc.engine.stats.errors == 1  # the new process was armed too


def test_a_cleared_direction_is_not_reported_as_reapplied(proc: EngineProcess) -> None:
    os.kill(proc.supervision()["pid"], signal.SIGKILL)
    wait_for(lambda: proc.supervision()["restarts"] == 1 and proc.supervision()["running"], 2.0)
    assert proc.supervision()["reapplied"] is False


def test_stop_ends_the_process_and_supervision(proc: EngineProcess) -> None:
    pid = proc.supervision()["pid"]
    proc.stop()
    assert proc.alive is False and proc.supervision()["running"] is False and proc.supervision()["restarts"] == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
