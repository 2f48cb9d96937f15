"""Scenario steps as data (netbed_core.scenario): when each step starts, and the errors that name
the step and what is wrong with it."""

from __future__ import annotations

import pytest

from netbed_core.scenario import MAX_STEPS, ScenarioError, parse_duration_ms, parse_scenario


def test_offsets_come_from_at_or_from_the_previous_duration() -> None:
    s = parse_scenario([{"netem": "delay 10ms", "duration": "200ms"},
                        {"netem": "partition"},
                        {"at": "500ms", "netem": "clear", "duration": "1s"}], repeat=2)
    assert [st.start_ms for st in s.steps] == [0.0, 200.0, 500.0]
    assert s.cycle_ms == 1500.0
    assert [(c, st.index, off) for c, st, off in s.schedule()] == [
        (0, 1, 0.0), (0, 2, 200.0), (0, 3, 500.0), (1, 1, 1500.0), (1, 2, 1700.0), (1, 3, 2000.0)]
    assert s.total_ms == 3000.0


def test_clear_and_partition_and_directions() -> None:
    s = parse_scenario([{"netem": "partition", "direction": "to-server", "match": "tcp:80"},
                        {"at": "1s", "netem": "clear"}])
    assert s.steps[0].netem is not None and s.steps[0].netem.partition is not None
    assert s.steps[0].directions == ("to-server",) and s.steps[0].match == "tcp:80"
    assert s.steps[1].action == "clear" and s.steps[1].netem is None
    assert s.router_directions == ("to-server", "to-client")
    assert s.steps[0].describe() == "to-server tcp:80: partition"


def test_wire_form_reads_back_to_the_same_steps() -> None:
    s = parse_scenario([{"netem": "delay 10ms 1ms", "duration": "0.25s"}, {"pause": "server", "duration": "1ms"}],
                       repeat=0)
    again = parse_scenario(**s.to_wire())
    assert again == s


@pytest.mark.parametrize(("steps", "repeat", "message"), [
    ([{"netem": "delay 10ms", "duration": "1s"}, {"netem": "delya 5ms"}], 1,
     "step 2: netem 'delya 5ms': "),
    ([{"netem": "delay 10ms"}, {"netem": "clear"}], 1, "step 2: give 'at', or a 'duration' on step 1"),
    ([{"netem": "delay 10ms", "duration": 5}], 1, "step 1: duration: expected a time with its unit"),
    ([{"netem": "delay 10ms", "durration": "1s"}], 1, "step 1: unknown key(s) 'durration'"),
    ([{"at": "1s", "netem": "clear"}, {"at": "0.5s", "netem": "clear"}], 1, "step 2: starts at 500 ms, not after"),
    ([{"netem": "clear", "duration": "1s"}, {"at": "2s", "netem": "clear"}], 1,
     "step 2: starts at 2000 ms but step 1 lasts until 1000 ms"),
    ([{"netem": "clear", "pause": "server"}], 1, "step 1: give exactly one of"),
    ([{"netem": "delay 1ms"}], 3, "step 1: to repeat, the last step needs a 'duration'"),
    ([{"netem": "delay 1ms", "direction": "up"}], 1, "step 1: direction: must be one of"),
    ([{"netem": "limit 1000"}], 1, "changes nothing; write 'clear'"),
    ([{"pause": "server", "match": "udp"}], 1, "'direction' and 'match' apply to netem steps only"),
    ([], 1, "steps: expected a non-empty list"),
    ("delay 1ms", 1, "steps: expected a non-empty list"),
    ([{"netem": "clear", "duration": "1s"}], -1, "repeat: expected a whole number"),
    ([{"netem": "clear", "duration": "1s"}], True, "repeat: expected a whole number"),
    ([{"netem": "clear", "duration": "0.1ms"}], 0, "a repeating cycle must last at least 1 ms"),
    ([{"netem": "clear"}] * (MAX_STEPS + 1), 1, f"steps: at most {MAX_STEPS}"),
])
def test_bad_scenarios_name_the_step(steps: object, repeat: object, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(steps, repeat)
    assert message in str(info.value)


def test_a_bad_netem_line_carries_the_parsers_own_message() -> None:
    from netbed_core.netem import NetemError, parse
    with pytest.raises(NetemError) as parser:
        parse("delay 10ms loss 120%")
    with pytest.raises(ScenarioError) as info:
        parse_scenario([{"netem": "delay 10ms loss 120%"}])
    assert info.value.bad_netem and info.value.step == 1
    assert str(parser.value) in str(info.value)


@pytest.mark.parametrize(("text", "ms"), [("1.5s", 1500.0), ("200ms", 200.0), ("250us", 0.25), ("0ms", 0.0)])
def test_durations(text: str, ms: float) -> None:
    assert parse_duration_ms(text, "at") == ms


@pytest.mark.parametrize("bad", ["200", "1m", "-1s", "", "2 days", None, 3.0])
def test_durations_need_a_unit(bad: object) -> None:
    with pytest.raises(ValueError, match="at: expected a time with its unit"):
        parse_duration_ms(bad, "at")
