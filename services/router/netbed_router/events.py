"""The router's impairment timeline: every impair, clear and reset (and scenario step), in order.

Each change of one direction is one :class:`Event`.  The log is bounded: it keeps the newest
:data:`MAX_EVENTS`; older ones are dropped and counted (``dropped``), so a reader asking for
events since a sequence number that fell out learns that the answer is incomplete.

Times: ``monotonic_s`` is the router's ``time.monotonic()`` (seconds; for intervals between
events), ``wall_s`` its ``time.time()`` (seconds since the epoch; all containers share the host
kernel's clock, so it lines up with the harness's and the sequence workloads' timestamps).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

#: Events kept (the newest).  One event is a few hundred bytes, so the log stays under ~2 MB;
#: a test suite resets the router after every test (two events), so it spans ~2000 tests.
MAX_EVENTS = 4096

#: What happened to the direction: an impairment was set, or it returned to pristine forwarding.
KINDS = ("impair", "clear")


@dataclass(frozen=True)
class Event:
    """One change of one direction.

    seq: 1, 2, ... in order of recording, never reused.
    kind: "impair" or "clear".
    origin: which request caused it ("impair", "clear", "reset", "scenario:NAME", ...).
    spec: the impairment's wire dict (docs/netem.md), None for a clear; netem: its netem text.
    match: the `--match` text ("udp:5000"), or None for every packet.
    seed: the spec's seed, else the seed the backend drew for it; None when neither exists.
    """

    seq: int
    monotonic_s: float
    wall_s: float
    kind: str
    direction: str
    origin: str
    spec: dict[str, Any] | None = None
    netem: str = ""
    description: str = ""
    match: str | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventLog:
    """A thread-safe, bounded, append-only log of :class:`Event` (see the module docstring)."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=max_events)
        self._latest: dict[str, Event] = {}
        self._next_seq = 1
        self.max_events = max_events
        #: Tells this log from the one before a restart of the router agent (seqs start again at 1).
        self.log_id = uuid.uuid4().hex[:12]

    def record(self, kind: str, direction: str, origin: str, *, spec: dict[str, Any] | None = None,
               netem: str = "", description: str = "", match: str | None = None,
               seed: int | None = None) -> Event:
        """Append one event and return it."""
        if kind not in KINDS:
            raise ValueError(f"event kind {kind!r}: expected one of {', '.join(KINDS)}")
        with self._lock:
            event = Event(self._next_seq, time.monotonic(), time.time(), kind, direction, origin,
                          spec, netem, description, match, seed)
            self._next_seq += 1
            self._events.append(event)
            self._latest[direction] = event
            return event

    @property
    def next_seq(self) -> int:
        """The seq the next event will get."""
        with self._lock:
            return self._next_seq

    def since(self, seq: int | None = None) -> dict[str, Any]:
        """The wire form: events with a seq above `seq` (all kept ones for None), oldest first.

        ``latest`` holds, per direction, its newest event ever recorded (kept even when it fell
        out of the log), so "what is active, since when" is always answerable; ``dropped`` counts
        events that fell out of the bound; ``complete`` is false when some asked for are gone."""
        with self._lock:
            events = [e for e in self._events if seq is None or e.seq > seq]
            oldest = self._events[0].seq if self._events else self._next_seq
            dropped = oldest - 1
            complete = (seq is None and dropped == 0) or (seq is not None and seq >= oldest - 1)
            return {
                "events": [e.to_dict() for e in events],
                "latest": {d: e.to_dict() for d, e in sorted(self._latest.items())},
                "next_seq": self._next_seq,
                "dropped": dropped,
                "complete": complete,
                "max_events": self.max_events,
                "log_id": self.log_id,
            }
