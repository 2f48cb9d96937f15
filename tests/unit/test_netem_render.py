"""Rendering models back to tc tokens, netbed text and summaries; round-trip properties."""

from __future__ import annotations

import json
import random

import pytest

from netbed_core.netem import (
    Corrupt,
    Delay,
    Duplicate,
    GemodelLoss,
    Loss,
    Netem,
    RandomLoss,
    Rate,
    Reorder,
    Slot,
    StateLoss,
    describe,
    from_dict,
    parse,
    to_tc_args,
    to_text,
)
from netbed_core.netem.units import format_number, format_rate_human, format_time_ms


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("", ["limit", "1000"]),
        ("delay 100ms", ["limit", "1000", "delay", "100ms"]),
        ("delay 100ms 10ms 25% distribution normal",
         ["limit", "1000", "delay", "100ms", "10ms", "25%", "distribution", "normal"]),
        ("delay 0.5ms 100us", ["limit", "1000", "delay", "500us", "100us"]),
        ("delay 4.35ms", ["limit", "1000", "delay", "4350us"]),
        ("delay 1.5s", ["limit", "1000", "delay", "1500ms"]),
        ("delay 1.0005", ["limit", "1000", "delay", "0.0010005ms"]),
        ("loss 1.5%", ["limit", "1000", "loss", "random", "1.5%"]),
        ("loss 0.3% 25%", ["limit", "1000", "loss", "random", "0.3%", "25%"]),
        ("loss state 1%", ["limit", "1000", "loss", "state", "1%", "99%", "0%", "100%", "0%"]),
        ("loss gemodel 1%", ["limit", "1000", "loss", "gemodel", "1%", "99%", "100%", "0%"]),
        ("duplicate 1% corrupt 0.1% 5%", ["limit", "1000", "duplicate", "1%", "corrupt", "0.1%", "5%"]),
        ("delay 10ms reorder 25% 50% gap 5",
         ["limit", "1000", "delay", "10ms", "reorder", "25%", "50%", "gap", "5"]),
        ("delay 10ms reorder 25% gap 1", ["limit", "1000", "delay", "10ms", "reorder", "25%"]),
        ("rate 5kbit 20 100 5", ["limit", "1000", "rate", "5000bit", "20", "100", "5"]),
        ("rate 1mbps", ["limit", "1000", "rate", "8000000bit"]),
        ("rate 1mbit 0 0 -5", ["limit", "1000", "rate", "1000000bit", "0", "0", "-5"]),
        ("rate 1mbit -14", ["limit", "1000", "rate", "1000000bit", "-14"]),
        ("slot 800us", ["limit", "1000", "slot", "800us"]),
        ("slot 500ns 2ms packets 3 bytes 4kb",
         ["limit", "1000", "slot", "500ns", "2ms", "packets", "3", "bytes", "4096"]),
        ("slot distribution pareto 10ms 2ms",
         ["limit", "1000", "slot", "distribution", "pareto", "10ms", "2ms"]),
        ("loss 1% ecn seed 42 limit 20", ["limit", "20", "loss", "random", "1%", "ecn", "seed", "42"]),
        ("partition", ["limit", "1000", "loss", "100%"]),
        ("seed 3 ecn slot 5ms rate 10mbit reorder 5% corrupt 1% duplicate 2% loss 3% delay 20ms 5ms limit 9",
         ["limit", "9", "delay", "20ms", "5ms", "loss", "random", "3%", "duplicate", "2%", "corrupt", "1%",
          "reorder", "5%", "rate", "10000000bit", "slot", "5ms", "ecn", "seed", "3"]),
    ],
)
def test_to_tc_args_exact(text: str, args: list[str]) -> None:
    assert to_tc_args(parse(text)) == args


def test_to_text() -> None:
    assert to_text(Netem()) == ""
    assert to_text(Netem(partition=True)) == "partition"
    assert to_text(parse("limit 1000 delay 10ms")) == "delay 10ms"
    assert to_text(parse("limit 5 delay 10ms")) == "limit 5 delay 10ms"
    assert str(parse("loss 1%")) == "loss random 1%"
    assert parse("loss 1%").to_tc_args() == ["limit", "1000", "loss", "random", "1%"]


def test_partition_renders_as_total_loss() -> None:
    n = Netem(partition=True)
    assert to_tc_args(n) == ["limit", "1000", "loss", "100%"]
    assert parse(to_text(n)) == n
    assert parse(" ".join(to_tc_args(n))) == Netem(loss=RandomLoss(100.0))


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        ("", "no impairment"),
        ("partition", "partition (every packet dropped)"),
        ("delay 100ms 10ms 25% distribution normal loss 0.3% 25%",
         "delay 100ms ±10ms (25% correlated, normal), loss 0.3% (25% correlated)"),
        ("loss state 1% 10%", "4-state loss (p13 1%, p31 10%, p32 0%, p23 100%, p14 0%)"),
        ("loss gemodel 1% 10% 70% 0.1%", "Gilbert-Elliott loss (p 1%, r 10%, 1-h 70%, 1-k 0.1%)"),
        ("duplicate 1% corrupt 0.1% 5%", "duplicate 1%, corrupt 0.1% (5% correlated)"),
        ("delay 10ms reorder 25% 50% gap 5", "delay 10ms, reorder 25% (50% correlated, gap 5)"),
        ("rate 5kbit 20 100 5", "rate 5kbit/s (+20B/packet, 100B cells, +5B/cell)"),
        ("rate 1.5mbit", "rate 1.5Mbit/s"),
        ("slot 1ms 2ms packets 5 bytes 1500", "slots every 1ms-2ms (≤5 packets, ≤1500 bytes)"),
        ("slot distribution pareto 10ms 2ms", "slots every 10ms ±2ms (pareto)"),
        ("loss 1% ecn limit 20 seed 7", "loss 1%, ECN marks instead of drops, limit 20 packets, seed 7"),
    ],
)
def test_describe(text: str, summary: str) -> None:
    assert describe(parse(text)) == summary


@pytest.mark.parametrize(
    ("value", "text"),
    [(100.0, "100"), (0.5, "0.5"), (1e-06, "0.000001"), (1.5e20, "150000000000000000000"), (0.1, "0.1"),
     (33.333333333333336, "33.333333333333336")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
    assert float(text) == value


def test_format_time_and_rate() -> None:
    assert format_time_ms(100.0) == "100ms"
    assert format_time_ms(0.8) == "800us"
    assert format_time_ms(0.0008) == "0.0008ms"
    assert format_time_ms(0.0008, nanoseconds=True) == "800ns"
    assert format_time_ms(0.0) == "0ms"
    assert format_rate_human(999) == "999bit/s"
    assert format_rate_human(10**10) == "10Gbit/s"


# -- round-trip properties ---------------------------------------------------------------------


def _pct(rng: random.Random) -> float:
    return rng.choice([0.0, 100.0, 1.0, 0.1, 25.0, 99.9, round(rng.uniform(0, 100), rng.randint(0, 6)),
                       rng.uniform(0, 100)])


def _ms(rng: random.Random, hi: float = 5000.0) -> float:
    return rng.choice([0.0, 1.0, 0.5, 4.35, 100.0, round(rng.uniform(0, hi), rng.randint(0, 6)),
                       rng.uniform(0, hi)])


def _random_netem(rng: random.Random) -> Netem:
    if rng.random() < 0.05:
        return Netem(partition=True)
    delay = None
    if rng.random() < 0.6:
        jitter = _ms(rng, 2147.0) if rng.random() < 0.6 else 0.0  # the kernel keeps at most ~2147 ms
        base = _ms(rng)
        dist = rng.choice([None, "normal", "pareto", "paretonormal"]) if jitter > 0 and base > 0 else None
        delay = Delay(base, jitter, _pct(rng) if rng.random() < 0.3 else 0.0, dist)
    loss: Loss | None = rng.choice([
        None,
        RandomLoss(_pct(rng), _pct(rng) if rng.random() < 0.3 else 0.0),
        StateLoss(_pct(rng), _pct(rng), _pct(rng), _pct(rng), _pct(rng)),
        GemodelLoss(_pct(rng), _pct(rng), _pct(rng), _pct(rng)),
    ])
    reorder = None
    if delay is not None and delay.delay_ms > 0 and rng.random() < 0.4:
        pct = _pct(rng)
        reorder = Reorder(pct, _pct(rng) if rng.random() < 0.5 else 0.0,
                          rng.choice([1, 2, 5, 1000]) if pct > 0 else 1)
    rate = None
    if rng.random() < 0.4:
        rate = Rate(rng.choice([8, 5000, 10**7, 10**9 + 7, rng.randint(8, 10**12)]),
                    rng.choice([0, 0, -14, 20]), rng.choice([0, 0, 48]), rng.choice([0, 0, 5, -3]))
    slot = None
    if rng.random() < 0.3:
        extra = {"max_packets": rng.choice([None, 1, 10]), "max_bytes": rng.choice([None, 1500, 65536])}
        if rng.random() < 0.5:
            lo = _ms(rng, 50)
            slot = Slot(lo, lo + rng.choice([0.0, 0.0005, _ms(rng, 50)]), **extra)  # type: ignore[arg-type]
        else:
            slot = Slot(distribution=rng.choice(["normal", "pareto", "paretonormal"]), delay_ms=_ms(rng, 50),
                        jitter_ms=rng.choice([0.001, 2.0, 0.000001]), **extra)  # type: ignore[arg-type]
    has_loss = loss is not None and not (isinstance(loss, RandomLoss) and loss.pct == 0)
    return Netem(
        delay=delay,
        loss=loss,
        duplicate=rng.choice([None, Duplicate(_pct(rng), _pct(rng))]),
        corrupt=rng.choice([None, Corrupt(_pct(rng))]),
        reorder=reorder,
        rate=rate,
        slot=slot,
        limit_packets=rng.choice([1000, 1000, 1, 50_000]),
        ecn=has_loss and rng.random() < 0.3,
        seed=rng.choice([None, 0, 42, 2**64 - 1]),
    )


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_models(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        n = _random_netem(rng)
        assert parse(to_text(n)) == n, to_text(n)
        assert from_dict(n.to_dict()) == n
        assert from_dict(json.loads(json.dumps(n.to_dict()))) == n
        if not n.partition:
            args = to_tc_args(n)
            assert parse(" ".join(args)) == n, args
            assert parse(args) == n
        describe(n)  # never fails
