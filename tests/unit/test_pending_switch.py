"""A step handed to the engine ahead of time (pending_switch.py): the worker swaps the new
engine in for the first packet it reads at or after the deadline, records that time, releases
held packets then for a clear, and an immediate setting cancels a pending one.

The worker runs without its socket (``test_engine_hot_path.bare_worker``); time is the
``now_ns`` the loop passes in (the time it read the packet), so the clock is a plain number."""

from __future__ import annotations

import pytest
from test_engine_hot_path import MS, bare_worker, decode, handle, ipv4_udp, packet_msg

from netbed_core.netem import parse
from netbed_core.verdicts import NF_ACCEPT, NF_DROP
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, EngineConfig
from netbed_router.engine_process import EngineHost, config_to_wire
from netbed_router.pending_switch import PendingSlot, PendingSwitch
from netbed_router.worker import IDLE_WAKE_S, QueueWorker

T = 5_000 * MS  # the deadline, monotonic ns
PARTITION = EngineConfig.from_dict(parse("partition").to_dict())


def worker_with(engine: Engine) -> tuple[QueueWorker, list[bytes]]:
    w, q = bare_worker(engine)
    w.pending_slot = PendingSlot()
    return w, q.sent


def verdicts(sent: list[bytes]) -> dict[int, int]:
    """Packet id -> verdict of every datagram sent (a batch accepts every id up to its own)."""
    out: dict[int, int] = {}
    for datagram in sent:
        for kind, pid, verdict, _ in decode(datagram):
            out[pid] = verdict if kind == "one" else NF_ACCEPT
    return out


def read(w: QueueWorker, pid: int, now_ns: int) -> None:
    """What the loop does for a packet read at ``now_ns``: switch if due, handle, send."""
    eng = w._switch_if_due(w.engine, now_ns, [])
    accept: list[int] = []
    handle(w, eng, [packet_msg(pid, ipv4_udp())], accept)
    w._send(eng, accept)


def test_the_first_packet_read_at_the_deadline_meets_the_new_engine() -> None:
    old = Engine(EngineConfig(seed=1), stream=0)
    w, sent = worker_with(old)
    w.schedule_engine(Engine(PARTITION, old.held, EngineCounters()), T,
                      flush=False)
    read(w, 1, T - 1)  # 1 ns before the deadline: the old engine
    assert w.engine is old and w.wait_switched(0) is None
    read(w, 2, T)  # at the deadline: the new one
    read(w, 3, T + 1)
    assert verdicts(sent) == {1: NF_ACCEPT, 2: NF_DROP, 3: NF_DROP}
    assert w.engine.config.partition
    assert w.wait_switched(0) == T  # the engine's own switch time, reported to the router


def test_a_clear_at_its_deadline_releases_the_held_packets_then() -> None:
    delayed = Engine(EngineConfig.from_dict(parse("delay 50ms").to_dict()), stream=0)
    w, sent = worker_with(delayed)
    read(w, 1, T - 10 * MS)  # held for 50 ms
    assert delayed.held.heap and verdicts(sent) == {}
    clear = Engine(EngineConfig(seed=0), delayed.held, delayed.stats)
    w.schedule_engine(clear, T, flush=True)
    assert w._switch_if_due(delayed, T - 1, []) is delayed and delayed.held.heap
    # idle at the deadline: the loop's wakeup switches without a packet
    assert w._switch_if_due(delayed, T + 100_000, []) is clear
    assert not delayed.held.heap and verdicts(sent) == {1: NF_ACCEPT}
    assert w.wait_switched(0) == T + 100_000


def test_an_immediate_setting_cancels_the_pending_switch() -> None:
    old = Engine(EngineConfig(seed=1), stream=0)
    w, _ = worker_with(old)
    w.schedule_engine(Engine(PARTITION, old.held, EngineCounters()), T,
                      flush=False)
    now = Engine(EngineConfig.from_dict(parse("delay 1ms").to_dict()), old.held, EngineCounters())
    w.set_engine(now)  # a stop or reset before the deadline
    assert w.wait_switched(0) is None  # cancelled: the router is not told it switched
    assert w._switch_if_due(now, T + MS, []) is now and w.engine is now  # the stale one never comes


def test_a_newer_pending_switch_replaces_one_not_yet_due() -> None:
    slot = PendingSlot()
    first = PendingSwitch(Engine(EngineConfig(seed=0)), T, flush=False)
    second = PendingSwitch(Engine(EngineConfig(seed=0)), T + MS, flush=False)
    slot.offer(first)
    slot.offer(second)
    assert first.cancelled and first.done.is_set()
    assert slot.take(T) is None and slot.take(T + MS) is second and slot.pending is None


@pytest.mark.parametrize(("now_ns", "seconds"), [(T - 3 * MS, 0.003), (T, 0.0), (T + MS, 0.0)])
def test_the_worker_sleeps_no_later_than_the_deadline(now_ns: int, seconds: float) -> None:
    assert PendingSwitch(Engine(EngineConfig(seed=0)), T, flush=False).seconds_until(now_ns) == pytest.approx(seconds)
    assert seconds < IDLE_WAKE_S  # without a pending switch the worker sleeps up to IDLE_WAKE_S


def test_the_engine_process_takes_an_engine_with_a_deadline_and_reports_the_switch() -> None:
    w, sent = worker_with(Engine(EngineConfig(seed=0), stream=0))
    host = EngineHost(w, "to-server")
    config = config_to_wire(PARTITION)
    answer = host.handle({"op": "engine", "config": config, "stream": 0, "at_ns": T})
    assert answer["pending"] is True and not w.engine.config.partition  # not before the deadline
    assert host.handle({"op": "switched", "timeout_s": 0}) == {"switched_ns": None}
    read(w, 7, T + 2 * MS)
    assert verdicts(sent) == {7: NF_DROP}
    assert host.handle({"op": "switched", "timeout_s": 0}) == {"switched_ns": T + 2 * MS}
