"""The ``slot`` section: deliver packets in bursts ("slots")."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from .checks import S32_MAX, SLOT_DISTRIBUTIONS, NetemError, check_int, check_ms, set_field
from .section import NetemView, Section, Tokens
from .units import UnitError, format_time_ms, parse_size_bytes

__all__ = ["Slot"]

_SLOT_MIN_MS = 1.0
"""Slots closer than this are smeared by timer and softirq granularity."""


@dataclass(frozen=True)
class Slot(Section):
    """``slot MIN_DELAY [MAX_DELAY]`` or ``slot distribution D DELAY JITTER``, then
    ``[packets N] [bytes N]``: deliver packets in bursts ("slots").

    Exactly one of the two forms is used:

    * min/max form: ``distribution``, ``delay_ms`` and ``jitter_ms`` are None; slots are spaced
      uniformly between ``min_delay_ms`` and ``max_delay_ms`` (equal when no max was given).
    * distribution form: ``min_delay_ms == max_delay_ms == 0`` and ``distribution`` names a tc
      table (``normal``, ``pareto`` or ``paretonormal``); slot spacing is
      ``delay_ms`` +/- ``jitter_ms`` (jitter must be above 0). ``uniform`` is not a table tc
      ships; the parser turns ``slot distribution uniform D J`` into ``slot D-J D+J``.

    Attributes:
        min_delay_ms / max_delay_ms: slot spacing bounds, milliseconds.
        distribution: distribution table name, or None.
        delay_ms / jitter_ms: distribution-form spacing, milliseconds, or None.
        max_packets: most packets delivered per slot, or None for no limit.
        max_bytes: most bytes delivered per slot, or None for no limit.
    """

    key: ClassVar[str] = "slot"
    keywords: ClassVar[tuple[str, ...]] = ("slot",)

    min_delay_ms: float = 0.0
    max_delay_ms: float = 0.0
    distribution: str | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    max_packets: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        set_field(self, "min_delay_ms", check_ms("min_delay_ms", self.min_delay_ms))
        set_field(self, "max_delay_ms", check_ms("max_delay_ms", self.max_delay_ms))
        if self.distribution is None:
            if self.delay_ms is not None or self.jitter_ms is not None:
                raise NetemError('netem: slot "delay_ms"/"jitter_ms" need a slot "distribution"',
                                 token="distribution", expected="a slot distribution name")
            if self.max_delay_ms < self.min_delay_ms:
                raise NetemError(
                    f"netem: slot max delay {self.max_delay_ms}ms is below the min delay "
                    f"{self.min_delay_ms}ms", token="slot", expected="a max delay >= the min delay")
        else:
            name = self.distribution
            if not isinstance(name, str) or not name or any(c.isspace() or c == "/" for c in name):
                raise NetemError(f"netem: bad slot distribution {name!r}: expected a table name",
                                 token=str(name), expected="a distribution table name like normal")
            if name == "uniform":
                raise NetemError(
                    'netem: tc has no "uniform" slot distribution table: write "slot MIN MAX" '
                    "(slots uniformly spaced between MIN and MAX) instead",
                    token="uniform", expected="normal, pareto or paretonormal")
            if name not in SLOT_DISTRIBUTIONS:
                raise NetemError(
                    f'netem: no slot distribution table "{name}": expected one of '
                    f"{', '.join(SLOT_DISTRIBUTIONS)} (tc would look for a file {name}.dist and refuse it "
                    "where it is missing)", token=name, expected=f"one of {', '.join(SLOT_DISTRIBUTIONS)}")
            if self.min_delay_ms != 0 or self.max_delay_ms != 0:
                raise NetemError("netem: a slot uses either MIN [MAX] or a distribution, not both",
                                 token="distribution", expected="min/max delay 0 with a distribution")
            if self.delay_ms is None or self.jitter_ms is None:
                raise NetemError('netem: "slot distribution" needs DELAY and JITTER', token="distribution",
                                 expected="a delay and a jitter")
            set_field(self, "delay_ms", check_ms("delay_ms", self.delay_ms))
            jitter = check_ms("jitter_ms", self.jitter_ms)
            if jitter <= 0:
                raise NetemError("netem: slot distribution jitter must be above 0", token="jitter_ms",
                                 expected="a jitter above zero")
            set_field(self, "jitter_ms", jitter)
        if self.max_packets is not None:
            check_int("max_packets", self.max_packets, 1, S32_MAX)
        if self.max_bytes is not None:
            check_int("max_bytes", self.max_bytes, 1, S32_MAX)

    # -- parse -------------------------------------------------------------------------------

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        t = tokens
        dist: str | None = None
        dmean: float | None = None
        djit: float | None = None
        if t.next_is_number():
            lo = t.time("slot min delay", t.take(), nanoseconds=True)
            hi = lo
            if t.next_is_number():
                tok = t.take()
                hi = t.time("slot max delay", tok, nanoseconds=True)
                if hi < lo:
                    raise t.bad("slot max delay", tok, "a time not below the min delay")
        else:
            if t.peek() != "distribution":
                expected = 'a time like 10ms or "distribution"'
                tok = t.need(keyword, 'a time or "distribution"', expected)
                raise t.bad("slot", tok, expected)
            t.take()
            dist = t.need("slot distribution", "a distribution name",
                          "normal, pareto or paretonormal")
            dmean = t.time("slot distribution delay",
                           t.need("slot distribution", "a delay and a jitter", "a time like 10ms"),
                           nanoseconds=True)
            jtok = t.need("slot distribution", "a jitter after the delay", "a time like 2ms")
            djit = t.time("slot distribution jitter", jtok, nanoseconds=True)
            if djit <= 0:
                raise t.bad("slot distribution jitter", jtok, "a jitter above zero")
            lo = hi = 0.0
            if dist == "uniform":
                # tc ships no uniform table; uniform spacing is exactly the min/max form.
                mean, jit = Decimal(repr(dmean)), Decimal(repr(djit))
                if jit > mean:
                    raise t.bad("slot distribution jitter", jtok,
                                'a jitter not above the delay for "uniform" (or write "slot MIN MAX")')
                lo, hi = float(mean - jit), float(mean + jit)
                dist = dmean = djit = None
        packets: int | None = None
        size: int | None = None
        for _ in range(2):
            nxt = t.peek()
            if nxt == "packets" and packets is None:
                t.take()
                ptok = t.need("slot packets", "a number of packets", "a number of packets like 10")
                packets = t.integer("slot packets", ptok, 1, S32_MAX)
            elif nxt == "bytes" and size is None:
                t.take()
                btok = t.need("slot bytes", "a number of bytes", "a size like 1500 or 64kb")
                try:
                    size = parse_size_bytes(btok)
                except UnitError as e:
                    raise t.bad("slot bytes", btok, str(e)) from None
                if not 1 <= size <= S32_MAX:
                    raise t.bad("slot bytes", btok, f"a size from 1 to {S32_MAX} bytes")
        return Slot(lo, hi, dist, dmean, djit, packets, size)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"slot": None}

    # -- render ------------------------------------------------------------------------------

    def tc_args(self) -> list[str]:
        if self.distribution is None:
            out = ["slot", format_time_ms(self.min_delay_ms, nanoseconds=True)]
            if self.max_delay_ms != self.min_delay_ms:
                out.append(format_time_ms(self.max_delay_ms, nanoseconds=True))
        else:
            assert self.delay_ms is not None and self.jitter_ms is not None  # guaranteed by __post_init__
            out = ["slot", "distribution", self.distribution,
                   format_time_ms(self.delay_ms, nanoseconds=True),
                   format_time_ms(self.jitter_ms, nanoseconds=True)]
        if self.max_packets is not None:
            out += ["packets", str(self.max_packets)]
        if self.max_bytes is not None:
            out += ["bytes", str(self.max_bytes)]
        return out

    def describe(self) -> str:
        if self.distribution is None:
            text = f"slots every {format_time_ms(self.min_delay_ms, nanoseconds=True)}"
            if self.max_delay_ms != self.min_delay_ms:
                text += f"-{format_time_ms(self.max_delay_ms, nanoseconds=True)}"
        else:
            assert self.delay_ms is not None and self.jitter_ms is not None
            text = (f"slots every {format_time_ms(self.delay_ms, nanoseconds=True)} "
                    f"±{format_time_ms(self.jitter_ms, nanoseconds=True)} ({self.distribution})")
        extra = []
        if self.max_packets is not None:
            extra.append(f"≤{self.max_packets} packets")
        if self.max_bytes is not None:
            extra.append(f"≤{self.max_bytes} bytes")
        return text + (f" ({', '.join(extra)})" if extra else "")

    def lint(self, netem: NetemView) -> list[str]:
        spacing = self.min_delay_ms if self.distribution is None else (self.delay_ms or 0.0)
        if spacing >= _SLOT_MIN_MS:
            return []
        return [f"slot spacing {format_time_ms(spacing, nanoseconds=True)} is below 1ms: timer and softirq "
                "granularity smear slots this short, so bursts will not be delivered on time; "
                "use slots of 1ms or more."]

    def readback(self) -> dict[str, Any]:
        slot: dict[str, float] = {"packets": self.max_packets or 0, "bytes": self.max_bytes or 0}
        if self.distribution is None:
            slot |= {"min-delay": self.min_delay_ms / 1e3, "max-delay": self.max_delay_ms / 1e3}
        else:
            assert self.delay_ms is not None and self.jitter_ms is not None
            slot |= {"distribution": self.delay_ms / 1e3, "jitter": self.jitter_ms / 1e3}
        return {"slot": slot}
