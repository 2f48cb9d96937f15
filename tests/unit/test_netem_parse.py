"""Parsing tc-netem syntax into the model, the dict form, and the errors."""

from __future__ import annotations

import json

import pytest

from netbed_core.netem import (
    Corrupt,
    Delay,
    Duplicate,
    GemodelLoss,
    Netem,
    NetemError,
    RandomLoss,
    Rate,
    Reorder,
    Slot,
    StateLoss,
    from_dict,
    parse,
    to_tc_args,
)

# Command lines from tc-netem(8) (SYNOPSIS, the reorder and rate sections, EXAMPLES) and the
# classic examples of the Linux Foundation netem page that the man page points to.
MAN_PAGE_LINES = [
    "tc qdisc add dev eth0 root netem rate 5kbit 20 100 5",
    "tc qdisc add dev eth0 root netem delay 100ms",
    "tc qdisc change dev eth0 root netem delay 100ms 10ms",
    "tc qdisc change dev eth0 root netem delay 100ms 10ms 25%",
    "tc qdisc change dev eth0 root netem delay 100ms 20ms distribution normal",
    "tc qdisc change dev eth0 root netem loss 0.1%",
    "tc qdisc change dev eth0 root netem loss 0.3% 25%",
    "tc qdisc change dev eth0 root netem duplicate 1%",
    "tc qdisc change dev eth0 root netem corrupt 0.1%",
    "tc qdisc change dev eth0 root netem delay 10ms reorder 25% 50%",
    "tc qdisc change dev eth0 root netem delay 10ms reorder 25% 50% gap 5",
    "tc qdisc change dev eth0 root netem delay 100ms 75ms",
    "tc qdisc add dev eth0 root netem delay 250ms loss 10% rate 1mbps",
    "# tc qdisc add dev eth0 root netem slot 800us",
    "tc qdisc add dev eth0 root netem slot distribution pareto 10ms 2ms packets 8 bytes 64kb",
    "tc qdisc add dev eth0 root netem loss state 1% 10% 5% 80% 0.1% ecn",
    "tc qdisc add dev eth0 root netem loss gemodel 1% 10% 70% 0.1%",
    "tc qdisc add dev eth0 root netem limit 5000 delay 20ms 5ms distribution paretonormal seed 42",
]


@pytest.mark.parametrize("line", MAN_PAGE_LINES)
def test_man_page_lines_round_trip(line: str) -> None:
    n = parse(line)
    assert parse(" ".join(to_tc_args(n))) == n
    assert parse(to_tc_args(n)) == n
    assert from_dict(n.to_dict()) == n
    assert from_dict(json.loads(json.dumps(n.to_dict()))) == n


def test_rate_example_from_man_page() -> None:
    assert parse("tc qdisc add dev eth0 root netem rate 5kbit 20 100 5") == Netem(
        rate=Rate(bits_per_s=5000, packet_overhead_bytes=20, cell_size_bytes=100, cell_overhead_bytes=5))


def test_empty_input_is_pristine() -> None:
    assert parse("") == Netem()
    assert parse([]) == Netem()
    assert parse("  \n ") == Netem()
    assert parse("netem") == Netem()
    assert Netem().is_pristine
    assert Netem().limit_packets == 1000


def test_full_delay() -> None:
    assert parse("delay 100ms 10ms 25% distribution normal").delay == Delay(100.0, 10.0, 25.0, "normal")


def test_uniform_distribution_is_netems_default() -> None:
    assert parse("delay 100ms 10ms distribution uniform") == parse("delay 100ms 10ms")
    assert parse("delay 100ms 10ms distribution uniform").delay == Delay(100.0, 10.0, 0.0, None)


def test_keyword_order_does_not_matter() -> None:
    a = parse("delay 10ms 2ms loss 1% rate 10mbit reorder 5% gap 3 limit 50 seed 9")
    b = parse("seed 9 limit 50 gap 3 rate 10mbit loss 1% reorder 5% delay 10ms 2ms")
    assert a == b
    assert a == Netem(delay=Delay(10.0, 2.0), loss=RandomLoss(1.0), rate=Rate(10_000_000),
                      reorder=Reorder(5.0, 0.0, 3), limit_packets=50, seed=9)


def test_distribution_may_come_before_delay() -> None:
    assert parse("distribution pareto delay 10ms 1ms") == parse("delay 10ms 1ms distribution pareto")


def test_tokens_list_input() -> None:
    assert parse(["delay", "10ms", "loss", "1%"]) == Netem(delay=Delay(10.0), loss=RandomLoss(1.0))


def test_synonyms() -> None:
    assert parse("latency 10ms drop 1%") == parse("delay 10ms loss 1%")
    assert parse("loss random 1%") == parse("loss 1%")


# -- units (as tc: get_time, get_time64, get_rate64, parse_percent, get_size) ------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("100ms", 100.0), ("100msec", 100.0), ("100msecs", 100.0), ("1s", 1000.0), ("1.5sec", 1500.0),
        ("2secs", 2000.0), ("800us", 0.8), ("800usec", 0.8), ("800usecs", 0.8), ("100", 0.1),
        ("0.7s", 700.0), ("10MS", 10.0), ("1e3us", 1.0),
    ],
)
def test_delay_time_units(text: str, ms: float) -> None:
    delay = parse(f"delay {text}").delay
    assert delay is not None and delay.delay_ms == ms


def test_bare_delay_number_is_microseconds_and_slot_bare_number_is_nanoseconds() -> None:
    delay = parse("delay 100").delay
    assert delay is not None and delay.delay_ms == 0.1
    assert parse("slot 800000").slot == Slot(0.8, 0.8)
    assert parse("slot 500ns 2us").slot == Slot(0.0005, 0.002)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("100", 100), ("100bit", 100), ("5kbit", 5000), ("10mbit", 10_000_000), ("1gbit", 10**9),
        ("1tbit", 10**12), ("1kibit", 1024), ("1mibit", 1024**2), ("1gibit", 1024**3), ("1tibit", 1024**4),
        ("1bps", 8), ("1kbps", 8000), ("1mbps", 8_000_000), ("1Mbps", 8_000_000), ("1gbps", 8 * 10**9),
        ("1tbps", 8 * 10**12), ("1kibps", 8192), ("1MiBps", 8 * 1024**2), ("1.5mbit", 1_500_000),
        ("10MBIT", 10_000_000),
    ],
)
def test_rate_units(text: str, bits: int) -> None:
    rate = parse(f"rate {text}").rate
    assert rate is not None and rate.bits_per_s == bits


@pytest.mark.parametrize(
    ("text", "pct"), [("1%", 1.0), ("1", 1.0), ("0.5", 0.5), ("100%", 100.0), ("0", 0.0)]
)
def test_percent_bare_number_is_percent_not_fraction(text: str, pct: float) -> None:
    assert parse(f"loss {text}").loss == RandomLoss(pct)


@pytest.mark.parametrize(("text", "size"), [("1500", 1500), ("1500b", 1500), ("64kb", 65536), ("2k", 2048),
                                            ("1m", 1024**2), ("1mbit", 131072)])
def test_slot_bytes_sizes(text: str, size: int) -> None:
    slot = parse(f"slot 1ms bytes {text}").slot
    assert slot is not None and slot.max_bytes == size


# -- tc defaults -------------------------------------------------------------------------------


def test_loss_state_defaults() -> None:
    assert parse("loss state 1%").loss == StateLoss(1.0, 99.0, 0.0, 100.0, 0.0)
    assert parse("loss state 1% 30%").loss == StateLoss(1.0, 30.0, 0.0, 100.0, 0.0)
    assert parse("loss state 1% 30% 2%").loss == StateLoss(1.0, 30.0, 2.0, 100.0, 0.0)
    assert parse("loss state 1% 30% 2% 70%").loss == StateLoss(1.0, 30.0, 2.0, 70.0, 0.0)
    assert parse("loss state 1% 30% 2% 70% 0.5%").loss == StateLoss(1.0, 30.0, 2.0, 70.0, 0.5)
    assert parse("loss state 0.1%").loss == StateLoss(0.1, 99.9, 0.0, 100.0, 0.0)


def test_loss_gemodel_defaults() -> None:
    assert parse("loss gemodel 1%").loss == GemodelLoss(1.0, 99.0, 100.0, 0.0)
    assert parse("loss gemodel 1% 10%").loss == GemodelLoss(1.0, 10.0, 100.0, 0.0)
    assert parse("loss gemodel 1% 10% 70%").loss == GemodelLoss(1.0, 10.0, 70.0, 0.0)
    assert parse("loss gemodel 1% 10% 70% 0.1%").loss == GemodelLoss(1.0, 10.0, 70.0, 0.1)


def test_correlations_and_reorder_gap_default() -> None:
    n = parse("delay 10ms duplicate 1% 5% corrupt 2% 6% reorder 3% 7%")
    assert n.duplicate == Duplicate(1.0, 5.0)
    assert n.corrupt == Corrupt(2.0, 6.0)
    assert n.reorder == Reorder(3.0, 7.0, 1)


def test_rate_overheads_are_positional() -> None:
    assert parse("rate 1mbit -14").rate == Rate(1_000_000, -14)
    assert parse("rate 1mbit 0 48").rate == Rate(1_000_000, 0, 48)
    assert parse("rate 1mbit 0 48 -5").rate == Rate(1_000_000, 0, 48, -5)


def test_slot_forms() -> None:
    assert parse("slot 10ms").slot == Slot(10.0, 10.0)
    assert parse("slot 10ms 20ms packets 5 bytes 1500").slot == Slot(10.0, 20.0, max_packets=5,
                                                                     max_bytes=1500)
    assert parse("slot 10ms bytes 1500 packets 5").slot == Slot(10.0, 10.0, max_packets=5, max_bytes=1500)
    assert parse("slot distribution normal 10ms 2ms").slot == Slot(distribution="normal", delay_ms=10.0,
                                                                    jitter_ms=2.0)
    assert parse("slot distribution pareto 10ms 2ms").slot == Slot(distribution="pareto", delay_ms=10.0,
                                                                    jitter_ms=2.0)
    # tc ships no uniform table: uniform spacing is the MIN MAX form.
    assert parse("slot distribution uniform 10ms 2ms packets 3").slot == Slot(8.0, 12.0, max_packets=3)


def test_slot_distribution_table_must_exist() -> None:
    # tc looks for NAME.dist and refuses a missing table; netbed refuses it at parse time with
    # the names it knows, instead of accepting a config the kernel backend cannot apply.
    with pytest.raises(NetemError, match='no slot distribution table "mytable": expected one of normal'):
        parse("slot distribution mytable 10ms 2ms")


def test_values_tc_would_send_as_zero_are_refused() -> None:
    # tc keeps whole microseconds for delay/jitter, whole nanoseconds for slot times and
    # probabilities in steps of 2^-32: below that it sends 0 (and then, e.g. with reorder or
    # ecn, refuses what netbed had accepted).
    for text, unit in (("delay 0.5us", "1us"), ("delay 1ms 0.9us", "1us"), ("slot 0.5ns", "1ns"),
                       ("slot distribution normal 1ms 0.1ns", "1ns")):
        with pytest.raises(NetemError, match=f"below {unit}, tc's resolution"):
            parse(text)
    for text in ("loss 0.00000001%", "delay 10ms reorder 0.000000001%", "duplicate 1% 0.000000005%"):
        with pytest.raises(NetemError, match="below tc's resolution"):
            parse(text)
    # The smallest values tc can express still parse.
    assert parse("delay 1us 1us").delay is not None
    assert parse("slot 1ns").slot is not None
    assert parse("loss 0.0000000117%").loss is not None


def test_partition_alone() -> None:
    assert parse("partition") == Netem(partition=True)


def test_tc_prefix_forms() -> None:
    expected = parse("delay 10ms")
    assert parse("sudo tc qdisc replace dev eth0 root netem delay 10ms") == expected
    assert parse("$ /sbin/tc qdisc add dev eth1 parent 1:1 handle 10: netem delay 10ms") == expected
    assert parse("netem delay 10ms") == expected


# -- the dict form -----------------------------------------------------------------------------


def test_to_dict_emits_every_key() -> None:
    n = parse("limit 500 delay 100ms 10ms 25% distribution normal loss gemodel 1% 10% 70% 0.1% "
              "duplicate 1% corrupt 0.1% 2% reorder 25% 50% gap 5 rate 10mbit 20 48 5 "
              "slot 1ms 2ms packets 4 ecn seed 42")
    assert n.to_dict() == {
        "delay": {"delay_ms": 100.0, "jitter_ms": 10.0, "correlation_pct": 25.0, "distribution": "normal"},
        "loss": {"model": "gemodel", "p_pct": 1.0, "r_pct": 10.0, "one_minus_h_pct": 70.0,
                 "one_minus_k_pct": 0.1},
        "duplicate": {"pct": 1.0, "correlation_pct": 0.0},
        "corrupt": {"pct": 0.1, "correlation_pct": 2.0},
        "reorder": {"pct": 25.0, "correlation_pct": 50.0, "gap": 5},
        "rate": {"bits_per_s": 10_000_000, "packet_overhead_bytes": 20, "cell_size_bytes": 48,
                 "cell_overhead_bytes": 5},
        "slot": {"min_delay_ms": 1.0, "max_delay_ms": 2.0, "distribution": None, "delay_ms": None,
                 "jitter_ms": None, "max_packets": 4, "max_bytes": None},
        "limit_packets": 500,
        "ecn": True,
        "partition": False,
        "seed": 42,
        "trace": None,
    }
    assert from_dict(n.to_dict()) == n


def test_pristine_to_dict() -> None:
    assert Netem().to_dict() == {
        "delay": None, "loss": None, "duplicate": None, "corrupt": None, "reorder": None, "rate": None,
        "slot": None, "limit_packets": 1000, "ecn": False, "partition": False, "seed": None,
        "trace": None,
    }


def test_loss_models_to_dict() -> None:
    assert parse("loss 1% 2%").to_dict()["loss"] == {"model": "random", "pct": 1.0, "correlation_pct": 2.0}
    assert parse("loss state 1%").to_dict()["loss"] == {
        "model": "state", "p13_pct": 1.0, "p31_pct": 99.0, "p32_pct": 0.0, "p23_pct": 100.0, "p14_pct": 0.0}


def test_from_dict_accepts_ints_for_floats_and_omitted_defaults() -> None:
    n = from_dict({"delay": {"delay_ms": 100, "jitter_ms": 10, "correlation_pct": 0, "distribution": None}})
    assert n == Netem(delay=Delay(100.0, 10.0))
    assert isinstance(n.delay, Delay) and isinstance(n.delay.delay_ms, float)


def test_from_dict_uniform_distribution_is_normalised() -> None:
    n = from_dict({"delay": {"delay_ms": 100.0, "jitter_ms": 10.0, "correlation_pct": 0.0,
                             "distribution": "uniform"}})
    assert n.to_dict()["delay"] == {"delay_ms": 100.0, "jitter_ms": 10.0, "correlation_pct": 0.0,
                                    "distribution": None}


@pytest.mark.parametrize(
    ("data", "message", "token"),
    [
        ({"dealy": None}, 'netem: unknown key "dealy"', "dealy"),
        ({"delay": {"delay_ms": 1.0, "jiter_ms": 1.0}}, 'netem: unknown key "jiter_ms" in "delay"',
         "jiter_ms"),
        ({"loss": {"model": "random", "pct": 1.0, "corr": 1.0}}, 'netem: unknown key "corr" in "loss"',
         "corr"),
        ({"loss": {"model": "bursty", "pct": 1.0}},
         "netem: unknown loss model 'bursty': expected random, state or gemodel", "bursty"),
        ({"delay": {"jitter_ms": 1.0}}, 'netem: "delay" is missing "delay_ms"', "delay_ms"),
        ({"loss": {"model": "random", "pct": 150.0}}, 'netem: "pct" = 150.0 is outside 0-100%', "pct"),
        ({"rate": {"bits_per_s": 1.5}}, 'netem: "bits_per_s" must be an integer, not 1.5', "bits_per_s"),
        ({"limit_packets": True}, 'netem: "limit_packets" must be an integer, not True', "limit_packets"),
        ({"ecn": 1}, 'netem: "ecn" must be true or false, not 1', "ecn"),
        ({"delay": {"delay_ms": float("nan")}}, 'netem: "delay_ms" must be a finite number, not nan',
         "delay_ms"),
        ({"partition": True, "seed": 1}, 'netem: "partition" cannot be combined with "seed": a partition '
         "drops every packet, so nothing else applies", "seed"),
    ],
)
def test_from_dict_errors(data: dict[str, object], message: str, token: str) -> None:
    with pytest.raises(NetemError) as err:
        from_dict(data)
    assert str(err.value) == message
    assert err.value.token == token


def test_from_dict_rejects_non_dict() -> None:
    with pytest.raises(NetemError, match="expected an object"):
        from_dict(["delay"])


# -- errors ------------------------------------------------------------------------------------

ERRORS = [
    ("delay 10xs", 'netem: bad delay "10xs": expected a time like 100ms', "10xs"),
    ("dealy 10ms", 'netem: unknown keyword "dealy" (did you mean "delay"?)', "dealy"),
    ("Delay 10ms", 'netem: unknown keyword "Delay" (did you mean "delay"?)', "Delay"),
    ("del 10ms", 'netem: unknown keyword "del" (did you mean "delay"?)', "del"),
    ("jitter 10ms", 'netem: unknown keyword "jitter": expected a keyword (limit, delay, distribution, loss, '
     "ecn, corrupt, duplicate, reorder, gap, rate, slot, seed, trace, partition)", "jitter"),
    ("reorder", 'netem: "reorder" needs a percentage', "reorder"),
    ("reorder delay 10ms", 'netem: "reorder" needs a percentage', "reorder"),
    ("loss random", 'netem: "loss random" needs a percentage', "loss random"),
    ("loss 150%", 'netem: percentage "150%" is outside 0-100%', "150%"),
    ("loss -1%", 'netem: percentage "-1%" is outside 0-100%', "-1%"),
    ("duplicate x%", 'netem: bad duplicate "x%": expected a percentage like 1% or 0.5%', "x%"),
    ("loss stat 1%", 'netem: unknown loss model "stat" (did you mean "state"?)', "stat"),
    ("delay -10ms", 'netem: bad delay "-10ms": expected a time that is not negative, like 100ms', "-10ms"),
    ("delay 300s", 'netem: bad delay "300s": expected a time tc can represent (at most 274877.906944ms)',
     "300s"),
    ("delay 10ns", 'netem: bad delay "10ns": expected a time like 100ms', "10ns"),
    ("rate 0", 'netem: bad rate "0": expected a rate above zero, like 10mbit', "0"),
    ("rate 4bit", 'netem: bad rate "4bit": expected at least 8bit (the kernel counts whole bytes per second)',
     "4bit"),
    ("rate 10mbyte", 'netem: bad rate "10mbyte": expected a rate like 10mbit', "10mbyte"),
    ("rate 10%", 'netem: rate "10%" as a percentage of the link speed is not supported: expected an absolute '
     "rate like 10mbit", "10%"),
    ("limit 0", 'netem: bad limit "0": expected a number from 1 to 4294967295', "0"),
    ("limit 10.5", 'netem: bad limit "10.5": expected a whole number', "10.5"),
    ("gap 5", 'netem: "gap" needs "reorder", like "delay 10ms reorder 25% gap 5"', "gap"),
    ("delay 10ms reorder 25% gap 0", 'netem: bad gap "0": expected a number from 1 to 4294967295', "0"),
    ("delay 10ms reorder 0% gap 5", 'netem: "gap" needs "reorder" with a percentage above 0', "gap"),
    ("reorder 25%", 'netem: "reorder" needs a delay: reordering sends some packets without the delay, '
     'e.g. "delay 10ms reorder 25%"', "reorder"),
    ("delay 10ms distribution normal", 'netem: "distribution" needs a delay with jitter, like "delay 100ms '
     '10ms distribution normal" (the distribution shapes the jitter)', "distribution"),
    ("delay 0ms 10ms distribution normal", 'netem: "distribution" needs a delay with jitter, like "delay '
     '100ms 10ms distribution normal" (the distribution shapes the jitter)', "distribution"),
    ("distribution normal", 'netem: "distribution" needs a delay with jitter, like "delay 100ms 10ms '
     'distribution normal"', "distribution"),
    ("delay 1ms 1ms distribution normalx", 'netem: unknown distribution "normalx" (did you mean "normal"?)',
     "normalx"),
    ("delay 10ms 5ms 10% 5", 'netem: unexpected "5": expected a keyword (limit, delay, distribution, loss, '
     "ecn, corrupt, duplicate, reorder, gap, rate, slot, seed, trace, partition)", "5"),
    ("delay 10ms .5ms", 'netem: unexpected ".5ms": expected a keyword (limit, delay, distribution, loss, '
     "ecn, corrupt, duplicate, reorder, gap, rate, slot, seed, trace, partition)", ".5ms"),
    ("delay 10ms delay 5ms", 'netem: "delay" is given twice', "delay"),
    ("latency 10ms delay 5ms", 'netem: "delay" is given twice (already given as "latency")', "delay"),
    ("partition delay 10ms", 'netem: "partition" cannot be combined with "delay": a partition drops every '
     "packet, so nothing else applies", "delay"),
    ("loss 1% partition", 'netem: "partition" cannot be combined with "loss": a partition drops every '
     "packet, so nothing else applies", "loss"),
    ("ecn", 'netem: "ecn" needs a loss model: ECN marks packets that would be lost', "ecn"),
    ("loss 0% ecn", 'netem: "ecn" needs a loss model: ECN marks packets that would be lost', "ecn"),
    ("slot", 'netem: "slot" needs a time or "distribution"', "slot"),
    ("slot foo", 'netem: bad slot "foo": expected a time like 10ms or "distribution"', "foo"),
    ("slot 10ms 5ms", 'netem: bad slot max delay "5ms": expected a time not below the min delay', "5ms"),
    ("slot distribution pareto 10ms", 'netem: "slot distribution" needs a jitter after the delay',
     "slot distribution"),
    ("slot distribution pareto 10ms 0ms", 'netem: bad slot distribution jitter "0ms": expected a jitter '
     "above zero", "0ms"),
    ("slot 1ms packets 0", 'netem: bad slot packets "0": expected a number from 1 to 2147483647', "0"),
    ("seed -1", 'netem: bad seed "-1": expected a whole number', "-1"),
    ("tc qdisc add dev eth0 root",
     'netem: this tc command has no "netem": expected "tc qdisc ... netem ARGS"', "tc"),
]


@pytest.mark.parametrize(("text", "message", "token"), ERRORS)
def test_errors(text: str, message: str, token: str) -> None:
    with pytest.raises(NetemError) as err:
        parse(text)
    assert str(err.value) == message
    assert err.value.token == token
    assert err.value.expected


def test_error_is_a_value_error_with_expected() -> None:
    with pytest.raises(ValueError) as err:
        parse("delay 10xs")
    assert isinstance(err.value, NetemError)
    assert err.value.expected == "a time like 100ms"


def test_gap_without_reorder_old_wiki_syntax_is_rejected_like_modern_tc() -> None:
    with pytest.raises(NetemError, match='"gap" needs "reorder"'):
        parse("tc qdisc change dev eth0 root netem gap 5 delay 10ms")


def test_model_validation() -> None:
    with pytest.raises(NetemError, match="outside 0-100%"):
        RandomLoss(101.0)
    with pytest.raises(NetemError, match="is negative"):
        Delay(-1.0)
    with pytest.raises(NetemError, match='"gap" = 0 is outside'):
        Reorder(1.0, gap=0)
    with pytest.raises(NetemError, match="either MIN"):
        Slot(1.0, 1.0, distribution="normal", delay_ms=1.0, jitter_ms=1.0)
    with pytest.raises(NetemError, match='no "uniform" slot distribution'):
        Slot(distribution="uniform", delay_ms=1.0, jitter_ms=1.0)
    with pytest.raises(NetemError, match='"loss" must be a RandomLoss'):
        Netem(loss=Delay(1.0))  # type: ignore[arg-type]


def test_jitter_above_what_the_kernel_keeps_is_refused() -> None:
    """Issue #9: tc accepts any jitter up to 274877 ms, but netem keeps at most INT_MAX ns
    (about 2.147 s) and silently caps a larger one; netbed refuses it and says why."""
    assert parse("delay 1s 2147.483647ms").delay is not None
    with pytest.raises(NetemError, match=r"jitter 3000ms is above the 2147.483647ms the kernel keeps"):
        parse("delay 10s 3s")
    with pytest.raises(NetemError, match="kernel keeps"):
        from_dict({"delay": {"delay_ms": 10_000.0, "jitter_ms": 2147.484}})
