"""The userspace engine's per-packet decision log: what it did to each packet, and why.

Switched on per capture (``capture_start`` with ``decisions``), it records for every packet
the engine sees: its key (``netbed_core.packet_key.ip_key``: IPv4 ID or IPv6 flow label
and a CRC of the first payload bytes, the same key a reader computes from the capture's
client-side interface), its length, and its fate:

* ``drop`` with ``reason`` ``loss``, ``limit`` or ``partition``;
* ``pass`` (sent at once) or ``delay`` with ``delay_us`` (when it is due, from arrival);
* ``corrupt_byte``: the offset in the IP packet of the byte whose bit was flipped;
* ``ecn_ce``: a loss turned into a CE mark; ``reordered``: sent at once by reorder/gap;
* ``duplicate``: the copy's own fate (``pass``, ``delay`` with ``delay_us``, or ``drop``).

How: ``attach`` switches a running ``Engine`` to ``LoggedEngine``, whose ``on_packet``
calls the engine's own and then reads what it left behind (counters, verdicts, copies,
held packets).  The engine keeps its state (random stream, counters, held packets), so
switching the log on or off mid-test changes no decision.  With the log off the engine is
a plain ``Engine``: zero cost.

Bounded: the newest ``max_entries`` decisions are kept in memory (a deque); ``omitted``
counts the older ones that fell out.  Nothing is written until ``write``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

from netbed_core.packet_key import ip_key
from netbed_core.verdicts import NF_DROP

from .engine import Engine

#: Decisions kept per direction by default, and at most.
DEFAULT_MAX_ENTRIES = 100_000
MAX_MAX_ENTRIES = 1_000_000

# One entry, as stored (a tuple is the cheapest thing to append):
# (t_ns, key, length, fate, reason, delay_ns, corrupt_byte, ecn, reordered, dup_fate, dup_delay_ns)


class DecisionLog:
    """The newest decisions of one direction's engine."""

    def __init__(self, direction: str, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if not 1 <= max_entries <= MAX_MAX_ENTRIES:
            raise ValueError(f"decision log: max_entries must be 1..{MAX_MAX_ENTRIES}, got {max_entries}")
        self.direction = direction
        self.max_entries = max_entries
        self.entries: deque[tuple[Any, ...]] = deque(maxlen=max_entries)
        self.recorded = 0
        # Engine times are CLOCK_MONOTONIC; captures are wall-clock: the offset joins them.
        self.mono_to_wall_ns = time.time_ns() - time.monotonic_ns()

    def write(self, path: Path, since_ns: int = 0) -> dict[str, Any]:
        """Write the entries from ``since_ns`` (engine time, CLOCK_MONOTONIC ns) on as JSON
        lines: a header line, then one per packet, oldest first.  Returns the header.  The
        log keeps running (other captures may still want it)."""
        # One C-level copy, atomic under the GIL: the engine thread may append meanwhile.
        entries = [e for e in list(self.entries) if e[0] >= since_ns]
        header = {"direction": self.direction, "entries": len(entries),
                  "omitted": max(0, self.recorded - len(entries)), "max_entries": self.max_entries,
                  "mono_to_wall_ns": self.mono_to_wall_ns}
        with path.open("w") as f:
            f.write(json.dumps(header) + "\n")
            for e in entries:
                f.write(json.dumps(entry_dict(self.direction, e)) + "\n")
        return header


def entry_dict(direction: str, e: tuple[Any, ...]) -> dict[str, Any]:
    """One stored entry as the JSON object the log file holds (absent fields omitted)."""
    t_ns, key, length, fate, reason, delay_ns, corrupt_byte, ecn, reordered, dup_fate, dup_delay_ns = e
    d: dict[str, Any] = {"t_ns": t_ns, "dir": direction, "key": key, "len": length, "fate": fate}
    if reason is not None:
        d["reason"] = reason
    if delay_ns is not None:
        d["delay_us"] = round(delay_ns / 1000, 1)
    if corrupt_byte is not None:
        d["corrupt_byte"] = corrupt_byte
    if ecn:
        d["ecn_ce"] = True
    if reordered:
        d["reordered"] = True
    if dup_fate is not None:
        d["duplicate"] = {"fate": dup_fate, **({"delay_us": round(dup_delay_ns / 1000, 1)}
                                               if dup_delay_ns is not None else {})}
    return d


class LoggedEngine(Engine):
    """An ``Engine`` that records each decision in ``decision_log`` (see module docstring)."""

    decision_log: DecisionLog

    def on_packet(self, packet_id: int, data: bytes | bytearray | memoryview, length: int, now: int) -> bool:
        st = self.stats
        before = (st.dropped_loss, st.dropped_limit, st.dropped_partition, st.duplicated, st.ecn_marked,
                  st.reordered)
        n_out, n_inject = len(self.out), len(self.inject)
        seq = self.held.seq
        key = ip_key(data)
        accepted = super().on_packet(packet_id, data, length, now)
        fate, reason, delay, corrupt_byte, dup_fate, dup_delay = "pass", None, None, None, None, None
        modified: bytes | bytearray | None = None
        for pid, verdict, payload in self.out[n_out:]:
            if pid == packet_id:
                if verdict == NF_DROP:
                    fate = "drop"
                modified = payload
        if not accepted and fate == "pass" and modified is None:
            # Neither accepted nor a verdict: held (or dropped without a verdict: not ours).
            fate = "delay"
        for entry in _new_held(self.held.heap, seq):
            tts, _, pid, payload, _ = entry
            if pid == packet_id:
                delay, modified = tts - now, payload
            else:
                dup_fate, dup_delay = "delay", tts - now
        if fate == "drop":
            if st.dropped_partition > before[2]:
                reason = "partition"
            elif st.dropped_limit > before[1]:
                reason = "limit"
            else:
                reason = "loss"
        if st.duplicated > before[3] and dup_fate is None:
            dup_fate = "pass" if len(self.inject) > n_inject else "drop"
        if modified is not None and len(modified) == len(data):
            corrupt_byte = _flipped_byte(data, modified)
        self.decision_log.recorded += 1
        self.decision_log.entries.append((now, key, length, fate, reason, delay, corrupt_byte,
                                          st.ecn_marked > before[4], st.reordered > before[5], dup_fate,
                                          dup_delay))
        return accepted


def _new_held(heap: list[list[Any]], old_seq: int) -> list[list[Any]]:
    """Held entries pushed after ``old_seq``.  A push only moves items along the path from
    the last leaf to the root, so the (at most two) entries one packet adds lie on the
    ancestor paths of the last two indices: O(log n), not a scan of the heap."""
    found: list[list[Any]] = []
    seen: set[int] = set()
    for i in (len(heap) - 1, len(heap) - 2):
        while i >= 0 and i not in seen:
            seen.add(i)
            if heap[i][1] > old_seq:
                found.append(heap[i])
            i = (i - 1) // 2
    return found


def _flipped_byte(before: bytes | bytearray | memoryview, after: bytes | bytearray) -> int | None:
    """Offset of the first byte after the IP header that differs (the corrupted one), or
    None.  The header itself changes with an ECN mark, so it is skipped."""
    hdr = (before[0] & 0x0F) * 4 if before[0] >> 4 == 4 else 40
    a = int.from_bytes(bytes(before[hdr:]), "big")
    b = int.from_bytes(bytes(after[hdr:]), "big")
    x = a ^ b
    if not x:
        return None
    tail = len(before) - hdr
    return hdr + tail - 1 - (x.bit_length() - 1) // 8


def attach(engine: Engine, log: DecisionLog) -> None:
    """Log ``engine``'s decisions from its next packet on (its state is kept)."""
    engine.decision_log = log  # type: ignore[attr-defined]
    if type(engine) is Engine:
        engine.__class__ = LoggedEngine


def detach(engine: Engine) -> None:
    """Stop logging: ``engine`` is a plain ``Engine`` again (its state is kept)."""
    if type(engine) is LoggedEngine:
        engine.__class__ = Engine  # type: ignore[assignment]
