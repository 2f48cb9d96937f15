"""Link traces in Mahimahi's format: the delivery opportunities of a link.

Each line is a millisecond timestamp (a whole number, from the trace's start) at which the link
can deliver one MTU-sized packet (``MTU_BYTES``); the same timestamp on several lines means
several packets in that millisecond. Timestamps never decrease, and the trace loops: after the
last timestamp it starts again (its period is the last timestamp). A user's recorded Mahimahi
trace works unchanged.

Standard library only (copied into the router image).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

#: Bytes one delivery opportunity carries (Mahimahi: one MTU-sized packet).
MTU_BYTES = 1500
#: Most opportunities one trace may hold (a trace travels to the router in one agent request).
MAX_OPPORTUNITIES = 250_000
#: Longest timestamp, ms (one day).
MAX_TIMESTAMP_MS = 86_400_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TraceError(ValueError):
    """A trace that cannot be used; the message names the source and the line."""


def check_name(name: object) -> str:
    """A trace name: letters, digits, ``.``, ``_``, ``-``, at most 64."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise TraceError(f"trace name: expected letters, digits, '.', '_' or '-' (at most 64), got {name!r}")
    return name


@dataclass(frozen=True)
class Trace:
    """One trace: its name and its delivery opportunities (ms from the start, non-decreasing)."""

    name: str
    opportunities_ms: tuple[int, ...]

    @property
    def period_ms(self) -> int:
        """The trace repeats after this long, ms."""
        return self.opportunities_ms[-1]

    def delivered_bytes(self, start_ms: float, end_ms: float) -> int:
        """Bytes the link can deliver in [start_ms, end_ms) from the trace's start, looping:
        MTU_BYTES per opportunity."""
        ops, period = self.opportunities_ms, self.period_ms

        def upto(t: float) -> int:  # opportunities in [0, t)
            cycles, rest = divmod(t, period)
            return int(cycles) * len(ops) + bisect.bisect_left(ops, rest)

        return (upto(end_ms) - upto(start_ms)) * MTU_BYTES

    def mean_rate_bits_per_s(self) -> float:
        return len(self.opportunities_ms) * MTU_BYTES * 8 / (self.period_ms / 1000)

    def to_text(self) -> str:
        return "".join(f"{t}\n" for t in self.opportunities_ms)


def parse_trace(text: str, name: str, source: str = "<text>") -> Trace:
    """Read a Mahimahi trace; raises TraceError naming ``source`` and the line for a
    non-numeric or decreasing timestamp, an empty trace, or one whose period is 0."""
    check_name(name)
    ops: list[int] = []
    last = 0
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            continue
        if not word.isdigit() or not word.isascii():
            raise TraceError(f"{source}:{number}: expected a timestamp in whole milliseconds, got {word!r}")
        value = int(word)
        if value > MAX_TIMESTAMP_MS:
            raise TraceError(f"{source}:{number}: timestamp {value} ms is beyond one day")
        if value < last:
            raise TraceError(f"{source}:{number}: timestamp {value} ms is before the previous one ({last} ms): "
                             "timestamps never decrease")
        last = value
        ops.append(value)
        if len(ops) > MAX_OPPORTUNITIES:
            raise TraceError(f"{source}:{number}: more than {MAX_OPPORTUNITIES} delivery opportunities")
    if not ops:
        raise TraceError(f"{source}: empty: a trace needs at least one timestamp")
    if ops[-1] == 0:
        raise TraceError(f"{source}: the last timestamp is 0 ms: the trace has no length to loop over")
    return Trace(name, tuple(ops))


__all__ = ["MAX_OPPORTUNITIES", "MTU_BYTES", "Trace", "TraceError", "check_name", "parse_trace"]
