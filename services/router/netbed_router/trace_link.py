"""A link whose rate follows a recorded trace (Mahimahi's format, ``netbed_core.trace``), for
the userspace engine, and the router's store of uploaded traces.

``TraceClock.departure_ns(ready_ns, length)``: when a packet that is ready to go at
``ready_ns`` (its arrival plus any netem delay) has left the link. Packets leave in order; each
delivery opportunity carries up to ``MTU_BYTES``, a packet longer than what is left of the
current one uses the next ones too, and leaves at the opportunity that carries its last byte
(Mahimahi's byte accounting). An opportunity nobody uses is lost, as on a real link. The
trace's time 0 is when the engine was made (the impairment applied), and it loops.

Standard library only.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence

from netbed_core.trace import MTU_BYTES, parse_trace

__all__ = ["STORE", "TraceClock", "TraceStore"]


class TraceClock:
    """Departure times on one trace (see the module docstring). Single-threaded, like the engine."""

    __slots__ = ("ops_ns", "period_ns", "start_ns", "cycle", "index", "left")

    def __init__(self, opportunities_ms: Sequence[int], start_ns: int | None = None) -> None:
        if not opportunities_ms or opportunities_ms[-1] <= 0:
            raise ValueError("trace: needs at least one timestamp and a last timestamp above 0 ms")
        self.ops_ns = [int(ms) * 1_000_000 for ms in opportunities_ms]
        self.period_ns = self.ops_ns[-1]
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.cycle = 0
        self.index = 0  # the current opportunity: ops_ns[index] of cycle `cycle`
        self.left = MTU_BYTES  # bytes it can still carry

    def _at(self) -> int:
        return self.start_ns + self.cycle * self.period_ns + self.ops_ns[self.index]

    def _next(self) -> None:
        self.index += 1
        if self.index == len(self.ops_ns):
            self.index, self.cycle = 0, self.cycle + 1
        self.left = MTU_BYTES

    def _skip_to(self, ready_ns: int) -> None:
        """Move to the first opportunity at or after ``ready_ns`` (those before it are lost)."""
        if self._at() >= ready_ns:
            return
        since = ready_ns - self.start_ns
        cycle, rest = divmod(since, self.period_ns)
        index = bisect.bisect_left(self.ops_ns, rest)
        if index == len(self.ops_ns):
            cycle, index = cycle + 1, 0
        self.cycle, self.index, self.left = cycle, index, MTU_BYTES

    def departure_ns(self, ready_ns: int, length: int) -> int:
        """When a packet of ``length`` bytes, ready at ``ready_ns``, has left (monotonic ns)."""
        self._skip_to(ready_ns)
        need = max(1, length)
        while need > self.left:
            need -= self.left
            self._next()
        self.left -= need
        return self._at()


class TraceStore:
    """Traces uploaded to the router, by name (``trace_put``)."""

    #: Most traces kept (a trace is at most netbed_core.trace.MAX_OPPORTUNITIES entries).
    MAX_TRACES = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, tuple[int, ...]] = {}

    def put(self, name: str, text: str) -> dict[str, object]:
        """Parse and keep ``text`` as trace ``name`` (replacing one of that name); TraceError
        (a ValueError) names the line of a bad timestamp."""
        trace = parse_trace(text, name, f"trace {name}")
        with self._lock:
            if name not in self._traces and len(self._traces) >= self.MAX_TRACES:
                raise ValueError(f"trace {name}: at most {self.MAX_TRACES} traces; replace one of "
                                 f"{', '.join(sorted(self._traces))}")
            self._traces[name] = trace.opportunities_ms
        return {"name": name, "opportunities": len(trace.opportunities_ms), "period_ms": trace.period_ms,
                "mean_rate_bits_per_s": round(trace.mean_rate_bits_per_s())}

    def get(self, name: str) -> tuple[int, ...]:
        with self._lock:
            found = self._traces.get(name)
        if found is None:
            raise ValueError(f"trace {name!r} has not been uploaded to the router: "
                             f"router.upload_trace({name!r}, PATH) first")
        return found

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._traces)


STORE = TraceStore()
