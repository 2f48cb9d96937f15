"""A netem-compatible impairment engine for one direction (one NFQUEUE queue).

The engine is pure: it is fed packets (id, bytes, length, arrival time in ns) and decides
per packet what netem's ``netem_enqueue`` / ``netem_dequeue`` would do (linux
``net/sched/sch_netem.c``, v6.x).  It never touches a socket: verdicts to issue now go
to ``Engine.out`` as ``(packet_id, verdict, payload_or_None)``; duplicate copies to put on
the wire now go to ``Engine.inject``; held packets wait in a shared ``HeldQueue`` that the
caller drains with ``Engine.release(now_ns)``.

Semantics follow netem (differences are listed in docs/engine.md):

* probabilities are u32 thresholds ``round(pct/100 * 0xffffffff)`` compared with 32-bit
  random numbers, as tc/netem do; correlation uses netem's ``get_crandom``;
* loss models: ``random`` (``q->loss >= get_crandom``), ``state`` (``loss_4state``),
  ``gemodel`` (``loss_gilb_ell``), copied transition by transition;
* duplicate: a copy goes through the loss/corrupt/reorder/delay decisions again (netem
  re-enqueues the clone at the root qdisc) but is never duplicated itself;
* corrupt: one random bit of one random byte after the IP header is flipped (netem flips
  any byte of the frame; we keep the IP header intact so a corrupted packet can never be
  routed somewhere else);
* delay/jitter: ``tabledist``; uniform exactly as netem (``rnd % 2σ + µ - σ``), the table
  distributions (normal, pareto, paretonormal) evaluated analytically from iproute2's
  table generators, including their ±4σ clamp (NETEM_DIST_SCALE, s16 tables);
* reorder/gap: with gap g and reorder P, after every g-1 delayed packets the next one is
  sent immediately with probability P (``q->counter < q->gap - 1``);
* rate: serialization per packet (``packet_time_ns``) chained after the last held packet;
  packet length = IP length + 14 bytes of Ethernet header, like a netem qdisc on an
  Ethernet device sees it;
* slot: dequeue only at slot openings, at most max_packets/max_bytes per slot;
* limit: a packet that would make more than ``limit_packets`` held packets is dropped;
* ecn: a loss on an ECT packet becomes a CE mark instead of a drop;
* partition: every packet is dropped (no netem equivalent; same as 100% loss without
  touching the random stream).

Reproducibility guarantee: all randomness comes from one ``random.Random`` seeded with
``stream_seed(seed, direction index)`` (``randomness.py``).  The
per-packet decisions (duplicate, loss, corrupt position, reorder, delay value) are a
function of the seed and the sequence of packets in arrival order (their lengths, ECN
bits); every packet consumes the same draws whatever happens to it later, so a
timing-dependent drop (limit) does not shift the decisions of later packets.  What depends
on arrival *times* is not reproducible: rate serialization (``time_to_send`` chains from the
last held packet), limit drops (how many packets are held), and slot openings (drawn from a
second stream seeded from the first, so they do not disturb the per-packet stream).
"""

from __future__ import annotations

import heapq
import os
import random
from collections import deque
from typing import Any

from netbed_core.verdicts import NF_ACCEPT, NF_DROP

from .counters import EngineCounters
from .engine_config import EngineConfig
from .packets import ecn_set_ce, ip_header_len
from .randomness import CRandom, stream_seed, tabledist
from .trace_link import TraceClock

__all__ = ["L2_HEADER_BYTES", "Engine", "EngineConfig", "HeldQueue"]

#: Link-layer header a netem qdisc on an Ethernet device counts in the packet length.
L2_HEADER_BYTES = 14


# --------------------------------------------------------------------------------------
# Held packets
# --------------------------------------------------------------------------------------
class HeldQueue:
    """Packets waiting for their time to send: a heap on (time_to_send_ns, arrival seq).

    Entries are ``[tts_ns, seq, packet_id, payload, length]``; packet_id -1 is a duplicate
    copy (payload = the bytes to inject).  Equal times leave in arrival order, like netem's
    tfifo.  Shared across engine replacements so a runtime change keeps held packets.

    ``min_id()`` is the smallest packet id still held: the worker may accept every packet
    below it with one NFQNL_MSG_VERDICT_BATCH.  Packet ids grow with arrival, so the held
    ids in arrival order (``_ids``) with the released ones skipped lazily (``_gone``) give it
    in amortised O(1).
    """

    __slots__ = ("heap", "seq", "last_tts", "_ids", "_gone")

    def __init__(self) -> None:
        self.heap: list[list[Any]] = []
        self.seq = 0
        # Largest time_to_send among held packets (the tail of netem's tfifo), or None.
        self.last_tts: int | None = None
        self._ids: deque[int] = deque()
        self._gone: set[int] = set()

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, tts: int, packet_id: int, payload: bytes | bytearray | None, length: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, [tts, self.seq, packet_id, payload, length])
        if self.last_tts is None or tts > self.last_tts:
            self.last_tts = tts
        if packet_id >= 0:
            self._ids.append(packet_id)

    def pop(self) -> list[Any]:
        item = heapq.heappop(self.heap)
        if not self.heap:
            self.last_tts = None
            self._ids.clear()
            self._gone.clear()
        elif item[2] >= 0:
            ids, gone = self._ids, self._gone
            gone.add(item[2])
            while ids and ids[0] in gone:  # here, not in min_id: both stay as small as the heap
                gone.discard(ids.popleft())
        return item

    def min_id(self) -> int | None:
        """The smallest packet id held (duplicate copies aside), or None."""
        return self._ids[0] if self._ids else None


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------
class Engine:
    """netem's decisions for one direction.  Single-threaded; see module docstring."""

    def __init__(
        self,
        config: EngineConfig,
        held: HeldQueue | None = None,
        stats: EngineCounters | None = None,
        *,
        stream: int = 0,
    ) -> None:
        """stream: the direction index (0 to-server, 1 to-client); each direction draws its
        own random stream from the seed (``randomness.stream_seed``)."""
        self.config = c = config
        self.seed: int = c.seed if c.seed is not None else int.from_bytes(os.urandom(8), "big")
        self.stream = stream
        self.rng = rng = random.Random(stream_seed(self.seed, stream))
        self.held = held if held is not None else HeldQueue()
        self.stats = stats if stats is not None else EngineCounters()
        self.stats.seed = self.seed
        self.noop = c.is_noop
        self.out: list[tuple[int, int, bytes | bytearray | None]] = []
        self.inject: list[bytes | bytearray] = []
        # Fixed draw order at start so the per-packet stream depends on the seed only.
        self.delay_cor = CRandom(c.delay_corr, rng)
        self.loss_cor = CRandom(c.loss_corr, rng)
        self.dup_cor = CRandom(c.dup_corr, rng)
        self.reorder_cor = CRandom(c.reorder_corr, rng)
        self.corrupt_cor = CRandom(c.corrupt_corr, rng)
        # Slot openings depend on time, so they come from their own stream (see docstring).
        self.slot_rng = random.Random(rng.getrandbits(64))
        self.clg_state = 1  # TX_IN_GAP_PERIOD / GOOD_STATE
        self.counter = 0  # netem q->counter (reorder gap)
        self.slot_on = c.slot_enabled
        # Next slot opening (monotonic ns); None until the first release(), where the
        # first slot opens at once (netem: get_slot sets slot_next = now).
        self.slot_next: int | None = None
        self.slot_packets_left = c.slot_max_packets or 0x7FFFFFFF
        self.slot_bytes_left = c.slot_max_bytes or 0x7FFFFFFF
        # trace NAME: departures from a recorded link trace instead of rate (trace_link.py).
        self._trace = TraceClock(c.trace_ms) if c.trace_ms else None
        self._delay_on = bool(c.latency_ns or c.jitter_ns or c.rate_bytes_per_s or c.trace_ms)
        self._reorder_or_delay_on = bool(c.gap or self._delay_on)
        self._rate = c.rate_bytes_per_s
        # False while the packet being decided is not one wire packet with its final bytes (a
        # GSO unit, or a partial checksum: NFQA_SKB_INFO): it is then never rewritten or copied,
        # though every draw is still made (docs/engine.md, "GSO units").  Set by the worker.
        self.whole = True

    # -- loss models ----------------------------------------------------------------------
    def _loss_4state(self) -> bool:
        a1, a2, a3, a4, a5 = self.config.clg
        rnd = self.rng.getrandbits(32)
        s = self.clg_state
        if s == 1:  # TX_IN_GAP_PERIOD
            if rnd < a4:
                self.clg_state = 4
                return True
            if rnd < a1 + a4:
                self.clg_state = 3
                return True
            return False
        if s == 2:  # TX_IN_BURST_PERIOD
            if rnd < a5:
                self.clg_state = 3
                return True
            return False
        if s == 3:  # LOST_IN_BURST_PERIOD
            if rnd < a3:
                self.clg_state = 2
            elif rnd < a2 + a3:
                self.clg_state = 1
            else:
                return True
            return False
        self.clg_state = 1  # LOST_IN_GAP_PERIOD -> TX_IN_GAP_PERIOD
        return False

    def _loss_gilb_ell(self) -> bool:
        a1, a2, a3, a4, _ = self.config.clg
        bits = self.rng.getrandbits
        if self.clg_state == 1:  # GOOD
            if bits(32) < a1:
                self.clg_state = 2
            return bits(32) < a4
        # BAD
        if bits(32) < a2:
            self.clg_state = 1
        return bits(32) > a3

    def loss_event(self) -> bool:
        m = self.config.loss_model
        if m == "random":
            return self.config.loss >= self.loss_cor.next()
        if m == "state":
            return self._loss_4state()
        if m == "gemodel":
            return self._loss_gilb_ell()
        return False

    # -- helpers --------------------------------------------------------------------------
    def packet_time_ns(self, length: int) -> int:
        """netem ``packet_time_ns``: serialization time of an IP packet of ``length`` bytes."""
        c = self.config
        n = length + L2_HEADER_BYTES + c.packet_overhead
        if c.cell_size:
            cells = -(-n // c.cell_size) if n > 0 else 0
            n = cells * (c.cell_size + c.cell_overhead)
        return max(0, n) * 1_000_000_000 // self._rate

    def _corrupt(self, data: bytes | bytearray | memoryview, length: int) -> bytearray | None:
        """Flip one random bit after the IP header; None if there is no such byte."""
        hdr = ip_header_len(data)
        n = len(data)
        if n <= hdr:
            return None
        pos = hdr + self.rng.randrange(n - hdr)
        bit = self.rng.randrange(8)
        if n != length or not self.whole:
            # A truncated copy cannot be mangled (the kernel would truncate the packet), nor
            # can a GSO unit (the kernel would segment it with a wrong checksum).
            return None
        buf = bytearray(data)
        buf[pos] ^= 1 << bit
        return buf

    # -- enqueue --------------------------------------------------------------------------
    def on_packet(self, packet_id: int, data: bytes | bytearray | memoryview, length: int, now: int) -> bool:
        """Decide for one packet that arrived at ``now`` (monotonic ns).

        ``data`` is the (possibly truncated) IP packet, only valid during this call;
        ``length`` its real length in bytes.  Returns True if the caller should accept it
        right away unchanged; otherwise the engine has appended a verdict to ``out`` or
        holds the packet.
        """
        st = self.stats
        st.seen += 1
        st.bytes_in += length
        if self.noop:
            st.passed += 1
            st.bytes_out += length
            return True
        if self.config.partition:
            st.dropped_partition += 1
            self.out.append((packet_id, NF_DROP, None))
            return False
        return self._enqueue(packet_id, data, length, now, False)

    def _enqueue(
        self, packet_id: int, data: bytes | bytearray | memoryview, length: int, now: int, is_copy: bool
    ) -> bool:
        """netem_enqueue, one section's decision per step, in netem's order: duplicate, loss
        (or an ECN mark), corrupt, reorder or delay, limit, rate, hold.  The order of the
        random draws is part of the reproducibility guarantee (module docstring): a step
        draws only when its section is active, exactly as before it was split up."""
        c = self.config
        st = self.stats
        count = 1
        if c.duplicate and not is_copy and c.duplicate >= self.dup_cor.next():
            count = 2
        mangled: bytearray | None = None
        if c.loss_model is not None and self.loss_event():
            mangled = self._ecn_mark(data, length)
            if mangled is None:
                count -= 1
        if count == 0:
            st.dropped_loss += 1
            if not is_copy:
                self.out.append((packet_id, NF_DROP, None))
            return False
        copy: bytes | None = None
        if count == 2:
            # netem clones before corrupting: the copy has the CE mark but not the bit flip.
            # A GSO unit's copy is empty: it still makes its draws, and the worker does not send it.
            copy = (bytes(mangled) if mangled is not None else bytes(data)) if self.whole else b""
        if c.corrupt and c.corrupt >= self.corrupt_cor.next():
            mangled = self._apply_corrupt(data, mangled, length)
        if self._reorder_or_delay_on:
            delay = self._reorder_or_delay()
        else:
            self.counter += 1  # as _reorder_or_delay does: the counter only matters with a gap
            delay = 0
        held = self.held
        if len(held.heap) >= c.limit:
            st.dropped_limit += 1
            if not is_copy:
                self.out.append((packet_id, NF_DROP, None))
            return False
        if copy is not None:
            st.duplicated += 1
            self._enqueue(-1, copy, length, now, True)
        payload: bytes | bytearray | None = mangled if not is_copy else (mangled or bytes(data))
        if delay is None:
            st.reordered += 1
            return self._send_now(packet_id, payload, length, is_copy)
        if self._trace is not None:
            tts = self._trace.departure_ns(now + max(0, delay), length)
        else:
            tts = self._rate_time_to_send(now, delay, length) if self._rate else now + delay
        if tts <= now and not self.slot_on:
            return self._send_now(packet_id, payload, length, is_copy)
        st.delayed += 1
        held.push(tts, packet_id, payload, length)
        if len(held.heap) > st.queue_depth_max:
            st.queue_depth_max = len(held.heap)
        st.queue_depth = len(held.heap)
        return False

    # -- enqueue steps, one per section ---------------------------------------------------
    def _ecn_mark(self, data: bytes | bytearray | memoryview, length: int) -> bytearray | None:
        """ecn: the CE-marked packet that replaces a loss, or None when the packet is lost
        (ecn off, a truncated copy, or a flow that is not ECN-capable)."""
        if not self.config.ecn or len(data) != length or not self.whole:
            return None
        marked = ecn_set_ce(data)
        if marked is not None:
            self.stats.ecn_marked += 1
        return marked

    def _apply_corrupt(
        self, data: bytes | bytearray | memoryview, mangled: bytearray | None, length: int
    ) -> bytearray | None:
        """corrupt (its event already drawn): the packet with one bit flipped, or ``mangled``
        unchanged when nothing could be flipped."""
        flipped = self._corrupt(mangled if mangled is not None else data, length)
        if flipped is None:
            return mangled
        self.stats.corrupted += 1
        return flipped

    def _reorder_or_delay(self) -> int | None:
        """reorder/gap, then delay: None to send the packet at once (reordered), else its
        delay in ns (may be negative with jitter above the delay: sent at once, not reordered).

        Drawn before the limit check (unlike netem) so that every packet consumes the same
        random numbers whatever the queue length: limit drops depend on timing and must not
        shift later decisions."""
        c = self.config
        if c.gap and (self.counter >= c.gap - 1) and c.reorder >= self.reorder_cor.next():
            self.counter = 0
            return None
        self.counter += 1
        if self._delay_on:
            return tabledist(c.latency_ns, c.jitter_ns, self.delay_cor, self.rng, c.dist)
        return 0

    def _rate_time_to_send(self, now: int, delay: int, length: int) -> int:
        """rate: when a packet delayed by ``delay`` ns leaves, serialised after the last held one."""
        base = now
        last = self.held.last_tts
        if last is not None:
            # netem: the last held packet is the reference point; the part of the
            # delay already spent waiting behind it is a "time bonus".
            delay -= last - now
            if delay < 0:
                delay = 0
            base = last
        return base + delay + self.packet_time_ns(length)

    def _send_now(
        self, packet_id: int, payload: bytes | bytearray | None, length: int, is_copy: bool
    ) -> bool:
        st = self.stats
        st.passed += 1
        st.bytes_out += length
        if is_copy:
            assert payload is not None
            self.inject.append(payload)
            return False
        if payload is not None:
            self.out.append((packet_id, NF_ACCEPT, payload))
            return False
        return True

    # -- dequeue --------------------------------------------------------------------------
    def _get_slot_next(self, now: int) -> None:
        c = self.config
        if not c.slot_with_dist:
            span = c.slot_max_ns - c.slot_min_ns
            nxt = c.slot_min_ns + ((span * self.slot_rng.getrandbits(32)) >> 32)
        else:
            nxt = tabledist(c.slot_dist_delay_ns, c.slot_dist_jitter_ns, None, self.slot_rng, c.slot_dist)
        self.slot_next = now + nxt
        self.slot_packets_left = c.slot_max_packets or 0x7FFFFFFF
        self.slot_bytes_left = c.slot_max_bytes or 0x7FFFFFFF

    def release(self, now: int) -> None:
        """Send every held packet that is due at ``now`` (ns): verdicts to ``out``, copies
        to ``inject``."""
        held = self.held
        heap = held.heap
        st = self.stats
        if not self.slot_on:
            while heap and heap[0][0] <= now:
                _, _, packet_id, payload, length = held.pop()
                st.passed += 1
                st.bytes_out += length
                if packet_id < 0:
                    self.inject.append(payload)
                else:
                    self.out.append((packet_id, NF_ACCEPT, payload))
            st.queue_depth = len(heap)
            return
        if self.slot_next is None:
            self.slot_next = now
        while heap:
            tts = heap[0][0]
            if self.slot_next < tts:
                self._get_slot_next(now)
            if tts > now or self.slot_next > now:
                break
            _, _, packet_id, payload, length = held.pop()
            self.slot_packets_left -= 1
            self.slot_bytes_left -= length + L2_HEADER_BYTES
            if self.slot_packets_left <= 0 or self.slot_bytes_left <= 0:
                self._get_slot_next(now)
            st.passed += 1
            st.bytes_out += length
            if packet_id < 0:
                self.inject.append(payload)
            else:
                self.out.append((packet_id, NF_ACCEPT, payload))
        st.queue_depth = len(heap)

    def next_wakeup_ns(self) -> int | None:
        """When ``release`` should next run (monotonic ns), or None if nothing is held."""
        heap = self.held.heap
        if not heap:
            return None
        tts: int = heap[0][0]
        if self.slot_on and self.slot_next is not None:
            return max(tts, self.slot_next)
        return tts

    def flush_all(self) -> None:
        """Release every held packet now, regardless of time (used when clearing)."""
        st = self.stats
        while self.held.heap:
            _, _, packet_id, payload, length = self.held.pop()
            st.passed += 1
            st.bytes_out += length
            if packet_id < 0:
                self.inject.append(payload)
            else:
                self.out.append((packet_id, NF_ACCEPT, payload))
        st.queue_depth = 0
