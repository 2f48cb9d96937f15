"""One NFQUEUE queue's worker thread: read packets, let the engine decide, send
verdicts and duplicate copies, release held packets when they are due."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Protocol

from netbed_core.verdicts import NF_ACCEPT

from .counters import EngineCounters
from .engine import Engine, EngineConfig, HeldQueue
from .nfqueue import MAX_COPY_RANGE, NFQA_SKB_NOT_WHOLE, NFQNL_MSG_PACKET, NLMSG_ERROR, NfQueue, parse_packet
from .pending_switch import PendingSlot, PendingSwitch
from .scheduling import Scheduling, request


class QueueRunner(Protocol):
    """What drives one queue's engine, as the backend and the engine process see it:
    ``QueueWorker`` (a thread in this process) or ``engine_supervisor.EngineProcess`` (a
    supervised child process running a ``QueueWorker``)."""

    engine: Engine
    held: HeldQueue

    @property
    def alive(self) -> bool: ...

    @property
    def fatal(self) -> str | None: ...

    def set_engine(self, engine: Engine) -> None: ...

    def flush(self, timeout_s: float = 2.0) -> bool: ...

    def stop(self) -> None: ...

log = logging.getLogger("netbed.router.userspace")

#: Kernel-side queue length (packets awaiting our verdict, held ones included).  The
#: engine's own ``limit_packets`` applies first; this is the memory safety net.
KERNEL_QUEUE_MAXLEN = 32768
#: How often an idle worker wakes up to notice stop/flush requests (s).
IDLE_WAKE_S = 0.05
#: After a wakeup the socket is drained without blocking until EAGAIN, but at most this
#: many packets, so that held packets are released on time during a flood.
DRAIN_MAX = 256
#: A real-time worker sleeps RT_SLEEP_S at least this often (ns) while busy, so only a thread
#: stuck in a loop reaches RLIMIT_RTTIME (scheduling.py).
RT_SLEEP_EVERY_NS = 100_000_000
RT_SLEEP_S = 0.0001
#: Wakeup coalescing of a real-time worker: when a wakeup found a single packet and the one
#: before came less than COALESCE_GAP_NS earlier, the worker sleeps ``coalesce_us`` before
#: reading again, so a sender on the same CPU is not preempted once per packet (docs/engine.md,
#: "Coalescing").  Below 1 / COALESCE_GAP_NS packets per second it never waits.  Off by default:
#: measured, it lowered the UDP packet rate (docs/engine.md).
COALESCE_GAP_NS = 200_000
DEFAULT_COALESCE_US = 0
#: An idle worker with a pending switch sleeps until this long before its deadline, then polls
#: the queue without sleeping (ns): waking from a sleep on a loaded machine takes milliseconds
#: now and then, the poll costs at most this much CPU per switch.
PENDING_SPIN_NS = 1_000_000
#: Largest verdict datagram (bytes); netlink refuses messages above the socket sndbuf.
MAX_SEND_BYTES = 256 * 1024

_ACCEPT_BE = NF_ACCEPT.to_bytes(4, "big")
_MSG_HDR = struct.Struct("=IH")  # nlmsghdr length, type
_ERRNO = struct.Struct("=i")  # nlmsgerr.error (negative errno)


class QueueWorker:
    """Runs one NFQUEUE queue through an ``Engine`` in a daemon thread.

    ``set_engine`` swaps the engine atomically (held packets stay held, like
    ``tc qdisc change``); the next packet read uses the new engine.  ``schedule_engine``
    hands it an engine to swap in by itself at a deadline (``pending_switch.py``): the
    first packet read at or after it uses the new engine, and an idle worker wakes at it.
    """

    def __init__(
        self, queue_num: int, name: str, *, batch_verdicts: bool = True, busy_poll_s: float = 0.0,
        sched_mode: str = "normal", gso: bool = True, coalesce_us: int = DEFAULT_COALESCE_US,
    ) -> None:
        """busy_poll_s: keep polling (100% of a CPU) for this long after each packet before
        sleeping in recv; 0 = always sleep.  sched_mode: the worker thread's class
        (``scheduling.request``: ``realtime`` asks for SCHED_FIFO, as the engine process does;
        a thread in the agent stays ``normal``).  gso: take GSO units whole (NFQA_CFG_F_GSO)
        while the engine is ``gso_safe``.
        coalesce_us: wakeup coalescing of a real-time worker (0 = off; see COALESCE_GAP_NS)."""
        self.name = name
        self.busy_poll_s = busy_poll_s
        self.sched_mode = sched_mode
        self.gso_enabled = gso
        self.coalesce_us = coalesce_us
        self.scheduling: Scheduling | None = None
        self.tid: int | None = None
        self._started = threading.Event()
        self.q = NfQueue(
            queue_num, copy_range=MAX_COPY_RANGE, max_len=KERNEL_QUEUE_MAXLEN, recv_timeout_s=IDLE_WAKE_S
        )
        self.held = HeldQueue()
        self.engine = Engine(EngineConfig(seed=0), self.held, EngineCounters())
        self.pending_slot = PendingSlot()
        # Wakes a worker waiting for packets when a switch is offered (``schedule_engine``):
        # while armed (``arm``, for a scenario), the idle worker waits in select on the queue and
        # this pipe instead of a blocking recv (one more syscall per wakeup, only then), so a step
        # handed over less than IDLE_WAKE_S ahead is not missed.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._armed = False
        self._armed_seen = threading.Event()
        self.batch_verdicts = batch_verdicts
        self._raw4: socket.socket | None = None
        self._raw6: socket.socket | None = None
        self._stop = False
        self._flush_requested = False
        self._flushed = threading.Event()
        self.fatal: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"nfq-{name}", daemon=True)
        self._thread.start()
        self._started.wait(2.0)  # scheduling and tid are known once the thread runs

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def set_engine(self, engine: Engine) -> None:
        """Swap ``engine`` in now; a pending switch not yet due is cancelled."""
        with self.pending_slot.lock:
            self.pending_slot._cancel_locked()
            self.engine = engine

    def schedule_engine(self, engine: Engine, at_ns: int, *, flush: bool) -> None:
        """Swap ``engine`` in at ``at_ns`` (``time.monotonic_ns``), from the worker thread:
        for the first packet read at or after it, or at it when idle; ``flush``: then release
        the held packets (a clear).  Replaces a pending switch not yet due."""
        self.pending_slot.offer(PendingSwitch(engine, at_ns, flush))
        self._armed = True
        self._wake()

    def arm(self, on: bool, timeout_s: float = 2 * IDLE_WAKE_S) -> bool:
        """``on``: make an idle worker wakeable by ``schedule_engine`` (see ``_wake_r``), and wait
        up to ``timeout_s`` until the loop waits that way (a blocking recv in progress lasts up to
        IDLE_WAKE_S); True once it does.  Off: back to the plain blocking recv."""
        self._armed_seen.clear()
        self._armed = on
        if not on:
            return True
        self._wake()
        return self._armed_seen.wait(timeout_s)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wakeups already

    def wait_switched(self, timeout_s: float) -> int | None:
        """The monotonic ns at which the last scheduled engine took over, waiting up to
        ``timeout_s``; None if it was cancelled or has not switched yet."""
        return self.pending_slot.wait(timeout_s)

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Release every held packet now (from the worker thread); True when done."""
        self._flushed.clear()
        self._flush_requested = True
        return self._flushed.wait(timeout_s)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)
        for s in (self._raw4, self._raw6):
            if s is not None:
                s.close()
        self.q.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.tid = threading.get_native_id()
            self.scheduling = request(self.sched_mode)
            if self.sched_mode != "normal":
                log.info("%s: %s", self.name, self.scheduling.describe())
            self._started.set()
            self._loop()
        except BaseException as exc:  # never die silently
            if not self._stop:
                self.fatal = repr(exc)
                self.engine.stats.errors += 1
                self.engine.stats.last_error = self.fatal
                log.exception("%s: engine thread died", self.name)

    def _loop(self) -> None:
        q = self.q
        sock = q.sock
        fd = q.fileno()
        buf = bytearray(1 << 18)
        mv = memoryview(buf)
        recv_into = sock.recv_into
        heap = self.held.heap
        accept_ids: list[int] = []
        dontwait = socket.MSG_DONTWAIT
        spin_ns = int(self.busy_poll_s * 1e9)
        last_pkt = 0
        last_sleep = time.monotonic_ns()
        gso_for: Engine | None = None  # the engine the queue's GSO flag was set for
        rt = self.scheduling is not None and self.scheduling.policy == "fifo"
        coalesce_s = self.coalesce_us / 1e6 if rt else 0.0
        while not self._stop:
            eng = self.engine
            try:
                if self._flush_requested:
                    self._flush_requested = False
                    eng.flush_all()
                    self._send(eng, accept_ids)
                    self._flushed.set()
                if self.pending_slot.pending is not None:  # idle at the deadline: switch now
                    eng = self._switch_if_due(eng, time.monotonic_ns(), accept_ids)
                if eng is not gso_for:
                    gso_for = eng
                    want = self.gso_enabled and eng.config.gso_safe
                    if want != q.gso:
                        q.set_gso(want)  # packets read meanwhile land in q.pending, next
                if rt and self.scheduling is not None and self.scheduling.policy == "fifo":
                    now = time.monotonic_ns()
                    if now - last_sleep > RT_SLEEP_EVERY_NS:
                        time.sleep(RT_SLEEP_S)
                        last_sleep = now
                if q.pending:
                    for msg in q.pending:
                        mbuf = bytearray(msg)
                        self._handle(eng, mbuf, memoryview(mbuf), len(mbuf), accept_ids)
                    q.pending.clear()
                    self._send(eng, accept_ids)
                if heap:
                    eng.release(time.monotonic_ns())
                    if eng.out or eng.inject:
                        self._send(eng, accept_ids)
                    wake = eng.next_wakeup_ns()
                    if wake is not None:
                        wait = wake - time.monotonic_ns()
                        if wait <= 0:
                            # Due already: release it now.  Falling through to the
                            # blocking recv would hold it until the next packet came.
                            continue
                        r, _, _ = select.select([fd, self._wake_r], [], [], min(wait / 1e9, IDLE_WAKE_S,
                                                                                 self._until_pending_s()))
                        if fd not in r:
                            self._drain_wakeups(r)
                            continue
                if (spin_ns and time.monotonic_ns() - last_pkt < spin_ns) or self._pending_imminent():
                    # Busy-poll while traffic flows: waking a sleeping thread costs
                    # milliseconds now and then on a loaded/virtual CPU (see docs/engine.md).
                    try:
                        n = recv_into(buf, 0, dontwait)
                    except (BlockingIOError, InterruptedError):
                        continue
                else:
                    if self._armed or self.pending_slot.pending is not None:
                        self._armed_seen.set()
                        # Wake at the deadline even without a packet (a clear's held packets
                        # leave then), and when a switch is offered meanwhile; the socket's own
                        # timeout is IDLE_WAKE_S.
                        r, _, _ = select.select([fd, self._wake_r], [], [], min(IDLE_WAKE_S, self._until_pending_s()))
                        if fd not in r:
                            self._drain_wakeups(r)
                            continue
                    try:
                        n = recv_into(buf)
                    except (BlockingIOError, InterruptedError, TimeoutError):
                        continue
                previous_pkt, last_pkt = last_pkt, time.monotonic_ns()
                # Re-read after blocking: an apply() that happened meanwhile must act on
                # this packet already.
                eng = self.engine
                if self.pending_slot.pending is not None:
                    eng = self._switch_if_due(eng, last_pkt, accept_ids)
                self._handle(eng, buf, mv, n, accept_ids)
                drained = 0
                for _ in range(DRAIN_MAX):
                    try:
                        n = recv_into(buf, 0, dontwait)
                    except (BlockingIOError, InterruptedError):
                        break
                    if self.pending_slot.pending is not None:
                        eng = self._switch_if_due(eng, time.monotonic_ns(), accept_ids)
                    self._handle(eng, buf, mv, n, accept_ids)
                    drained += 1
                self._send(eng, accept_ids)
                if coalesce_s and not drained and last_pkt - previous_pkt < COALESCE_GAP_NS:
                    time.sleep(coalesce_s)  # one packet per wakeup at a high rate: let a batch build
            except OSError as exc:
                if self._stop or exc.errno == errno.EBADF:
                    break
                if exc.errno == errno.ENOBUFS:  # we fell behind; the kernel dropped packets
                    eng.stats.errors += 1
                    eng.stats.last_error = "ENOBUFS: netlink receive buffer overrun"
                    continue
                self._count_error(eng, exc)
            except Exception as exc:  # noqa: BLE001 - logged and counted; the loop must survive
                self._count_error(eng, exc)

    def _drain_wakeups(self, readable: list[int]) -> None:
        """Empty the wake pipe if select found it readable (the loop then looks at the offer)."""
        if self._wake_r in readable:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def _until_pending_s(self) -> float:
        """Seconds the worker may sleep: until PENDING_SPIN_NS before the pending switch is due
        (IDLE_WAKE_S without one)."""
        p = self.pending_slot.pending
        return IDLE_WAKE_S if p is None else p.seconds_until(time.monotonic_ns() + PENDING_SPIN_NS)

    def _pending_imminent(self) -> bool:
        """A switch is due within PENDING_SPIN_NS: poll instead of sleeping."""
        p = self.pending_slot.pending
        return p is not None and time.monotonic_ns() + PENDING_SPIN_NS >= p.at_ns

    def _switch_if_due(self, eng: Engine, now_ns: int, accept_ids: list[int]) -> Engine:
        """The engine for a packet read at ``now_ns``: the pending one once its deadline has
        come (swapped in here, ``now_ns`` recorded as the switch time), else ``eng``.  The old
        engine's verdicts go out first; a clear then releases the held packets."""
        slot = self.pending_slot
        with slot.lock:
            p = slot.take(now_ns)
            if p is None:
                return eng
            self._send(eng, accept_ids)
            new = p.engine
            self.engine = new
            if p.flush and self.held.heap:
                new.flush_all()
                self._send(new, accept_ids)
            p.switched_ns = now_ns
            p.done.set()
            return new

    def _count_error(self, eng: Engine, exc: BaseException) -> None:
        eng.stats.errors += 1
        eng.stats.last_error = repr(exc)
        log.exception("%s: engine error", self.name)
        time.sleep(0.001)  # a persistent error must not spin a CPU

    def _handle(self, eng: Engine, buf: bytearray, mv: memoryview, n: int, accept_ids: list[int]) -> None:
        """Process every netlink message in buf[:n]."""
        off = 0
        on_packet = eng.on_packet
        mono = time.monotonic_ns
        unpack_hdr = _MSG_HDR.unpack_from
        while off + 16 <= n:
            mlen, mtype = unpack_hdr(buf, off)
            if mlen < 16:
                break
            if mtype == NFQNL_MSG_PACKET:
                pid, poff, plen, cap, info = parse_packet(buf, off, mlen)
                if pid >= 0:
                    whole = not info & NFQA_SKB_NOT_WHOLE
                    if not whole:
                        eng.whole = False  # a GSO unit / partial checksum: never rewritten or copied
                    try:
                        if on_packet(pid, mv[poff : poff + plen], cap or plen, mono()):
                            accept_ids.append(pid)
                    except Exception as exc:  # noqa: BLE001 - logged and counted below
                        # The packet must still get a verdict or it stays queued forever.
                        eng.out.append((pid, 0, None))
                        eng.stats.dropped_error += 1
                        self._count_error(eng, exc)
                    if not whole:
                        eng.whole = True  # on_packet's exceptions are caught above
            elif mtype == NLMSG_ERROR:
                err = -_ERRNO.unpack_from(buf, off + 16)[0]
                if err:
                    eng.stats.errors += 1
                    eng.stats.last_error = f"kernel rejected a verdict: {errno.errorcode.get(err, err)}"
            off += (mlen + 3) & ~3

    def _send(self, eng: Engine, accept_ids: list[int]) -> None:
        """Send pending verdicts (one datagram per MAX_SEND_BYTES) and duplicate copies.

        Plain accepts (no new payload) of ids below every held packet's id go as one
        NFQNL_MSG_VERDICT_BATCH, after the individual verdicts (drops, new payloads) of the
        same datagram: the kernel applies the messages in order, so the batch finds only
        packets meant to be accepted unchanged.  The rest get one verdict each."""
        q = self.q
        batch = self.batch_verdicts
        msgs: list[bytes] = []
        if eng.out:
            vm = q.verdict_msg
            for pid, verdict, payload in eng.out:
                if batch and payload is None and verdict == NF_ACCEPT:
                    accept_ids.append(pid)  # a released held packet: batchable too
                else:
                    msgs.append(vm(pid, verdict, payload))
            eng.out.clear()
        if accept_ids:
            singles = accept_ids
            if batch:
                held_min = self.held.min_id()
                if held_min is None:
                    last, singles = max(accept_ids), []
                else:
                    below = [pid for pid in accept_ids if pid < held_min]
                    last = max(below) if below else -1
                    if below:
                        singles = [pid for pid in accept_ids if pid > held_min]
                if last >= 0:
                    msgs.append(q.batch_msg(last))
            if singles:
                prefix = q._verdict_prefix + _ACCEPT_BE
                msgs.extend(prefix + pid.to_bytes(4, "big") for pid in singles)
            accept_ids.clear()
        if msgs:
            data = b"".join(msgs)
            if len(data) <= MAX_SEND_BYTES:
                q.send(data)
            else:
                chunk: list[bytes] = []
                size = 0
                for m in msgs:
                    if size + len(m) > MAX_SEND_BYTES and chunk:
                        q.send(b"".join(chunk))
                        chunk, size = [], 0
                    chunk.append(m)
                    size += len(m)
                if chunk:
                    q.send(b"".join(chunk))
        if eng.inject:
            for payload in eng.inject:
                self._inject(eng, payload)
            eng.inject.clear()

    def _inject(self, eng: Engine, payload: bytes | bytearray) -> None:
        """Send a duplicate copy as-is through a raw socket (IP header included)."""
        if not payload:  # the copy of a GSO unit (Engine.whole): not one wire packet
            eng.stats.dropped_error += 1
            eng.stats.passed -= 1
            eng.stats.last_error = "duplicate of a GSO unit not sent (NFQA_CFG_F_GSO was on)"
            return
        try:
            if payload[0] >> 4 == 4:
                if self._raw4 is None:
                    self._raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._raw4.sendto(payload, (socket.inet_ntop(socket.AF_INET, bytes(payload[16:20])), 0))
            else:
                if self._raw6 is None:
                    # IPPROTO_RAW on an IPv6 raw socket implies a caller-built header.
                    self._raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._raw6.sendto(payload, (socket.inet_ntop(socket.AF_INET6, bytes(payload[24:40])), 0))
        except OSError as exc:
            eng.stats.dropped_error += 1
            eng.stats.passed -= 1
            eng.stats.last_error = f"duplicate injection failed: {exc}"
