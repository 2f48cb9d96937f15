"""lint(): exact warnings for settings netem accepts but that do nothing or surprise."""

from __future__ import annotations

import pytest

from netbed_core.netem import Netem, lint, parse

CASES = [
    ('delay 10ms reorder 0%', [
        'reorder 0% does nothing: netem only reorders with a reorder percentage above 0 and a delay'
        ' (e.g. "delay 10ms reorder 25%"); remove it or give a percentage.',
    ]),
    ('loss 100%', [
        'loss 100% drops every packet, so nothing else in this setting can be observed; write '
        '"partition" instead, which says so.',
    ]),
    ('loss 0%', [
        'loss 0% drops nothing; remove it.',
    ]),
    ('duplicate 0% corrupt 0%', [
        'duplicate 0% does nothing; remove it.',
        'corrupt 0% does nothing; remove it.',
    ]),
    ('delay 10ms 0ms 25%', [
        'delay correlation does nothing without jitter; remove it or add a jitter.',
    ]),
    ('rate 1mbit 0 0 5', [
        'rate CELLOVERHEAD does nothing without a CELLSIZE; remove it or give a cell size.',
    ]),
    ('loss 1% 25%', [
        'loss correlation 25% does not give bursty loss: tc-netem(8) says the "loss random" '
        'correlation "is now deprecated due to the noticed bad behavior"; model bursts with "loss '
        'state P13 P31" or "loss gemodel P R" instead.',
    ]),
    ('delay 10ms 5ms 25% duplicate 1% 5% corrupt 1% 5% reorder 5% 5%', [
        'delay correlation 25% is only an approximation: netem mixes each new random value with the'
        ' previous one, which is not a true statistical correlation and shrinks the spread of the '
        'values; set it to 0 unless you have measured its effect.',
        'duplicate correlation 5% is only an approximation: netem mixes each new random value with '
        'the previous one, which is not a true statistical correlation and shrinks the spread of '
        'the values; set it to 0 unless you have measured its effect.',
        'corrupt correlation 5% is only an approximation: netem mixes each new random value with '
        'the previous one, which is not a true statistical correlation and shrinks the spread of '
        'the values; set it to 0 unless you have measured its effect.',
        'reorder correlation 5% is only an approximation: netem mixes each new random value with '
        'the previous one, which is not a true statistical correlation and shrinks the spread of '
        'the values; set it to 0 unless you have measured its effect.',
    ]),
    ('delay 10ms 20ms', [
        'jitter 20ms is larger than the delay 10ms: delays drawn below zero are sent at once, so '
        'the delay distribution is cut off at 0 (its mean is higher than the delay), and packets '
        'overtake each other since netem sends each packet at its own random time; use a jitter no '
        'larger than the delay.',
    ]),
    ('delay 10ms 20ms rate 1mbit', [
        'jitter 20ms is larger than the delay 10ms: delays drawn below zero are sent at once, so '
        'the delay distribution is cut off at 0 (its mean is higher than the delay); use a jitter '
        'no larger than the delay.',
        'rate with jitter: netem never sends a packet before the one queued ahead of it when a rate'
        ' is set, so jitter does not reorder, and under load a short delay only shortens the wait '
        'behind the previous packet; the measured jitter will be smaller than 20ms. Drop the rate '
        'if you need the full jitter.',
    ]),
    ('delay 10ms 2ms rate 10mbit', [
        'rate with jitter: netem never sends a packet before the one queued ahead of it when a rate'
        ' is set, so jitter does not reorder, and under load a short delay only shortens the wait '
        'behind the previous packet; the measured jitter will be smaller than 2ms. Drop the rate if'
        ' you need the full jitter.',
    ]),
    ('delay 0.0015ms 2', [
        'jitter 2us is larger than the delay 0.0015ms: delays drawn below zero are sent at once, so'
        ' the delay distribution is cut off at 0 (its mean is higher than the delay), and packets '
        'overtake each other since netem sends each packet at its own random time; use a jitter no '
        'larger than the delay.',
        'delay 0.0015ms is not a whole number of microseconds; tc truncates it to 1us, so give it '
        'in whole microseconds.',
    ]),
    ('rate 1001bit', [
        'rate 1001bit is not a whole number of bytes per second; the kernel uses 1000bit, so give a'
        ' multiple of 8 bits.',
    ]),
    ('rate 10gbit', [
        'rate 10Gbit/s is beyond what netem paces accurately: a 1500-byte packet lasts 1.2us, finer'
        " than the kernel's timer granularity, so netem sends bursts and the achieved rate is "
        'approximate; measure the rate you get, or drop the rate if this link is not the '
        'bottleneck.',
    ]),
    ('slot 500us', [
        'slot spacing 500us is below 1ms: timer and softirq granularity smear slots this short, so '
        'bursts will not be delivered on time; use slots of 1ms or more.',
    ]),
    ('slot distribution normal 0.5ms 1ms', [
        'slot spacing 500us is below 1ms: timer and softirq granularity smear slots this short, so '
        'bursts will not be delivered on time; use slots of 1ms or more.',
    ]),
    ('delay 100ms rate 1gbit', [
        'limit 1000 packets is below the ~8334 1500-byte packets in flight at 1Gbit/s with 100ms of'
        ' delay, so netem will drop packets at its queue limit once the link is busy; raise it to '
        'at least limit 8334.',
    ]),
    ('loss 1% ecn', [
        'ecn only marks packets of ECN-capable flows (ECT set); packets of other flows are still '
        'dropped, so make sure the traffic under test negotiates ECN.',
    ]),
]


@pytest.mark.parametrize(("text", "warnings"), CASES)
def test_lint(text: str, warnings: list[str]) -> None:
    assert lint(parse(text)) == warnings


@pytest.mark.parametrize(
    "text",
    ["", "partition", "delay 100ms", "delay 100ms 10ms distribution normal", "loss 1%", "loss state 1% 10%",
     "loss gemodel 1% 10% 70% 0.1%", "delay 10ms reorder 25% gap 5", "rate 10mbit", "slot 10ms 20ms",
     "delay 100ms rate 1gbit limit 9000", "delay 20ms 5ms loss 0.5% duplicate 0.1% corrupt 0.1%"],
)
def test_clean_settings_have_no_warnings(text: str) -> None:
    assert lint(parse(text)) == []


def test_limit_rule_needs_rate_and_delay() -> None:
    assert lint(parse("delay 10s limit 1")) == []
    assert lint(parse("rate 1kbit limit 1")) == []
    assert lint(parse("delay 100ms rate 1gbit limit 8334")) == []
    assert len(lint(parse("delay 100ms rate 1gbit limit 8333"))) == 1


def test_every_warning_is_a_sentence() -> None:
    for text, _ in CASES:
        for warning in lint(parse(text)):
            assert warning[0].isalpha() and warning.endswith(".")


def test_lint_of_pristine_model() -> None:
    assert lint(Netem()) == []
