"""The userspace engine's netem decisions, fed synthetic packets (pure, no kernel)."""

from __future__ import annotations

import math
import re
import statistics
import struct
from typing import Any

import pytest

from netbed_core.netem import Netem
from netbed_core.verdicts import NF_ACCEPT, NF_DROP
from netbed_router.engine import L2_HEADER_BYTES, Engine, EngineConfig
from netbed_router.randomness import dist_value
from netbed_testkit.binomial import rate_in_interval, z_value

MS = 1_000_000


def spec(**kw: Any) -> dict[str, Any]:
    """The wire dict of a pristine impairment (seed 1), with `kw` replacing keys."""
    return {**Netem(seed=1).to_dict(), **kw}


def ipv4_udp(payload_len: int = 100, tos: int = 0, seq: int = 0) -> bytes:
    """A valid IPv4/UDP packet (header checksum correct)."""
    total = 20 + 8 + payload_len
    hdr = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            tos,
            total,
            seq & 0xFFFF,
            0,
            64,
            17,
            0,
            bytes([10, 0, 0, 2]),
            bytes([10, 0, 1, 2]),
        )
    )
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack("!H", ~s & 0xFFFF)
    udp = struct.pack("!HHHH", 1234, 5678, 8 + payload_len, 0)
    return bytes(hdr) + udp + bytes((seq + i) & 0xFF for i in range(payload_len))


def run(engine: Engine, n: int, length: int = 100, data: bytes = b"", t: int = 0) -> list[bool]:
    """True per packet if dropped (all arriving at time t)."""
    out = []
    for i in range(n):
        before = len(engine.out)
        accepted = engine.on_packet(i, data, length, t)
        dropped = not accepted and len(engine.out) > before and engine.out[-1][1] == NF_DROP
        out.append(dropped)
    return out


# -- loss models -------------------------------------------------------------------------
@pytest.mark.parametrize("pct", [1.0, 10.0, 50.0])
def test_random_loss_rate_in_binomial_ci(pct: float) -> None:
    n = 50_000
    eng = Engine(EngineConfig.from_dict(spec(loss={"model": "random", "pct": pct, "correlation_pct": 0.0})))
    lost = sum(run(eng, n))
    assert rate_in_interval(lost, n, pct / 100)[0]
    assert eng.stats.dropped_loss == lost and eng.stats.passed == n - lost


def test_loss_0_and_100() -> None:
    eng = Engine(EngineConfig.from_dict(spec(loss={"model": "random", "pct": 100.0, "correlation_pct": 0.0})))
    assert all(run(eng, 1000))
    eng = Engine(EngineConfig.from_dict(spec(loss={"model": "random", "pct": 0.0, "correlation_pct": 0.0})))
    assert eng.noop and not any(run(eng, 1000))


def test_correlated_loss_makes_longer_runs() -> None:
    def mean_run(corr: float) -> float:
        eng = Engine(
            EngineConfig.from_dict(spec(loss={"model": "random", "pct": 50.0, "correlation_pct": corr}))
        )
        seq = run(eng, 20_000)
        runs, cur = [], 1
        for a, b in zip(seq, seq[1:], strict=False):
            if a == b:
                cur += 1
            else:
                runs.append(cur)
                cur = 1
        return statistics.mean(runs)

    assert mean_run(90.0) > 2 * mean_run(0.0)


def bursts(seq: list[bool]) -> list[int]:
    out, cur = [], 0
    for lost in seq:
        if lost:
            cur += 1
        elif cur:
            out.append(cur)
            cur = 0
    return out


def test_gilbert_elliott_mean_burst_is_1_over_r() -> None:
    # Simple Gilbert: all lost in bad, none in good -> bursts are geometric, mean 1/r.
    r = 0.2
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                loss={
                    "model": "gemodel",
                    "p_pct": 2.0,
                    "r_pct": r * 100,
                    "one_minus_h_pct": 100.0,
                    "one_minus_k_pct": 0.0,
                }
            )
        )
    )
    b = bursts(run(eng, 200_000))
    sd = math.sqrt(1 - r) / r / math.sqrt(len(b))
    assert abs(statistics.mean(b) - 1 / r) <= z_value(0.99) * sd, (statistics.mean(b), len(b))
    # Stationary loss rate p / (p + r).
    n, p = 200_000, 0.02
    assert abs(eng.stats.dropped_loss / n - p / (p + r)) < 0.01


def test_gilbert_elliott_good_state_loss_is_1_minus_k() -> None:
    n = 50_000
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                loss={
                    "model": "gemodel",
                    "p_pct": 0.0,
                    "r_pct": 100.0,
                    "one_minus_h_pct": 100.0,
                    "one_minus_k_pct": 5.0,
                }
            )
        )
    )
    lost = sum(run(eng, n))  # never leaves the good state
    assert rate_in_interval(lost, n, 0.05)[0]


def test_4state_isolated_losses() -> None:
    # Only 1 -> 4 -> 1: losses are isolated, rate p14 / (1 + p14).
    n, p14 = 100_000, 0.05
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                loss={
                    "model": "state",
                    "p13_pct": 0.0,
                    "p31_pct": 100.0,
                    "p32_pct": 0.0,
                    "p23_pct": 0.0,
                    "p14_pct": p14 * 100,
                }
            )
        )
    )
    seq = run(eng, n)
    assert max(bursts(seq)) == 1
    assert abs(sum(seq) / n - p14 / (1 + p14)) < 0.005


def test_4state_burst_periods() -> None:
    # 1 -> 3 with p13; in 3 stay lost with 1 - p31 (p32 = 0): bursts geometric mean 1/p31.
    p31 = 0.25
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                loss={
                    "model": "state",
                    "p13_pct": 1.0,
                    "p31_pct": p31 * 100,
                    "p32_pct": 0.0,
                    "p23_pct": 0.0,
                    "p14_pct": 0.0,
                }
            )
        )
    )
    b = bursts(run(eng, 200_000))
    sd = math.sqrt(1 - p31) / p31 / math.sqrt(len(b))
    assert abs(statistics.mean(b) - 1 / p31) <= z_value(0.99) * sd


# -- determinism ---------------------------------------------------------------------------
FULL = spec(
    delay={"delay_ms": 10.0, "jitter_ms": 5.0, "correlation_pct": 25.0, "distribution": "normal"},
    loss={"model": "random", "pct": 10.0, "correlation_pct": 30.0},
    duplicate={"pct": 10.0, "correlation_pct": 0.0},
    corrupt={"pct": 10.0, "correlation_pct": 0.0},
    reorder={"pct": 20.0, "correlation_pct": 0.0, "gap": 3},
    seed=123456,
)


def trace(sp: dict[str, Any], n: int = 3000) -> list[Any]:
    eng = Engine(EngineConfig.from_dict(sp))
    out: list[Any] = []
    pkt = ipv4_udp(200)
    for i in range(n):
        t = i * 100_000
        eng.on_packet(i, pkt, len(pkt), t)
        eng.release(t)
        out.append(
            (
                i,
                [(pid, v, bytes(p) if p else None) for pid, v, p in eng.out],
                list(eng.inject),
                [tuple(h[:3]) for h in eng.held.heap],
            )
        )
        eng.out.clear()
        eng.inject.clear()
    return out


def test_same_seed_same_decisions() -> None:
    assert trace(FULL) == trace(FULL)
    assert trace(FULL) != trace({**FULL, "seed": 654321})


def test_seed_none_is_reported() -> None:
    eng = Engine(EngineConfig.from_dict({**FULL, "seed": None}))
    assert isinstance(eng.seed, int) and eng.stats.seed == eng.seed
    again = Engine(EngineConfig.from_dict({**FULL, "seed": eng.seed}))
    assert again.rng.getstate() == eng.rng.getstate()


def test_limit_drops_do_not_shift_later_decisions() -> None:
    # Same seed, two very different limits: the loss decisions of the packets that were
    # not limit-dropped are identical.
    def losses(limit: int) -> dict[int, bool]:
        sp = spec(
            delay={"delay_ms": 50.0, "jitter_ms": 10.0},
            loss={"model": "random", "pct": 20.0},
            limit_packets=limit,
            seed=99,
        )
        eng = Engine(EngineConfig.from_dict(sp))
        out = {}
        for i in range(2000):
            eng.on_packet(i, b"", 100, i * 10_000)
            eng.release(i * 10_000)
        for pid, v, _ in eng.out:
            out[pid] = v == NF_DROP
        return out

    a, b = losses(1000), losses(30)
    lost_b = {k for k, v in b.items() if v}
    lost_a = {k for k, v in a.items() if v}
    # every loss-drop in the unlimited run is also dropped (by loss or limit) in the other
    assert lost_a <= lost_b


# -- reorder ---------------------------------------------------------------------------------
def test_reorder_gap_pattern() -> None:
    eng = Engine(EngineConfig.from_dict(spec(delay={"delay_ms": 10.0}, reorder={"pct": 100.0, "gap": 5})))
    immediate = [i for i in range(20) if eng.on_packet(i, b"", 100, 0)]
    assert immediate == [4, 9, 14, 19]  # every 5th packet goes first
    assert eng.stats.reordered == 4 and eng.stats.delayed == 16


def test_reorder_probability_without_gap() -> None:
    n = 20_000
    eng = Engine(
        EngineConfig.from_dict(
            spec(delay={"delay_ms": 10.0}, reorder={"pct": 25.0, "correlation_pct": 0.0}, limit_packets=n)
        )
    )
    immediate = sum(eng.on_packet(i, b"", 100, 0) for i in range(n))
    assert rate_in_interval(immediate, n, 0.25)[0]


# -- delay -----------------------------------------------------------------------------------
def held_delays(sp: dict[str, Any], n: int = 20_000) -> list[float]:
    eng = Engine(EngineConfig.from_dict({**sp, "limit_packets": n + 1}))
    for i in range(n):
        eng.on_packet(i, b"", 100, 0)
    return [h[0] / MS for h in eng.held.heap]


def test_constant_delay() -> None:
    assert set(held_delays(spec(delay={"delay_ms": 25.0}), 100)) == {25.0}


def test_uniform_jitter_range_and_mean() -> None:
    d = held_delays(spec(delay={"delay_ms": 50.0, "jitter_ms": 10.0}))
    assert 40.0 <= min(d) and max(d) < 60.0
    assert abs(statistics.mean(d) - 50.0) < 0.2


def test_normal_jitter_mean_and_sigma() -> None:
    d = held_delays(spec(delay={"delay_ms": 50.0, "jitter_ms": 10.0, "distribution": "normal"}))
    assert abs(statistics.mean(d) - 50.0) < 0.3
    assert abs(statistics.stdev(d) - 10.0) < 0.3
    assert min(d) >= 50.0 - 4 * 10.0 - 1e-6  # iproute2 tables stop at about +-4 sigma


@pytest.mark.parametrize("dist", ["pareto", "paretonormal"])
def test_heavy_tailed_jitter(dist: str) -> None:
    d = held_delays(spec(delay={"delay_ms": 50.0, "jitter_ms": 10.0, "distribution": dist}))
    assert abs(statistics.mean(d) - 50.0) < 1.0  # table mean is 0 (slightly less after the clamp)
    assert statistics.median(d) < statistics.mean(d)  # right-skewed
    assert max(d) <= 50.0 + 10.0 * 32767 / 8192 + 1e-6


def test_dist_value_matches_iproute2_pareto_table_ends() -> None:
    # pareto.c: first entry (u' = 1) is (1 - 1.5) * 4/3 sigma; the tail is clamped to s16.
    assert dist_value("pareto", 0) == pytest.approx(-2 / 3, abs=1e-6)
    assert dist_value("pareto", 0xFFFFFFFF) == pytest.approx(32767 / 8192)


def test_negative_delay_is_sent_now() -> None:
    eng = Engine(
        EngineConfig.from_dict(spec(delay={"delay_ms": 1.0, "jitter_ms": 5.0}, limit_packets=10_000, seed=5))
    )
    now = sum(eng.on_packet(i, b"", 100, 0) for i in range(10_000))
    assert 3500 < now < 4500  # P(uniform(-4, 6) ms <= 0) = 40%


# -- rate and limit -------------------------------------------------------------------------
def test_rate_serialization_exact() -> None:
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                rate={
                    "bits_per_s": 1_000_000,
                    "packet_overhead_bytes": 0,
                    "cell_size_bytes": 0,
                    "cell_overhead_bytes": 0,
                }
            )
        )
    )
    per = (1000 + L2_HEADER_BYTES) * 8 * 1000  # ns at 1 Mbit/s = 125000 B/s
    for i in range(5):
        assert not eng.on_packet(i, b"", 1000, 0)
    assert sorted(h[0] for h in eng.held.heap) == [per * (k + 1) for k in range(5)]
    # Released exactly when due, in order.
    eng.release(per * 3 - 1)
    assert [pid for pid, _, _ in eng.out] == [0, 1]
    eng.release(per * 5)
    assert [pid for pid, _, _ in eng.out] == [0, 1, 2, 3, 4]
    # Queue empty: the next packet starts from its own arrival time.
    t = per * 10
    eng.on_packet(5, b"", 1000, t)
    assert eng.held.heap[0][0] == t + per


def test_rate_with_packet_and_cell_overhead() -> None:
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                rate={
                    "bits_per_s": 1_000_000,
                    "packet_overhead_bytes": 10,
                    "cell_size_bytes": 48,
                    "cell_overhead_bytes": 5,
                }
            )
        )
    )
    eng.on_packet(0, b"", 1000, 0)
    cells = math.ceil((1000 + L2_HEADER_BYTES + 10) / 48)
    assert eng.held.heap[0][0] == cells * 53 * 1_000_000_000 // 125_000


def test_rate_plus_delay_uses_time_bonus() -> None:
    # netem: delay counts from the last held packet's send time minus the time already waited.
    eng = Engine(EngineConfig.from_dict(spec(delay={"delay_ms": 10.0}, rate={"bits_per_s": 8_000_000})))
    per = (986 + L2_HEADER_BYTES) * 1000  # 1000 B at 1 MB/s = 1 ms
    eng.on_packet(0, b"", 986, 0)
    eng.on_packet(1, b"", 986, 0)
    assert [h[0] for h in sorted(eng.held.heap)] == [10 * MS + per, 10 * MS + 2 * per]


def test_limit_drops() -> None:
    eng = Engine(EngineConfig.from_dict(spec(rate={"bits_per_s": 1_000_000}, limit_packets=10)))
    dropped = run(eng, 50, length=1000)
    assert sum(dropped) == 40 and dropped[:10] == [False] * 10
    assert eng.stats.dropped_limit == 40 and eng.stats.queue_depth_max == 10


def test_partition_drops_everything() -> None:
    eng = Engine(EngineConfig.from_dict(spec(partition=True, seed=None)))
    assert all(run(eng, 100))
    assert eng.stats.dropped_partition == 100


# -- duplicate, corrupt, ecn ---------------------------------------------------------------
def test_duplicate_copy_is_identical_and_rate_in_ci() -> None:
    n = 20_000
    eng = Engine(EngineConfig.from_dict(spec(duplicate={"pct": 20.0, "correlation_pct": 0.0})))
    pkt = ipv4_udp(50)
    for i in range(n):
        assert eng.on_packet(i, pkt, len(pkt), 0)
    assert rate_in_interval(len(eng.inject), n, 0.2)[0] and eng.stats.duplicated == len(eng.inject)
    assert all(c == pkt for c in eng.inject)


def test_duplicate_copy_goes_through_delay() -> None:
    eng = Engine(EngineConfig.from_dict(spec(duplicate={"pct": 100.0}, delay={"delay_ms": 5.0})))
    pkt = ipv4_udp(10)
    eng.on_packet(0, pkt, len(pkt), 0)
    assert sorted((h[0], h[2]) for h in eng.held.heap) == [(5 * MS, -1), (5 * MS, 0)]
    eng.release(5 * MS)
    assert eng.out == [(0, NF_ACCEPT, None)] and eng.inject == [pkt]


def test_corrupt_flips_one_bit_after_ip_header() -> None:
    eng = Engine(EngineConfig.from_dict(spec(corrupt={"pct": 100.0, "correlation_pct": 0.0})))
    for i in range(500):
        pkt = ipv4_udp(60, seq=i)
        assert not eng.on_packet(i, pkt, len(pkt), 0)
        pid, verdict, mangled = eng.out[-1]
        assert pid == i and verdict == NF_ACCEPT and mangled is not None
        diff = [(j, a ^ b) for j, (a, b) in enumerate(zip(pkt, mangled, strict=True)) if a != b]
        assert len(diff) == 1 and diff[0][0] >= 20 and bin(diff[0][1]).count("1") == 1
    assert eng.stats.corrupted == 500


def test_corrupt_skips_truncated_copy() -> None:
    eng = Engine(EngineConfig.from_dict(spec(corrupt={"pct": 100.0})))
    pkt = ipv4_udp(100)
    assert eng.on_packet(0, pkt[:60], len(pkt), 0)  # copy shorter than the packet: untouched
    assert eng.stats.corrupted == 0


def test_ecn_marks_instead_of_dropping() -> None:
    eng = Engine(EngineConfig.from_dict(spec(loss={"model": "random", "pct": 100.0}, ecn=True)))
    ect0 = ipv4_udp(20, tos=0x02)
    assert not eng.on_packet(0, ect0, len(ect0), 0)
    pid, verdict, marked = eng.out[-1]
    assert verdict == NF_ACCEPT and marked is not None and marked[1] & 3 == 3
    assert sum(struct.unpack("!10H", bytes(marked[:20]))) % 0xFFFF == 0  # header checksum still valid
    not_ect = ipv4_udp(20, tos=0)
    assert not eng.on_packet(1, not_ect, len(not_ect), 0)
    assert eng.out[-1] == (1, NF_DROP, None)
    assert eng.stats.ecn_marked == 1 and eng.stats.dropped_loss == 1


# -- slot ----------------------------------------------------------------------------------------
def test_slot_releases_bursts() -> None:
    eng = Engine(
        EngineConfig.from_dict(
            spec(
                slot={
                    "min_delay_ms": 10.0,
                    "max_delay_ms": 10.0,
                    "distribution": None,
                    "delay_ms": None,
                    "jitter_ms": None,
                    "max_packets": 2,
                    "max_bytes": None,
                }
            )
        )
    )
    for i in range(5):
        assert not eng.on_packet(i, b"", 100, 0)
    released = []
    for t in (0, 5 * MS, 10 * MS, 15 * MS, 20 * MS):
        eng.release(t)
        released.append([pid for pid, _, _ in eng.out])
        eng.out.clear()
    assert released == [[0, 1], [], [2, 3], [], [4]]


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"loss": {"model": "random", "pct": 150.0}}, '"pct" = 150.0'),
        ({"loss": {"model": "bogus"}}, "loss model 'bogus'"),
        ({"delay": {"delay_ms": -1.0}}, '"delay_ms" = -1.0'),
        ({"delay": {"delay_ms": 1.0, "distribution": "weird"}}, 'distribution "weird"'),
        ({"rate": {"bits_per_s": "fast"}}, '"bits_per_s"'),
        ({"reorder": {"pct": 10.0, "gap": -1}}, '"gap" = -1'),
        ({"limit_packets": -5}, "limit_packets"),
        ({"partition": "yes"}, "partition"),
        ({"bogus": 1}, "bogus"),
        ({"duplicate": {"pct": True}}, '"pct"'),
    ],
)
def test_bad_spec_names_the_key(bad: dict[str, Any], key: str) -> None:
    """The engine validates with the shared model (netbed_core.netem): the error names the key."""
    with pytest.raises(ValueError, match=re.escape(key)):
        EngineConfig.from_dict(spec(**bad))
