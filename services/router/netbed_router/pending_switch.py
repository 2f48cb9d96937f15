"""An engine handed to a queue worker ahead of time, to take over at a deadline.

A scenario step on the userspace backend is sent to the engine process before it is due
(``scenario.py``, ``LEAD_NS``), with its deadline on CLOCK_MONOTONIC (one clock for every
process of the container). The worker (``worker.py``) then switches by itself: the first
packet it reads at or after the deadline is handled by the new engine, and an idle worker
wakes at the deadline to switch (and, for a clear, to release the held packets, as a clear
does today). The time of the switch goes back to the router, which records it as the step's
``effective`` time: what the engine did, not when a request returned.

Standard library only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .engine import Engine


@dataclass
class PendingSwitch:
    """The engine to swap in at ``at_ns`` (``time.monotonic_ns``), and what happened to it."""

    engine: Engine
    at_ns: int
    flush: bool
    """Release the held packets at the switch (a clear)."""
    switched_ns: int | None = None
    """When the worker switched (monotonic ns): the first packet read at or after ``at_ns``,
    or the worker's wakeup at the deadline when idle."""
    cancelled: bool = False
    """Replaced before its deadline (an immediate setting or a newer pending one)."""
    done: threading.Event = field(default_factory=threading.Event)

    def due(self, now_ns: int) -> bool:
        return now_ns >= self.at_ns

    def seconds_until(self, now_ns: int) -> float:
        """How long the worker may sleep before it must switch, s (0 when due)."""
        return max(0.0, (self.at_ns - now_ns) / 1e9)


class PendingSlot:
    """The worker's one pending switch, shared by the control thread (``offer``, ``cancel``,
    ``wait``) and the worker thread (``take``). The lock makes a switch and an immediate
    ``set_engine`` exclusive, so a cancelled pending engine never replaces a newer one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: PendingSwitch | None = None
        self.last: PendingSwitch | None = None

    def offer(self, switch: PendingSwitch) -> None:
        """Make ``switch`` the pending one (a pending one not yet due is cancelled)."""
        with self.lock:
            self._cancel_locked()
            self.pending = self.last = switch

    def cancel(self) -> None:
        with self.lock:
            self._cancel_locked()

    def _cancel_locked(self) -> None:
        if self.pending is not None:
            self.pending.cancelled = True
            self.pending.done.set()
            self.pending = None

    def take(self, now_ns: int) -> PendingSwitch | None:
        """The pending switch if it is due at ``now_ns`` (it is then no longer pending; the
        caller must swap it in while holding ``lock``), else None."""
        p = self.pending
        if p is None or not p.due(now_ns):
            return None
        self.pending = None
        return p

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the last offered switch; its ``switched_ns``, or None (cancelled, timed out,
        or nothing was offered)."""
        p = self.last
        if p is None or not p.done.wait(timeout_s) or p.cancelled:
            return None
        return p.switched_ns


__all__ = ["PendingSlot", "PendingSwitch"]
