"""Trace-driven links: Mahimahi traces read and refused with file and line, departures on a
trace (byte accounting per 1500-byte opportunity, looping, lost idle opportunities), the
engine's decision with ``trace NAME``, the netem section, and the shipped synthetic traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from netbed import traces
from netbed.traces import TraceFileError
from netbed.traces.generate import traces as generated
from netbed_agent.errors import RequestError
from netbed_core.netem import NetemError, parse, to_tc_args
from netbed_core.trace import MTU_BYTES, TraceError, parse_trace
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, HeldQueue
from netbed_router.engine_config import EngineConfig
from netbed_router.trace_link import STORE, TraceClock
from netbed_router.trace_ops import refuse_trace_on

MS = 1_000_000


@pytest.mark.parametrize(("text", "message"), [
    ("1\n2\nx\n", "f.trace:3: expected a timestamp in whole milliseconds, got 'x'"),
    ("1\n5\n4\n", "f.trace:3: timestamp 4 ms is before the previous one (5 ms)"),
    ("1.5\n", "f.trace:1: expected a timestamp in whole milliseconds, got '1.5'"),
    ("-1\n", "f.trace:1: expected a timestamp"),
    ("", "f.trace: empty"),
    ("\n\n", "f.trace: empty"),
    ("0\n0\n", "f.trace: the last timestamp is 0 ms"),
])
def test_bad_traces_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_trace(text, "t", "f.trace")
    assert str(info.value).startswith(message)


def test_bad_trace_file_through_the_harness(tmp_path: Path) -> None:
    path = tmp_path / "bad.trace"
    path.write_text("1\n3\n2\n")
    with pytest.raises(TraceFileError, match=rf"^{path}:3: timestamp 2 ms is before"):
        traces.load(path, "bad")
    with pytest.raises(TraceFileError, match="cannot read trace nope.*bundled: cellular-30s"):
        traces.load("nope", "x")


def test_delivered_bytes_loop() -> None:
    t = parse_trace("1\n1\n4\n", "t")
    assert t.period_ms == 4
    assert t.delivered_bytes(0, 4) == 3 * MTU_BYTES
    assert t.delivered_bytes(0, 12) == 9 * MTU_BYTES
    assert t.delivered_bytes(4, 5) == 0 and t.delivered_bytes(5, 6) == 2 * MTU_BYTES  # 1 ms into cycle 2


def test_departures_follow_the_opportunities() -> None:
    clock = TraceClock([1, 1, 4], start_ns=0)
    assert clock.departure_ns(0, 1500) == 1 * MS
    assert clock.departure_ns(0, 1500) == 1 * MS      # the second opportunity at 1 ms
    assert clock.departure_ns(0, 1500) == 4 * MS
    assert clock.departure_ns(0, 1500) == 5 * MS      # looped: 4 + 1
    assert clock.departure_ns(0, 100) == 5 * MS       # small packets share an opportunity
    assert clock.departure_ns(0, 1400) == 5 * MS      # ... up to 1500 bytes
    assert clock.departure_ns(0, 1) == 8 * MS
    # idle: opportunities before 30 ms are lost; cycle 8 has 29, 29, 32
    assert clock.departure_ns(30 * MS, 1500) == 32 * MS
    assert clock.departure_ns(33 * MS, 3000) == 33 * MS  # a 3000-byte packet takes both opportunities at 33
    assert clock.departure_ns(0, 1) == 36 * MS
    with pytest.raises(ValueError):
        TraceClock([0])


def test_the_engine_holds_packets_until_their_opportunity() -> None:
    STORE.put("unit", "2\n2\n10\n")
    config = EngineConfig.from_dict(parse("trace unit").to_dict())
    assert config.trace_ms == (2, 2, 10) and not config.is_noop
    engine = Engine(config, HeldQueue(), EngineCounters())
    engine._trace = TraceClock(config.trace_ms, start_ns=0)  # the trace's time 0, for exact times
    for pid in range(4):
        assert engine.on_packet(pid, bytes(1500), 1500, 0) is False  # held, not accepted now
    assert sorted(item[0] for item in engine.held.heap) == [2 * MS, 2 * MS, 10 * MS, 12 * MS]


def test_unknown_trace_is_refused_before_anything_changes() -> None:
    with pytest.raises(ValueError, match="trace 'never' has not been uploaded"):
        EngineConfig.from_dict(parse("trace never").to_dict())
    with pytest.raises(RequestError) as info:
        refuse_trace_on("userspace", parse("trace never"), "impair")
    assert info.value.kind == "bad_netem"


def test_the_kernel_backend_refuses_a_trace_naming_the_remedy() -> None:
    with pytest.raises(RequestError, match=r"impair: trace cell: tc netem cannot replay .*NETBED_BACKEND=userspace"):
        refuse_trace_on("kernel", parse("delay 5ms trace cell"), "impair")
    with pytest.raises(NetemError, match="NETBED_BACKEND=userspace"):
        to_tc_args(parse("trace cell"))


def test_trace_syntax() -> None:
    n = parse("delay 10ms trace cellular-30s")
    assert n.to_dict()["trace"] == {"name": "cellular-30s"}
    with pytest.raises(NetemError, match='"trace" cannot be combined with "rate"'):
        parse("trace x rate 1mbit")
    with pytest.raises(NetemError, match="trace name"):
        parse("trace ../x")


def test_shipped_traces_are_what_the_script_generates() -> None:
    made = generated()
    assert sorted(made) == traces.bundled()
    for name, stamps in made.items():
        trace = traces.load(name, name)
        assert list(trace.opportunities_ms) == stamps
    step = traces.load("step-12-3-24-6mbit", "s")
    assert [round(step.delivered_bytes(i * 1000, (i + 1) * 1000) * 8 / 1e6) for i in range(4)] == [12, 3, 24, 6]
