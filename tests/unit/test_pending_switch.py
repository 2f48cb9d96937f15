"""A step handed to the engine ahead of time (pending_switch.py): the worker swaps the new
engine in for the first packet it reads at or after the deadline, records that time, releases
held packets then for a clear, and an immediate setting cancels a pending one.

The worker runs without its socket (``test_engine_hot_path.bare_worker``); time is the
``now_ns`` the loop passes in (the time it read the packet), so the clock is a plain number."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator

import pytest
from test_engine_hot_path import MS, bare_worker, decode, handle, ipv4_udp, packet_msg

from netbed_core.netem import parse
from netbed_core.verdicts import NF_ACCEPT, NF_DROP
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, EngineConfig, HeldQueue
from netbed_router.engine_process import SWITCH_GRACE_S, EngineHost, config_to_wire, serve
from netbed_router.pending_switch import PendingSlot, PendingSwitch
from netbed_router.worker import IDLE_WAKE_S, PENDING_SPIN_NS, QueueWorker

T = 5_000 * MS  # the deadline, monotonic ns
PARTITION = EngineConfig.from_dict(parse("partition").to_dict())


PIPES: list[int] = []


@pytest.fixture(autouse=True)
def _close_pipes() -> Iterator[None]:
    yield
    while PIPES:
        os.close(PIPES.pop())


def worker_with(engine: Engine) -> tuple[QueueWorker, list[bytes]]:
    w, q = bare_worker(engine)
    w.pending_slot = PendingSlot()
    w._wake_r, w._wake_w = os.pipe()
    os.set_blocking(w._wake_r, False)
    os.set_blocking(w._wake_w, False)
    w._armed = False
    w._armed_seen = threading.Event()
    PIPES.extend((w._wake_r, w._wake_w))
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


def test_an_armed_worker_is_woken_by_an_offer_and_disarmed_after_the_scenario() -> None:
    old = Engine(EngineConfig(seed=1), stream=0)
    w, _ = worker_with(old)
    assert w.arm(True, timeout_s=0) is False  # no loop runs here to confirm it waits in select
    assert w._armed and os.read(w._wake_r, 16) == b"\0"  # woken so the loop re-enters that way
    w.schedule_engine(Engine(PARTITION, old.held, EngineCounters()), T, flush=False)
    assert os.read(w._wake_r, 16) == b"\0"  # the offer wrote a wakeup (an empty pipe raises)
    w.set_engine(Engine(EngineConfig(seed=0), old.held, old.stats))  # a match step, a stop, a reset
    assert w._armed  # stays wakeable until the scenario releases the direction
    assert w.arm(False)
    assert not w._armed


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


def test_the_control_thread_reads_no_request_until_the_offered_switch_happened() -> None:
    """A request arriving at the deadline (the router's ``switched``) waits in the pipe until
    the worker switched: the control thread must not take the GIL just then."""
    calls: list[tuple[str, float]] = []

    class Worker:
        held = HeldQueue()
        engine = Engine(EngineConfig(seed=0), held, EngineCounters())
        alive, fatal = True, None

        def schedule_engine(self, engine: Engine, at_ns: int, *, flush: bool) -> None:
            calls.append(("schedule", 0.0))

        def wait_switched(self, timeout_s: float) -> int | None:
            calls.append(("wait", timeout_s))
            return 1

        def set_engine(self, engine: Engine) -> None: ...

        def flush(self, timeout_s: float = 2.0) -> bool:
            return True

        def stop(self) -> None: ...

    at_ns = time.monotonic_ns() + 300 * MS
    requests = [{"op": "engine", "config": config_to_wire(PARTITION), "at_ns": at_ns},
                {"op": "switched", "timeout_s": 0.5}]
    out = io.StringIO()
    serve(EngineHost(Worker()), io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), out)
    assert [kind for kind, _ in calls] == ["schedule", "wait", "wait"]
    assert 0.2 + SWITCH_GRACE_S < calls[1][1] <= 0.3 + SWITCH_GRACE_S  # until the deadline, and a grace
    assert calls[2][1] == 0.5  # then the switched request itself
    assert json.loads(out.getvalue().splitlines()[-1]) == {"ok": True, "result": {"switched_ns": 1}}


def test_an_idle_worker_sleeps_until_just_before_the_deadline_then_polls() -> None:
    old = Engine(EngineConfig(seed=1), stream=0)
    w, _ = worker_with(old)
    assert w._until_pending_s() == IDLE_WAKE_S and not w._pending_imminent()  # nothing pending
    w.schedule_engine(Engine(PARTITION, old.held, EngineCounters()), time.monotonic_ns() + 10 * MS, flush=False)
    assert (10 * MS - PENDING_SPIN_NS) / 1e9 - 0.005 < w._until_pending_s() <= (10 * MS - PENDING_SPIN_NS) / 1e9
    assert not w._pending_imminent()
    w.schedule_engine(Engine(PARTITION, old.held, EngineCounters()), time.monotonic_ns() + PENDING_SPIN_NS // 2,
                      flush=False)
    assert w._until_pending_s() == 0.0 and w._pending_imminent()
