"""The worker's hot path without a kernel: which impairments take GSO units whole, that a GSO
unit is never rewritten or copied, and how verdicts are batched around held packets.

The worker's ``_handle`` and ``_send`` run on a ``QueueWorker`` built without its socket
(``object.__new__``) and a fake queue that records the datagrams it would send; the
datagrams are decoded with the nfnetlink_queue layout (docs/engine.md)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from netbed_core.netem import Netem
from netbed_core.verdicts import NF_ACCEPT, NF_DROP
from netbed_router.engine import Engine, EngineConfig, HeldQueue
from netbed_router.nfqueue import (
    NFQA_PACKET_HDR,
    NFQA_PAYLOAD,
    NFQA_SKB_CSUMNOTREADY,
    NFQA_SKB_GSO,
    NFQA_SKB_INFO,
    NFQA_VERDICT_HDR,
    NFQNL_MSG_PACKET,
    NFQNL_MSG_VERDICT,
    NFQNL_MSG_VERDICT_BATCH,
    NfQueue,
)
from netbed_router.worker import QueueWorker

MS = 1_000_000


def spec(**kw: Any) -> dict[str, Any]:
    return {**Netem(seed=1).to_dict(), **kw}


def ipv4_udp(payload_len: int = 100) -> bytes:
    total = 28 + payload_len
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, bytes(4), bytes(4)) + bytes(8 + payload_len)


def _attr(atype: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, atype) + payload + bytes((-length) % 4)


def packet_msg(packet_id: int, payload: bytes, skb_info: int = 0) -> bytes:
    """One NFQNL_MSG_PACKET as the kernel sends it (NFQA_SKB_INFO only when flags are set)."""
    body = struct.pack("=BBH", 2, 0, 0)
    body += _attr(NFQA_PACKET_HDR, struct.pack(">IHB", packet_id, 0x0800, 2))
    body += _attr(NFQA_PAYLOAD, payload)
    if skb_info:
        body += _attr(NFQA_SKB_INFO, struct.pack(">I", skb_info))
    return struct.pack("=IHHII", 16 + len(body), NFQNL_MSG_PACKET, 0, 0, 0) + body


class FakeQueue:
    """NfQueue's message builders, with the datagrams recorded instead of sent."""

    def __init__(self) -> None:
        self.queue_num = 0
        self.sent: list[bytes] = []
        self._verdict_prefix = NfQueue._verdict_prefix_for(self, NFQNL_MSG_VERDICT, 0)  # type: ignore[arg-type]
        self._batch_prefix = NfQueue._verdict_prefix_for(self, NFQNL_MSG_VERDICT_BATCH, 0)  # type: ignore[arg-type]

    verdict_msg = NfQueue.verdict_msg
    batch_msg = NfQueue.batch_msg

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def decode(datagram: bytes) -> list[tuple[str, int, int, bool]]:
    """(kind, packet id, verdict, has payload) of each verdict message, in order."""
    out = []
    off = 0
    while off < len(datagram):
        mlen, mtype = struct.unpack_from("=IH", datagram, off)
        alen, atype = struct.unpack_from("=HH", datagram, off + 20)
        assert atype == NFQA_VERDICT_HDR and alen == 12
        verdict, pid = struct.unpack_from(">II", datagram, off + 24)
        kind = "batch" if mtype == NFQNL_MSG_VERDICT_BATCH else "one"
        out.append((kind, pid, verdict, mlen > 32))
        off += (mlen + 3) & ~3
    return out


def bare_worker(engine: Engine) -> tuple[QueueWorker, FakeQueue]:
    w = object.__new__(QueueWorker)
    q = FakeQueue()
    w.q = q  # type: ignore[assignment]
    w.held = engine.held
    w.engine = engine
    w.batch_verdicts = True
    w._raw4 = w._raw6 = None
    w.name = "test"
    return w, q


def handle(w: QueueWorker, engine: Engine, msgs: list[bytes], accept_ids: list[int]) -> None:
    data = bytearray(b"".join(msgs))
    w._handle(engine, data, memoryview(data), len(data), accept_ids)


# -- which impairments take GSO units whole ------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "safe"),
    [
        ({}, False),  # nothing is queued (no rule); the flag would outlive it (docs/engine.md)
        ({"partition": True}, True),
        ({"delay": {"delay_ms": 1.0}}, True),
        ({"delay": {"delay_ms": 20.0}, "limit_packets": 50}, True),
        ({"delay": {"delay_ms": 1.0, "jitter_ms": 0.1}}, False),
        ({"loss": {"model": "random", "pct": 1e-7}}, False),
        ({"delay": {"delay_ms": 1.0}, "duplicate": {"pct": 1.0}}, False),
        ({"delay": {"delay_ms": 1.0}, "corrupt": {"pct": 1.0}}, False),
        ({"delay": {"delay_ms": 1.0}, "reorder": {"pct": 10.0}}, False),
        ({"delay": {"delay_ms": 1.0}, "rate": {"bits_per_s": 1_000_000}}, False),
    ],
)
def test_gso_units_are_taken_whole_only_when_every_segment_is_treated_alike(
    extra: dict[str, Any], safe: bool
) -> None:
    wire = {**spec(**extra), "seed": None} if extra.get("partition") else spec(**extra)
    assert EngineConfig.from_dict(wire).gso_safe is safe


# -- a GSO unit is never rewritten or copied ----------------------------------------------
@pytest.mark.parametrize("flags", [NFQA_SKB_GSO, NFQA_SKB_CSUMNOTREADY, NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY])
def test_a_gso_unit_is_never_corrupted_but_a_wire_packet_is(flags: int) -> None:
    """corrupt 100%: the wire packet gets a new payload, the GSO unit (a transition from a
    GSO-safe impairment) is accepted unchanged; both make the same draws."""
    engine = Engine(EngineConfig.from_dict(spec(corrupt={"pct": 100.0})))
    w, _ = bare_worker(engine)
    accept_ids: list[int] = []
    handle(w, engine, [packet_msg(1, ipv4_udp()), packet_msg(2, ipv4_udp(), flags)], accept_ids)
    assert [(pid, verdict, payload is not None) for pid, verdict, payload in engine.out] == [(1, NF_ACCEPT, True)]
    assert accept_ids == [2]
    assert engine.whole is True  # reset after the unit
    assert engine.stats.corrupted == 1

    replay = Engine(EngineConfig.from_dict(spec(corrupt={"pct": 100.0})))
    replay.on_packet(1, ipv4_udp(), 128, 0)
    replay.on_packet(2, ipv4_udp(), 128, 0)
    assert replay.rng.getstate() == engine.rng.getstate()  # the unit consumed the same draws


def test_a_gso_unit_is_never_ecn_marked_and_its_duplicate_is_not_sent() -> None:
    engine = Engine(EngineConfig.from_dict(spec(duplicate={"pct": 100.0})))
    w, _ = bare_worker(engine)
    handle(w, engine, [packet_msg(7, ipv4_udp(), NFQA_SKB_GSO)], [])
    assert engine.inject == [b""]
    w._send(engine, [])
    assert engine.stats.dropped_error == 1 and "GSO unit" in (engine.stats.last_error or "")


# -- batched verdicts around held packets -------------------------------------------------
def test_accepts_below_every_held_packet_go_as_one_batch_after_the_single_verdicts() -> None:
    held = HeldQueue()
    engine = Engine(EngineConfig.from_dict(spec(loss={"model": "random", "pct": 1e-7})), held)
    held.push(10**18, 5, None, 100)  # packet 5 is held back
    engine.out.append((3, NF_DROP, None))
    engine.out.append((4, NF_ACCEPT, b"new"))
    w, q = bare_worker(engine)
    w._send(engine, [1, 2, 6, 7])
    (datagram,) = q.sent
    assert decode(datagram) == [
        ("one", 3, NF_DROP, False),
        ("one", 4, NF_ACCEPT, True),
        ("batch", 2, NF_ACCEPT, False),  # 1 and 2: below held packet 5
        ("one", 6, NF_ACCEPT, False),
        ("one", 7, NF_ACCEPT, False),
    ]


def test_released_packets_are_batched_when_nothing_older_is_held() -> None:
    """delay 1 ms: packets 1..4 held, 1..3 due; one batch for 3, packet 4 stays held."""
    engine = Engine(EngineConfig.from_dict(spec(delay={"delay_ms": 1.0})))
    for pid in range(1, 5):
        assert not engine.on_packet(pid, ipv4_udp(), 128, pid * MS // 4)
    engine.release(MS + 3 * MS // 4)
    w, q = bare_worker(engine)
    w._send(engine, [])
    assert decode(q.sent[0]) == [("batch", 3, NF_ACCEPT, False)]
    assert engine.held.min_id() == 4


def test_nothing_is_batched_when_the_oldest_packet_is_held() -> None:
    held = HeldQueue()
    engine = Engine(EngineConfig.from_dict(spec(delay={"delay_ms": 1.0})), held)
    held.push(10**18, 1, None, 100)
    w, q = bare_worker(engine)
    w._send(engine, [2, 3])
    assert decode(q.sent[0]) == [("one", 2, NF_ACCEPT, False), ("one", 3, NF_ACCEPT, False)]


def test_held_queue_min_id_follows_releases_in_any_order() -> None:
    held = HeldQueue()
    for pid, tts in ((1, 30), (2, 10), (3, 20)):
        held.push(tts, pid, None, 100)
    held.push(5, -1, b"copy", 100)  # a duplicate copy has no id
    assert held.min_id() == 1
    assert held.pop()[2] == -1 and held.min_id() == 1
    assert held.pop()[2] == 2 and held.min_id() == 1
    assert held.pop()[2] == 3 and held.min_id() == 1
    assert held.pop()[2] == 1 and held.min_id() is None


def test_held_queue_bookkeeping_stays_as_small_as_the_heap() -> None:
    """A steady stream through a fixed delay (the heap never empties): the ids kept for
    min_id() do not grow with the number of packets that passed."""
    held = HeldQueue()
    for pid in range(100_000):
        held.push(pid, pid, None, 100)
        if pid >= 10:
            held.pop()
    assert len(held) == 10
    assert len(held._ids) == 10 and not held._gone
    assert held.min_id() == 99_990
