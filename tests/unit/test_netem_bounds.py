"""Numbers are bounded before they are converted (issue #12, finding 11).

``impair rate 1e999999bit`` froze the router agent for 17-20 s (a million-digit integer built
while holding the GIL); ``delay 1e999999999ms`` escaped as an internal error (decimal overflow).
Both must be a clean NetemError naming the token, and fast.
"""

from __future__ import annotations

import time

import pytest

from netbed_core.netem import NetemError, from_dict, parse
from netbed_core.netem.model import MAX_SLOT_MS


def test_huge_rate_is_rejected_quickly_naming_the_token() -> None:
    started = time.perf_counter()
    with pytest.raises(NetemError) as err:
        parse("rate 1e999999bit")
    elapsed_s = time.perf_counter() - started
    assert elapsed_s < 0.1  # it took 17-20 s before
    assert err.value.token == "1e999999bit"
    assert str(err.value) == ('netem: bad rate "1e999999bit": expected a rate like 10mbit, with at most 50 '
                              "digits and an exponent from -50 to 50")


def test_huge_delay_exponent_is_a_netem_error() -> None:
    with pytest.raises(NetemError, match='bad delay "1e999999999ms": expected a time like 100ms, with at most'):
        parse("delay 1e999999999ms")


@pytest.mark.parametrize("text, token", [
    ("loss 1e-999999999%", "1e-999999999%"),
    ("limit " + "9" * 100_000, "9" * 100_000),
    ("seed " + "1" * 5000, "1" * 5000),
    ("rate 1" + "0" * 100_000 + "bit", "1" + "0" * 100_000 + "bit"),
    ("delay 1e" + "9" * 100_000 + "ms", "1e" + "9" * 100_000 + "ms"),
    ("slot 1ms bytes 1e99999kb", "1e99999kb"),
    ("delay 10ms reorder 5% gap " + "1" * 60, "1" * 60),
])
def test_every_number_is_bounded_before_conversion(text: str, token: str) -> None:
    started = time.perf_counter()
    with pytest.raises(NetemError) as err:
        parse(text)
    assert time.perf_counter() - started < 0.1
    assert err.value.token == token
    assert "at most 50 digits" in str(err.value)


def test_numbers_within_the_bounds_still_parse() -> None:
    assert parse("rate 1e12bit").rate is not None
    assert parse("loss 1e-7%").loss is not None
    assert parse("delay 0.00000100000000000000000000000000000000000000000s").delay is not None


def test_rate_above_64_bits_names_the_range() -> None:
    with pytest.raises(NetemError, match='bad rate "1e30bit": expected at most 18446744073709551615bit'):
        parse("rate 1e30bit")


def test_slot_times_are_bounded_to_s64_nanoseconds() -> None:
    with pytest.raises(NetemError, match='bad slot min delay "1e30s": expected a time tc can represent'):
        parse("slot 1e30s")
    with pytest.raises(NetemError, match="too large"):
        from_dict({"slot": {"min_delay_ms": 1e308, "max_delay_ms": 1e308}})
    assert parse("slot 1000000s").slot is not None
    assert MAX_SLOT_MS > 1e9


@pytest.mark.parametrize("spec, key", [
    ({"delay": {"delay_ms": 1e308}}, "delay_ms"),
    ({"delay": {"delay_ms": 10**5000}}, "delay_ms"),
    ({"delay": {"delay_ms": float("inf")}}, "delay_ms"),
    ({"delay": {"delay_ms": float("-inf")}}, "delay_ms"),
    ({"loss": {"model": "random", "pct": float("nan")}}, "pct"),
    ({"loss": {"model": "random", "pct": 10**400}}, "pct"),
    ({"rate": {"bits_per_s": 10**5000}}, "bits_per_s"),
    ({"rate": {"bits_per_s": 1e300}}, "bits_per_s"),
    ({"limit_packets": 10**5000}, "limit_packets"),
    ({"seed": -(10**5000)}, "seed"),
])
def test_from_dict_rejects_huge_and_non_finite_numbers(spec: dict[str, object], key: str) -> None:
    with pytest.raises(NetemError) as err:
        from_dict(spec)
    assert err.value.token == key
    assert len(str(err.value)) < 200  # a 5000-digit number is described, not printed
