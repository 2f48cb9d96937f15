"""The router's impairment timeline (netbed_router/events.py) and how impair, clear and reset
record into it through ops.apply_directions / ops.clear_directions, with a fake backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_router import ops
from netbed_router.backend import Applied
from netbed_router.events import EventLog


class FakeBackend:
    """Records calls; draws seed 99 when the spec has none (as the userspace engine draws one)."""

    MEASURED: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def apply(self, direction: str, spec: Mapping[str, Any], match: Mapping[str, Any] | None = None) -> Applied:
        self.calls.append(("apply", direction))
        seed = spec.get("seed")
        return Applied(direction, True, seed if isinstance(seed, int) else 99)

    def clear(self, direction: str) -> None:
        self.calls.append(("clear", direction))


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    state = ops.RouterState()
    backend = FakeBackend()
    state.backend, state.backend_name = backend, "fake"  # type: ignore[assignment]
    monkeypatch.setattr(ops, "STATE", state)
    monkeypatch.setattr(ops, "EVENTS", EventLog())
    return backend


def call(op: str, **raw: Any) -> dict[str, Any]:
    return ops.OPS[op](Args(op, raw))


def test_impair_clear_reset_are_recorded_in_order_with_spec_match_seed_and_origin(router: FakeBackend) -> None:
    call("impair", netem="delay 50ms loss 1% seed 7", direction="to-server", match="udp:5000")
    call("impair", netem="delay 10ms", direction="to-client")
    call("clear", direction="to-server")
    call("reset")
    events = call("events")["events"]
    assert [(e["seq"], e["kind"], e["direction"], e["origin"]) for e in events] == [
        (1, "impair", "to-server", "impair"),
        (2, "impair", "to-client", "impair"),
        (3, "clear", "to-server", "clear"),
        (4, "clear", "to-server", "reset"),
        (5, "clear", "to-client", "reset"),
    ]
    first = events[0]
    assert first["spec"]["delay"]["delay_ms"] == 50.0 and first["netem"] == "delay 50ms loss random 1% seed 7"
    assert first["match"] == "udp:5000" and first["seed"] == 7
    assert events[1]["seed"] == 99  # no seed in the spec: the one the backend drew
    assert events[2]["spec"] is None and events[2]["seed"] is None
    assert all(a["monotonic_s"] <= b["monotonic_s"] for a, b in zip(events, events[1:], strict=False))
    assert router.calls[:2] == [("apply", "to-server"), ("apply", "to-client")]


def test_since_returns_only_newer_events_and_latest_per_direction(router: FakeBackend) -> None:
    call("impair", netem="delay 5ms", direction="both")
    mark = call("events")["next_seq"] - 1
    call("clear", direction="to-client")
    reply = call("events", since=mark)
    assert [e["seq"] for e in reply["events"]] == [3]
    assert reply["latest"]["to-server"]["kind"] == "impair" and reply["latest"]["to-client"]["kind"] == "clear"
    assert reply["complete"] and reply["backend"] == "fake"


@pytest.mark.parametrize("bad", [-1, "3", 1.5, True])
def test_since_must_be_a_non_negative_integer(router: FakeBackend, bad: object) -> None:
    with pytest.raises(RequestError, match="since"):
        call("events", since=bad)


def test_the_log_is_bounded_and_says_what_fell_out() -> None:
    log = EventLog(max_events=3)
    for i in range(5):
        log.record("impair", "to-server", "impair", netem=f"delay {i}ms")
    reply = log.since(None)
    assert [e["seq"] for e in reply["events"]] == [3, 4, 5]
    assert reply["dropped"] == 2 and not reply["complete"]
    assert log.since(2)["complete"] and not log.since(1)["complete"]
    assert reply["latest"]["to-server"]["seq"] == 5


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'paused'"):
        EventLog().record("paused", "to-server", "impair")


def test_reset_without_a_backend_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "STATE", ops.RouterState())
    monkeypatch.setattr(ops, "EVENTS", EventLog())
    call("reset")
    assert call("events")["events"] == []
