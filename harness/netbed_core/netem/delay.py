"""The ``delay`` section: ``delay TIME [JITTER [CORRELATION]] [distribution D]``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from .checks import (
    DELAY_DISTRIBUTIONS,
    MAX_DELAY_MS,
    MAX_JITTER_MS,
    US_RESOLUTION_MS,
    NetemError,
    check_ms,
    check_pct,
    set_field,
)
from .section import NetemView, Section, Tokens, correlation_warning, suggest
from .units import format_percent, format_time_ms

__all__ = ["Delay"]


def _whole_us(ms: float) -> bool:
    us = Decimal(repr(ms)) * 1000
    return us == us.to_integral_value()


@dataclass(frozen=True)
class Delay(Section):
    """``delay TIME [JITTER [CORRELATION]] [distribution D]``.

    Attributes:
        delay_ms: base delay added to every packet, milliseconds.
        jitter_ms: random variation around ``delay_ms``, milliseconds (0 = none).
        correlation_pct: how much each random jitter value depends on the previous one, 0-100.
        distribution: jitter distribution table, or None for netem's built-in uniform jitter.
            ``"uniform"`` is normalised to None (tc ships no ``uniform.dist`` table; uniform is
            what netem does without one).
    """

    key: ClassVar[str] = "delay"
    keywords: ClassVar[tuple[str, ...]] = ("delay", "distribution")
    synonyms: ClassVar[Mapping[str, str]] = {"latency": "delay"}

    delay_ms: float
    jitter_ms: float = 0.0
    correlation_pct: float = 0.0
    distribution: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "delay_ms", check_ms("delay_ms", self.delay_ms, limit=MAX_DELAY_MS,
                                                 resolution=US_RESOLUTION_MS, unit="1us"))
        set_field(self, "jitter_ms", check_ms("jitter_ms", self.jitter_ms, limit=MAX_DELAY_MS,
                                              resolution=US_RESOLUTION_MS, unit="1us"))
        if self.jitter_ms > MAX_JITTER_MS:
            raise NetemError(
                f'netem: jitter {format_time_ms(self.jitter_ms)} is above the {format_time_ms(MAX_JITTER_MS)} '
                "the kernel keeps: netem would silently cap it (tc accepts it), so netbed refuses it",
                token="jitter_ms", expected=f"a jitter up to {format_time_ms(MAX_JITTER_MS)}")
        set_field(self, "correlation_pct", check_pct("correlation_pct", self.correlation_pct))
        if self.distribution is not None:
            if self.distribution not in DELAY_DISTRIBUTIONS:
                raise NetemError(
                    f'netem: unknown delay distribution "{self.distribution}": '
                    f"expected one of {', '.join(DELAY_DISTRIBUTIONS)}",
                    token=str(self.distribution), expected=f"one of {', '.join(DELAY_DISTRIBUTIONS)}")
            if self.delay_ms == 0 or self.jitter_ms == 0:
                raise NetemError(
                    'netem: "distribution" needs a delay with jitter, like "delay 100ms 10ms '
                    'distribution normal" (the distribution shapes the jitter)',
                    token="distribution", expected="a delay and jitter above zero")
            if self.distribution == "uniform":
                set_field(self, "distribution", None)

    # -- parse -------------------------------------------------------------------------------

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        if keyword == "distribution":
            choices = ", ".join(DELAY_DISTRIBUTIONS)
            tok = tokens.need(keyword, f"a distribution ({choices})", f"one of {choices}")
            if tok not in DELAY_DISTRIBUTIONS:
                hint = suggest(tok, DELAY_DISTRIBUTIONS)
                more = f' (did you mean "{hint}"?)' if hint else f": expected one of {choices}"
                raise NetemError(f'netem: unknown distribution "{tok}"{more}', token=tok,
                                 expected=f"one of {choices}")
            return tok
        delay = tokens.time(keyword, tokens.need(keyword, "a time", "a time like 100ms"))
        jitter = corr = 0.0
        if tokens.next_is_number():
            jitter = tokens.time("jitter", tokens.take())
            corr = tokens.opt_pct("delay correlation")
        return (delay, jitter, corr)

    @classmethod
    def build(cls, pieces: Mapping[str, object], seen: Mapping[str, str]) -> object:
        times = pieces.get("delay")
        dist = pieces.get("distribution")
        if times is None:
            if dist is not None:
                raise NetemError('netem: "distribution" needs a delay with jitter, like "delay 100ms 10ms '
                                 'distribution normal"', token=seen["distribution"],
                                 expected="a delay with jitter")
            return None
        assert isinstance(times, tuple) and (dist is None or isinstance(dist, str))
        delay_ms, jitter_ms, correlation_pct = times
        return Delay(delay_ms, jitter_ms, correlation_pct, dist)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"delay": {"delay": 0.0, "jitter": 0.0, "correlation": 0.0}}

    # -- render ------------------------------------------------------------------------------

    def tc_args(self) -> list[str]:
        out = ["delay", format_time_ms(self.delay_ms)]
        if self.jitter_ms != 0 or self.correlation_pct != 0:
            out.append(format_time_ms(self.jitter_ms))
            if self.correlation_pct != 0:
                out.append(format_percent(self.correlation_pct))
        if self.distribution is not None:
            out += ["distribution", self.distribution]
        return out

    def describe(self) -> str:
        text = f"delay {format_time_ms(self.delay_ms)}"
        if self.jitter_ms:
            text += f" ±{format_time_ms(self.jitter_ms)}"
        extra = [f"{format_percent(self.correlation_pct)} correlated"] if self.correlation_pct else []
        if self.distribution:
            extra.append(self.distribution)
        return text + (f" ({', '.join(extra)})" if extra else "")

    def lint(self, netem: NetemView) -> list[str]:
        ms = format_time_ms
        out: list[str] = []
        if self.correlation_pct > 0 and self.jitter_ms == 0:
            out.append("delay correlation does nothing without jitter; remove it or add a jitter.")
        elif self.correlation_pct > 0:
            out.append(correlation_warning("delay", self.correlation_pct))
        if self.jitter_ms > self.delay_ms:
            out.append(
                f"jitter {ms(self.jitter_ms)} is larger than the delay {ms(self.delay_ms)}: delays drawn "
                "below zero are sent at once, so the delay distribution is cut off at 0 (its mean is "
                "higher than the delay)"
                + ("" if netem.rate is not None else
                   ", and packets overtake each other since netem sends each packet at its own random time")
                + "; use a jitter no larger than the delay.")
        if netem.rate is not None and self.jitter_ms > 0:
            out.append(
                f"rate with jitter: netem never sends a packet before the one queued ahead of it when a "
                f"rate is set, so jitter does not reorder, and under load a short delay only shortens "
                f"the wait behind the previous packet; the measured jitter will be smaller than "
                f"{ms(self.jitter_ms)}. Drop the rate if you need the full jitter.")
        for label, value in (("delay", self.delay_ms), ("jitter", self.jitter_ms)):
            if value > 0 and not _whole_us(value):
                whole = math.floor(Decimal(repr(value)) * 1000)
                out.append(f"{label} {ms(value)} is not a whole number of microseconds; tc truncates it "
                           f"to {whole}us, so give it in whole microseconds.")
        return out

    def readback(self) -> dict[str, Any]:
        # The distribution table is not printed by tc, so it cannot be compared. tc prints the
        # delay section only when the delay is above zero, so `delay 0ms 5ms` shows nothing and
        # its jitter cannot be read back (compared with the zeros of an unset delay instead).
        if self.delay_ms == 0:
            return {}
        return {"delay": {"delay": self.delay_ms / 1e3, "jitter": self.jitter_ms / 1e3,
                          "correlation": self.correlation_pct / 100}}

