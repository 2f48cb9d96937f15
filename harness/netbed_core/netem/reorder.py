"""The ``reorder`` section: ``reorder PERCENT [CORRELATION] [gap DISTANCE]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .checks import U32_MAX, NetemError, check_int, check_pct, set_field
from .section import PCT, NetemView, Section, Tokens, correlation_warning
from .units import format_percent

__all__ = ["Reorder"]


@dataclass(frozen=True)
class Reorder(Section):
    """``reorder PERCENT [CORRELATION] [gap DISTANCE]``.

    Attributes:
        pct: probability (0-100) that an eligible packet skips the delay and is sent at once.
        correlation_pct: dependence on the previous random value, 0-100.
        gap: every ``gap``-th packet is eligible (the first ``gap - 1`` are always delayed);
            1 (tc's default) makes every packet eligible.
    """

    key: ClassVar[str] = "reorder"
    keywords: ClassVar[tuple[str, ...]] = ("reorder", "gap")

    pct: float
    correlation_pct: float = 0.0
    gap: int = 1

    def __post_init__(self) -> None:
        set_field(self, "pct", check_pct("pct", self.pct))
        set_field(self, "correlation_pct", check_pct("correlation_pct", self.correlation_pct))
        check_int("gap", self.gap, 1, U32_MAX)

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        if keyword == "gap":
            tok = tokens.need(keyword, "a distance in packets", "a number of packets, 1 or more")
            return tokens.integer("gap", tok, 1, U32_MAX)
        pct = tokens.pct(keyword, tokens.need(keyword, "a percentage", PCT))
        return (pct, tokens.opt_pct("reorder correlation"))

    @classmethod
    def build(cls, pieces: Mapping[str, object], seen: Mapping[str, str]) -> object:
        given = pieces.get("reorder")
        gap = pieces.get("gap")
        if given is None:
            if gap is not None:
                raise NetemError('netem: "gap" needs "reorder", like "delay 10ms reorder 25% gap 5"',
                                 token=seen["gap"], expected='"reorder"')
            return None
        assert isinstance(given, tuple) and (gap is None or isinstance(gap, int))
        pct, correlation_pct = given
        return Reorder(pct, correlation_pct, 1 if gap is None else gap)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"reorder": {"reorder": 0.0, "correlation": 0.0}}

    def tc_args(self) -> list[str]:
        out = ["reorder", format_percent(self.pct)]
        if self.correlation_pct != 0:
            out.append(format_percent(self.correlation_pct))
        if self.gap != 1:
            out += ["gap", str(self.gap)]
        return out

    def describe(self) -> str:
        extra = [f"{format_percent(self.correlation_pct)} correlated"] if self.correlation_pct else []
        if self.gap != 1:
            extra.append(f"gap {self.gap}")
        return f"reorder {format_percent(self.pct)}" + (f" ({', '.join(extra)})" if extra else "")

    def lint(self, netem: NetemView) -> list[str]:
        out: list[str] = []
        if self.pct == 0:
            out.append("reorder 0% does nothing: netem only reorders with a reorder percentage above 0 "
                       'and a delay (e.g. "delay 10ms reorder 25%"); remove it or give a percentage.')
        if self.correlation_pct > 0:
            out.append(correlation_warning("reorder", self.correlation_pct))
        return out

    def readback(self) -> dict[str, Any]:
        if self.pct == 0:
            return {}  # compared with the zeros of an unset reorder, gap included
        return {"reorder": {"reorder": self.pct / 100, "correlation": self.correlation_pct / 100},
                "gap": self.gap}
