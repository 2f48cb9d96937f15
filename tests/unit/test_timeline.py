"""A failing test's network table and the per-test network record (netbed/timeline.py),
from router replies as the `events` and `impair_status` operations send them."""

from __future__ import annotations

from typing import Any

from netbed.timeline import (
    collect,
    format_events,
    impairment_summary,
    junit_properties,
    network_record,
    render_failure,
    seed_summary,
)

T0 = 1_764_000_000.0  # a wall time, s


def event(seq: int, kind: str, direction: str, origin: str, netem: str = "", seed: int | None = None,
          match: str | None = None, delay_ms: float | None = None) -> dict[str, Any]:
    spec = {"delay": {"delay_ms": delay_ms, "jitter_ms": 0.0}} if delay_ms is not None else None
    return {"seq": seq, "monotonic_s": 100.0 + seq, "wall_s": T0 + seq, "kind": kind, "direction": direction,
            "origin": origin, "spec": spec if kind == "impair" else None, "netem": netem, "description": netem,
            "match": match, "seed": seed}


RESET = {d: event(s, "clear", d, "reset") for s, d in ((1, "to-server"), (2, "to-client"))}
START = {"events": [], "latest": RESET, "next_seq": 3, "complete": True}
IMPAIR = event(3, "impair", "to-server", "impair", "delay 50ms loss random 1% seed 7", seed=7, match="udp:5000",
               delay_ms=50.0)
END = {"events": [IMPAIR], "latest": {"to-server": IMPAIR, "to-client": RESET["to-client"]}, "next_seq": 4,
       "complete": True}
STATUS = {"backend": "userspace", "reason": "kernel has no sch_netem",
          "directions": {"to-server": {"stats": {"seen": 100, "passed": 98, "dropped": 2, "duplicated": 0,
                                                 "overlimits": None}},
                         "to-client": {"stats": {"seen": 0, "passed": 0}}}}


def test_the_failure_table_says_what_was_active_since_when_with_which_seed_in_a_few_lines() -> None:
    text = render_failure(network_record(START, END, STATUS), now_wall_s=T0 + 5.5)
    lines = text.splitlines()
    assert lines[0] == "backend: userspace (kernel has no sch_netem)"
    assert lines[1].split() == ["direction", "active", "at", "the", "failure", "since", "(UTC)", "seed"]
    assert lines[2].startswith("to-server") and "delay 50ms loss random 1% seed 7 [only udp:5000]" in lines[2]
    assert "(2.5 s before)" in lines[2] and lines[2].endswith("7")
    assert lines[3].startswith("to-client") and "none (pristine forwarding)" in lines[3] and lines[3].endswith("-")
    assert "  to-server  seen=100 passed=98 dropped=2 duplicated=0" in lines
    # one line per direction; unmeasured counters left out; a direction not impaired during the
    # test shows no counters (the backend may still hold an earlier test's)
    assert "  to-client  not impaired during this test" in lines
    assert "changes during the test: 1" in lines
    assert len(lines) < 15 and "{" not in text  # not the old JSON dump


def test_active_during_includes_what_was_set_before_the_test_and_every_change() -> None:
    before = event(1, "impair", "to-client", "impair", "delay 10ms", seed=3)
    start = {"latest": {"to-client": before, "to-server": RESET["to-server"]}, "next_seq": 2}
    changed = event(2, "impair", "to-client", "impair", "delay 20ms", seed=4)
    cleared = event(3, "clear", "to-client", "clear")
    end = {"events": [changed, cleared], "latest": {"to-client": cleared, "to-server": RESET["to-server"]},
           "complete": False}
    record = network_record(start, end, {"backend": "kernel", "directions": {}})
    assert impairment_summary(record) == "to-client: delay 10ms then delay 20ms"
    assert seed_summary(record) == "to-client: 3, 4"
    assert record["directions"]["to-client"]["active"] is None
    assert junit_properties(record) == [("netbed_impairment", "to-client: delay 10ms then delay 20ms"),
                                        ("netbed_seed", "to-client: 3, 4"), ("netbed_backend", "kernel")]
    assert "fell out of the router's bounded log" in render_failure(record)


def test_nothing_active_reads_as_none() -> None:
    record = network_record(START, {"events": [], "latest": RESET}, {"backend": "kernel", "directions": {}})
    assert impairment_summary(record) == "none" and seed_summary(record) == "none"
    assert "changes during the test: none" in render_failure(record)


def test_collect_asks_for_the_events_after_the_start() -> None:
    class FakeRouter:
        asked: list[int | None] = []

        def events(self, since: int | None = None) -> dict[str, Any]:
            self.asked.append(since)
            return END

        def impair_status(self) -> dict[str, Any]:
            return STATUS

    router = FakeRouter()
    record = collect(router, START)
    assert router.asked == [2] and record["start_seq"] == 3 and record["changes"] == [IMPAIR]
    assert not record["router_restarted"]


def test_a_router_restart_during_the_test_is_noticed_and_its_new_log_read_whole() -> None:
    class RestartedRouter:
        asked: list[int | None] = []

        def events(self, since: int | None = None) -> dict[str, Any]:
            self.asked.append(since)
            return {**END, "log_id": "after"}

        def impair_status(self) -> dict[str, Any]:
            return STATUS

    router = RestartedRouter()
    record = collect(router, {**START, "log_id": "before"})
    assert router.asked == [2, None] and record["router_restarted"]
    assert "the router agent restarted during the test" in render_failure(record)


def test_netbed_events_prints_one_line_per_event_and_what_fell_out() -> None:
    text = format_events({"events": [RESET["to-server"], IMPAIR], "dropped": 5, "max_events": 4096})
    lines = text.splitlines()
    assert lines[0] == "(5 older events fell out of the router's log of 4096)"
    assert lines[1].split()[0] == "1" and "clear" in lines[1] and "(reset)" in lines[1]
    assert lines[2].endswith("delay 50ms loss random 1% seed 7 [only udp:5000]")
    assert format_events({"events": []}) == "no events"


def test_a_seed_the_backend_drew_is_shown_beside_the_setting() -> None:
    drawn = event(3, "impair", "to-server", "impair", "delay 5ms", seed=99)
    end = {"events": [drawn], "latest": {**RESET, "to-server": drawn}}
    text = render_failure(network_record(START, end, {"backend": "userspace", "directions": {}}))
    assert "delay 5ms (seed 99)  (impair)" in text
