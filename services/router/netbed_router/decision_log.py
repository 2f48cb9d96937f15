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

from netbed_core.packet_key import HASHED_BYTES, ip_key
from netbed_core.verdicts import NF_DROP

from .engine import Engine

#: Decisions kept per direction by default, and at most.
DEFAULT_MAX_ENTRIES = 100_000
MAX_MAX_ENTRIES = 1_000_000

#: Bytes of each packet the log keeps to compute its key when written (IPv4 header with
#: options, 60, or IPv6's, 40, plus the hashed payload bytes).
KEY_BYTES = 60 + HASHED_BYTES

# One entry, as stored (a tuple is the cheapest thing to append):
# (t_ns, first KEY_BYTES bytes, length, fate, reason, delay_ns, corrupt_byte, ecn, reordered, dup_fate, dup_delay_ns)


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
    t_ns, head, length, fate, reason, delay_ns, corrupt_byte, ecn, reordered, dup_fate, dup_delay_ns = e
    d: dict[str, Any] = {"t_ns": t_ns, "dir": direction, "key": ip_key(head), "len": length, "fate": fate}
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
        # Kept cheap: the key is computed when the log is written, from the packet's first
        # bytes copied here; the engine's leftovers are read only where they changed.
        st = self.stats
        loss, limit, dup, ecn, reordered = st.dropped_loss, st.dropped_limit, st.duplicated, st.ecn_marked, st.reordered
        out = self.out
        n_out, n_inject = len(out), len(self.inject)
        held = self.held
        seq = held.seq
        head = bytes(data[:KEY_BYTES])
        accepted = self.__engine_on_packet(packet_id, data, length, now)
        fate, reason, delay, corrupt_byte, dup_fate, dup_delay = "pass", None, None, None, None, None
        modified: bytes | bytearray | None = None
        for i in range(n_out, len(out)):
            pid, verdict, payload = out[i]
            if pid == packet_id:
                if verdict == NF_DROP:
                    fate = "drop"
                    reason = "loss" if st.dropped_loss > loss else "limit" if st.dropped_limit > limit \
                        else "partition"
                modified = payload
        if held.seq != seq:
            for entry in _new_held(held.heap, seq):
                if entry[2] == packet_id:
                    fate, delay, modified = "delay", entry[0] - now, entry[3]
                else:
                    dup_fate, dup_delay = "delay", entry[0] - now
        if dup_fate is None and st.duplicated > dup:
            dup_fate = "pass" if len(self.inject) > n_inject else "drop"
        if modified is not None and len(modified) == len(data):
            corrupt_byte = _flipped_byte(data, modified)
        log = self.decision_log
        log.recorded += 1
        log.entries.append((now, head, length, fate, reason, delay, corrupt_byte, st.ecn_marked > ecn,
                            st.reordered > reordered, dup_fate, dup_delay))
        return accepted

    __engine_on_packet = Engine.on_packet


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
