"""The engine's decision log (netbed_router.decision_log), fed synthetic packets: every
fate it records is checked against what the engine itself did (verdicts, held packets,
copies), and switching it on or off changes no decision."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from test_engine_decisions import ipv4_udp

from netbed_core.netem import parse
from netbed_core.packet_key import ip_key
from netbed_core.verdicts import NF_DROP
from netbed_router.decision_log import DecisionLog, LoggedEngine, attach, detach
from netbed_router.engine import Engine, EngineConfig

MS = 1_000_000


def engine(netem: str) -> Engine:
    return Engine(EngineConfig.from_dict(parse(netem).to_dict()))


def feed(eng: Engine, n: int, t: int = 0) -> list[str]:
    """Feed n distinct packets at time t; what the engine did to each ("drop", "pass", "held")."""
    fates = []
    for i in range(n):
        pkt = ipv4_udp(100, seq=i)
        n_out, seq = len(eng.out), eng.held.seq
        if eng.on_packet(i, pkt, len(pkt), t):
            fates.append("pass")
        elif any(p == i and v == NF_DROP for p, v, _ in eng.out[n_out:]):
            fates.append("drop")
        elif any(e[1] > seq and e[2] == i for e in eng.held.heap):
            fates.append("held")
        else:
            fates.append("pass")
    return fates


def logged(netem: str, n: int, max_entries: int = 1000) -> tuple[Engine, list[str], list[dict[str, Any]], Path]:
    eng = engine(netem)
    log = DecisionLog("to-server", max_entries)
    attach(eng, log)
    fates = feed(eng, n)
    with tempfile.TemporaryDirectory(prefix="netbed-decisions-") as tmp:  # no fixed folder: it may not exist
        path = Path(tmp) / "decisions.jsonl"
        header = log.write(path)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == header
    return eng, fates, lines[1:], path


def test_loss_entries_are_exactly_the_dropped_packets() -> None:
    _, fates, entries, _ = logged("loss 50% seed 3", 400)
    assert [e["fate"] for e in entries] == fates
    assert 100 < fates.count("drop") < 300  # seeded, so fixed; both fates occur
    assert {e["reason"] for e in entries if e["fate"] == "drop"} == {"loss"}
    assert [e["key"] for e in entries] == [ip_key(ipv4_udp(100, seq=i)) for i in range(400)]


def test_delay_is_recorded_in_microseconds() -> None:
    _, fates, entries, _ = logged("delay 10ms 2ms seed 5", 200)
    assert set(fates) == {"held"}
    delays = [e["delay_us"] for e in entries]
    assert all(e["fate"] == "delay" for e in entries)
    assert all(8000 <= d <= 12000 for d in delays)  # uniform jitter: 10 ms ± 2 ms, nothing else
    assert len(set(delays)) > 100  # one draw per packet, not one value


def test_corruption_names_the_flipped_byte() -> None:
    eng, _, entries, _ = logged("corrupt 100% seed 2", 50)
    by_id = {pid: payload for pid, _, payload in eng.out}
    for i, e in enumerate(entries):
        original, sent = ipv4_udp(100, seq=i), by_id[i]
        differing = [k for k in range(len(original)) if original[k] != sent[k]]
        assert differing == [e["corrupt_byte"]]


def test_duplicates_record_the_copys_fate() -> None:
    eng, _, entries, _ = logged("duplicate 100% seed 4", 20)
    assert all(e["duplicate"] == {"fate": "pass"} for e in entries)
    assert len(eng.inject) == 20


def test_limit_drops_are_named() -> None:
    _, fates, entries, _ = logged("delay 1s limit 5 seed 1", 10)
    assert fates == ["held"] * 5 + ["drop"] * 5
    assert [e.get("reason") for e in entries[5:]] == ["limit"] * 5


def test_the_log_is_bounded_and_keeps_the_newest() -> None:
    _, _, entries, _ = logged("loss 10% seed 1", 50, max_entries=10)
    assert len(entries) == 10
    assert entries[-1]["key"] == ip_key(ipv4_udp(100, seq=49))


def test_logging_changes_no_decision_and_detaches() -> None:
    plain = engine("loss 30% delay 5ms 1ms duplicate 10% corrupt 10% seed 9")
    eng = engine("loss 30% delay 5ms 1ms duplicate 10% corrupt 10% seed 9")
    first = feed(eng, 100)
    attach(eng, DecisionLog("to-server"))
    assert isinstance(eng, LoggedEngine)
    second = feed(eng, 100)
    detach(eng)
    assert type(eng) is Engine
    assert feed(plain, 200)[:200] == first + second


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        DecisionLog("to-server", 0)


def test_a_capture_gets_the_entries_from_its_own_start(tmp_path: Path) -> None:
    """One log serves several captures: each writes the entries from its start on."""
    eng = engine("loss 10% seed 1")
    log = DecisionLog("to-server")
    attach(eng, log)
    for i in range(10):
        pkt = ipv4_udp(100, seq=i)
        eng.on_packet(i, pkt, len(pkt), i * MS)
    header = log.write(tmp_path / "late.jsonl", since_ns=6 * MS)
    assert header["entries"] == 4
    assert log.write(tmp_path / "all.jsonl")["entries"] == 10  # writing does not consume the log
