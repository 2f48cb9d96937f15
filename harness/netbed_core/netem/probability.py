"""The ``duplicate`` and ``corrupt`` sections: a percentage of packets and its correlation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .checks import check_pct, set_field
from .section import PCT, NetemView, Section, Tokens, correlation_warning
from .units import format_percent

__all__ = ["Corrupt", "Duplicate"]


@dataclass(frozen=True)
class _Probability(Section):
    """``KEYWORD PERCENT [CORRELATION]``: a percentage of packets (0-100) and netem's
    correlation with the previous decision (0-100)."""

    pct: float
    correlation_pct: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "pct", check_pct("pct", self.pct))
        set_field(self, "correlation_pct", check_pct("correlation_pct", self.correlation_pct))

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        pct = tokens.pct(keyword, tokens.need(keyword, "a percentage", PCT))
        return cls(pct, tokens.opt_pct(f"{cls.key} correlation"))

    def tc_args(self) -> list[str]:
        out = [self.key, format_percent(self.pct)]
        if self.correlation_pct != 0:
            out.append(format_percent(self.correlation_pct))
        return out

    def describe(self) -> str:
        corr = f" ({format_percent(self.correlation_pct)} correlated)" if self.correlation_pct else ""
        return f"{self.key} {format_percent(self.pct)}{corr}"

    def lint(self, netem: NetemView) -> list[str]:
        out: list[str] = []
        if self.pct == 0:
            out.append(f"{self.key} 0% does nothing; remove it.")
        if self.correlation_pct > 0:
            out.append(correlation_warning(self.key, self.correlation_pct))
        return out


@dataclass(frozen=True)
class Duplicate(_Probability):
    """``duplicate PERCENT [CORRELATION]``: percent (0-100) of packets sent twice."""

    key: ClassVar[str] = "duplicate"
    keywords: ClassVar[tuple[str, ...]] = ("duplicate",)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"duplicate": {"duplicate": 0.0, "correlation": 0.0}}

    def readback(self) -> dict[str, Any]:
        # The correlation reaches the kernel only through iproute2.tc_command_args's workaround
        # (iproute2 drops it otherwise); reading it back proves the workaround worked.
        if self.pct == 0:
            return {}  # tc prints duplicate only above 0%: its correlation cannot be read back
        return {"duplicate": {"duplicate": self.pct / 100, "correlation": self.correlation_pct / 100}}


@dataclass(frozen=True)
class Corrupt(_Probability):
    """``corrupt PERCENT [CORRELATION]``: percent (0-100) of packets with a flipped bit."""

    key: ClassVar[str] = "corrupt"
    keywords: ClassVar[tuple[str, ...]] = ("corrupt",)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"corrupt": {"corrupt": 0.0, "correlation": 0.0}}

    def readback(self) -> dict[str, Any]:
        if self.pct == 0:
            return {}  # tc prints corrupt only above 0%: its correlation cannot be read back
        return {"corrupt": {"corrupt": self.pct / 100, "correlation": self.correlation_pct / 100}}
