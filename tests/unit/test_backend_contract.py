"""The backends' shared types: DirectionStats (None = not measured, never 0), its wire form,
and the BackendStats/DirectionReport wrappers the router agent serialises."""

from __future__ import annotations

import dataclasses
import json

import pytest

from netbed_core.direction_stats import COUNTERS, DirectionStats, total
from netbed_router.backend import BackendStats, DirectionReport
from netbed_router.backend_kernel import MEASURED as KERNEL_MEASURED
from netbed_router.counters import MEASURED as USERSPACE_MEASURED
from netbed_router.counters import EngineCounters


def test_fields_and_counters_agree() -> None:
    names = [f.name for f in dataclasses.fields(DirectionStats)]
    assert names == [*COUNTERS, "seed", "last_error"]


def test_measuring_sets_exactly_the_measured_counters() -> None:
    s = DirectionStats.measuring({"passed", "dropped"}, passed=5)
    assert s.passed == 5 and s.dropped == 0  # measured, nothing counted
    assert s.duplicated is None and s.seen is None
    assert s.measured == {"passed", "dropped"}
    assert s.not_measured == tuple(c for c in COUNTERS if c not in ("passed", "dropped"))


def test_measuring_refuses_a_value_for_an_unmeasured_or_unknown_counter() -> None:
    with pytest.raises(ValueError, match="duplicated"):
        DirectionStats.measuring({"passed"}, duplicated=3)
    with pytest.raises(ValueError, match="dupes"):
        DirectionStats.measuring({"dupes"})


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3"])
def test_a_counter_is_a_non_negative_int_or_none(bad: object) -> None:
    with pytest.raises(ValueError, match="passed"):
        DirectionStats(passed=bad)  # type: ignore[arg-type]


def test_wire_form_round_trips_and_keeps_the_old_keys() -> None:
    s = DirectionStats.measuring(USERSPACE_MEASURED, seen=10, passed=9, dropped=1, dropped_loss=1, duplicated=2,
                                 seed=7)
    wire = json.loads(json.dumps(s.to_dict()))
    assert wire["dropped_by_cause"] == {"loss": 1, "limit": 0, "partition": 0, "error": 0}
    assert "dropped_loss" not in wire  # the causes travel nested, as before
    assert wire["overlimits"] is None and "overlimits" in wire["not_measured"] and "seen" in wire["measured"]
    assert DirectionStats.from_dict(wire) == s
    # a status entry carries more than counters: ignored; a counter the router did not send: None
    assert DirectionStats.from_dict({"active": True, "passed": 3}) == DirectionStats(passed=3)


def test_total_sums_what_every_part_measured() -> None:
    a = DirectionStats.measuring(KERNEL_MEASURED, passed=3, dropped=1, queue_depth=2)
    b = DirectionStats.measuring(KERNEL_MEASURED, passed=4, dropped=0, queue_depth=5)
    t = total([a, b])
    assert t.passed == 7 and t.dropped == 1
    assert t.queue_depth is None  # a sum of depths means nothing
    assert t.duplicated is None  # not measured stays not measured
    mixed = total([a, DirectionStats.measuring(USERSPACE_MEASURED, passed=1)])
    assert mixed.passed == 4 and mixed.overlimits is None and mixed.seen is None


def test_engine_counters_become_direction_stats() -> None:
    c = EngineCounters()
    c.seen, c.passed, c.dropped_limit, c.dropped_partition, c.ecn_marked, c.seed = 9, 5, 1, 3, 2, 11
    s = c.direction_stats()
    assert (s.seen, s.passed, s.dropped, s.dropped_limit, s.dropped_partition, s.ecn_marked, s.seed) == \
        (9, 5, 4, 1, 3, 2, 11)
    assert s.measured == USERSPACE_MEASURED and s.overlimits is None


def test_the_kernel_measures_only_what_tc_counts() -> None:
    assert KERNEL_MEASURED == {"passed", "dropped", "queue_depth", "backlog_bytes", "overlimits", "requeues",
                               "bytes_out"}
    assert not KERNEL_MEASURED & {"duplicated", "corrupted", "reordered", "delayed", "ecn_marked", "seen"}


def test_backend_stats_wire_form() -> None:
    report = DirectionReport(active=True, spec={"delay": None}, match=None,
                             counters=DirectionStats.measuring({"passed"}, passed=2), details={"interface": "eth0"})
    wire = BackendStats("kernel", {"to-server": report}, {"offloads": {}}).to_dict()
    assert wire["backend"] == "kernel" and wire["offloads"] == {}
    d = wire["directions"]["to-server"]
    assert d["active"] is True and d["passed"] == 2 and d["interface"] == "eth0" and d["duplicated"] is None
    json.dumps(wire)  # JSON-able as it is


def test_netbed_status_says_which_counters_this_backend_cannot_measure(capsys: pytest.CaptureFixture[str]) -> None:
    from netbed.cli import _print_status
    from netbed.testbed import _counter_availability

    kernel = DirectionStats.measuring(KERNEL_MEASURED, passed=90, dropped=10)
    idle = DirectionStats.measuring(KERNEL_MEASURED)
    status = {
        "backend": "kernel", "reason": "kernel has sch_netem", "measured": sorted(KERNEL_MEASURED),
        "directions": {
            "to-server": {"impairment": {"description": "loss 10%", "match": None},
                          "stats": {"active": True, **kernel.to_dict()}},
            "to-client": {"impairment": None, "stats": {"active": False, **idle.to_dict()}},
        },
    }
    status["counters"] = _counter_availability(status)
    assert status["counters"]["not_available"][:3] == ["seen", "dropped_loss", "dropped_limit"]
    assert "duplicated" in status["counters"]["not_available"]
    _print_status({"instance": "t", "running": True, "hosts": {}, "impairment": status})
    out = capsys.readouterr().out
    assert "counters measured: passed dropped queue_depth backlog_bytes overlimits requeues bytes_out" in out
    assert "not available on this backend: seen dropped_loss" in out and " duplicated corrupted reordered" in out
    assert "passed=90 dropped=10 queue_depth=0" in out
    assert "duplicated=" not in out  # a counter the backend cannot measure is not shown as a number


def test_netbed_status_reports_an_engine_restart(capsys: pytest.CaptureFixture[str]) -> None:
    """A crashed engine process that the supervisor restarted is visible in `netbed status`."""
    from netbed.cli import _print_status

    engine = {"pid": 41, "running": True, "restarts": 1, "last_exit": "killed by SIGKILL", "reapplied": True,
              "seconds_since_restart": 2.5}
    status = {
        "backend": "userspace", "reason": "forced", "directions": {
            "to-server": {"impairment": {"description": "delay 10ms", "match": None},
                          "stats": {"active": True, "engine_process": engine}},
            "to-client": {"impairment": None, "stats": {"active": False}},
        },
    }
    _print_status({"instance": "t", "running": True, "hosts": {}, "impairment": status})
    out = capsys.readouterr().out
    assert "engine process restarted 1x (last: killed by SIGKILL); impairment re-applied: yes" in out
