"""The router's scenario operations against a recording fake backend: every step is validated
before anything changes, one scenario at a time, impair/clear refused while it runs, stop and
reset return to pristine, and each change goes through apply_directions/clear_directions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_router import ops, scenario_ops
from netbed_router.backend import Applied, Backend, BackendStats


class FakeBackend(Backend):
    name = "userspace"
    MEASURED = frozenset()

    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []

    def apply(self, direction: str, spec: Mapping[str, Any], match: Mapping[str, Any] | None = None) -> Applied:
        self.log.append(("apply", direction, "partition" if spec.get("partition") else "other"))
        return Applied(direction, True, None)

    def clear(self, direction: str) -> None:
        self.log.append(("clear", direction))

    def keep_queued(self, direction: str, on: bool) -> None:
        self.log.append(("keep", direction, str(on)))

    def stats(self) -> BackendStats:
        return BackendStats("userspace", {})

    def close(self) -> None:
        pass


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    fake = FakeBackend()
    state = ops.RouterState()
    state.backend, state.backend_name = fake, "userspace"
    monkeypatch.setattr(ops, "STATE", state)
    monkeypatch.setattr(scenario_ops, "SCENARIO", scenario_ops.ScenarioSlot())
    monkeypatch.setattr(ops, "SCENARIO", scenario_ops.SCENARIO)
    yield fake
    ops.OPS["reset"](Args("reset", {}))


def call(op: str, **args: Any) -> dict[str, Any]:
    return ops.OPS[op](Args(op, args))


FOREVER = [{"netem": "partition", "duration": "1s"}, {"netem": "clear", "duration": "1s"}]


def test_a_bad_step_changes_nothing(backend: FakeBackend) -> None:
    with pytest.raises(RequestError) as info:
        call("scenario_start", steps=[{"netem": "delay 1ms", "duration": "1s"}, {"netem": "loss 200%"}])
    assert info.value.kind == "bad_netem" and "step 2" in str(info.value)
    with pytest.raises(RequestError, match="step 1: match: unknown protocol 'sctpx'"):
        call("scenario_start", steps=[{"netem": "delay 1ms", "match": "sctpx"}])
    with pytest.raises(RequestError, match="trace 'nope' has not been uploaded"):
        call("scenario_start", steps=[{"netem": "trace nope"}])
    assert backend.log == []
    assert call("scenario_status") == {"state": "none"}


def test_one_scenario_at_a_time_and_impair_waits_for_it(backend: FakeBackend) -> None:
    started = call("scenario_start", steps=FOREVER, repeat=0, name="f")
    assert started["state"] == "running"
    with pytest.raises(RequestError, match="scenario 'f' is running"):
        call("scenario_start", steps=FOREVER, repeat=0)
    with pytest.raises(RequestError, match="impair: scenario 'f' is running") as info:
        call("impair", netem="delay 1ms")
    assert info.value.kind == "busy"
    with pytest.raises(RequestError, match="clear: scenario 'f' is running"):
        call("clear")
    assert call("impair_status")["scenario"]["name"] == "f"


def test_stop_restores_pristine_through_clear_directions(backend: FakeBackend) -> None:
    call("scenario_start", steps=FOREVER, repeat=0)
    final = call("scenario_stop")
    assert final["state"] == "stopped" and final["timeline"][0]["action"] == "both: partition"
    log = backend.log
    assert log[:2] == [("keep", "to-server", "True"), ("keep", "to-client", "True")]
    assert ("apply", "to-server", "partition") in log
    assert log[-4:] == [("clear", "to-server"), ("clear", "to-client"),
                        ("keep", "to-server", "False"), ("keep", "to-client", "False")]
    assert all(d is None for d in ops.STATE.current.values())


def test_reset_stops_a_running_scenario(backend: FakeBackend) -> None:
    call("scenario_start", steps=FOREVER, repeat=0)
    assert call("reset") == {"scenario_stopped": True}
    assert call("scenario_status")["state"] == "stopped"
    assert backend.log[-2:] == [("clear", "to-server"), ("clear", "to-client")]
    assert ("keep", "to-server", "False") in backend.log
