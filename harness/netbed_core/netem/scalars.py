"""The plain settings: ``limit``, ``ecn``, ``seed`` and netbed's ``partition``.

Each is a plain value on :class:`~netbed_core.netem.model.Netem` (``limit_packets: int``,
``ecn: bool``...), so these sections are always present: :meth:`Section.is_set` says whether
the value differs from netem's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from .checks import DEFAULT_LIMIT_PACKETS, FULL_PACKET_BYTES, U32_MAX, U64_MAX, NetemError, check_int
from .delay import Delay
from .rate import Rate
from .section import NetemView, Section, Tokens
from .units import format_rate_human, format_time_ms, parse_size_bytes

__all__ = ["Ecn", "Limit", "Partition", "Seed"]

_SIZE_SUFFIXES = frozenset({"b", "k", "kb", "m", "mb", "g", "gb", "kbit", "mbit", "gbit"})
"""iproute2 get_size()'s units (tc reads limit as a size)."""


class _Plain(Section):
    """A section kept as a plain value on ``Netem``, which is also its dict form."""

    @classmethod
    def to_wire(cls, raw: object) -> object:
        return raw

    @classmethod
    def from_wire(cls, data: object) -> object:
        return data


@dataclass(frozen=True)
class _Flag(_Plain):
    """A keyword without arguments, kept as a boolean (default False)."""

    enabled: bool

    @classmethod
    def default(cls) -> object:
        return False

    @classmethod
    def wrap(cls, raw: object) -> Section:
        return cls(bool(raw))

    @classmethod
    def check(cls, raw: object) -> None:
        if not isinstance(raw, bool):
            raise NetemError(f'netem: "{cls.key}" must be true or false, not {raw!r}', token=cls.key,
                             expected="a boolean")

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        return True

    def is_set(self) -> bool:
        return self.enabled


@dataclass(frozen=True)
class Limit(_Plain):
    """``limit PACKETS``: netem's queue limit in packets (default 1000)."""

    key: ClassVar[str] = "limit_packets"
    keywords: ClassVar[tuple[str, ...]] = ("limit",)
    detail: ClassVar[bool] = True

    packets: int

    @classmethod
    def default(cls) -> object:
        return DEFAULT_LIMIT_PACKETS

    @classmethod
    def wrap(cls, raw: object) -> Section:
        assert isinstance(raw, int)
        return Limit(raw)

    @classmethod
    def check(cls, raw: object) -> None:
        check_int("limit_packets", raw, 1, U32_MAX)

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        tok = tokens.need(keyword, "a number of packets", "a number of packets like 1000")
        try:
            return tokens.integer("limit", tok, 1, U32_MAX, octal_zero=False)
        except NetemError:
            if tok[:1].isdigit() and tok.lstrip("0123456789.").lower() in _SIZE_SUFFIXES:
                # tc reads limit with get_size(), so "1k" is 1024 packets there: say so.
                packets = parse_size_bytes(tok)
                raise tokens.bad("limit", tok, f'a whole number of packets (tc reads limit as a size, so "{tok}" '
                                 f"would be {packets} packets: write {packets})") from None
            raise

    def is_set(self) -> bool:
        return self.packets != DEFAULT_LIMIT_PACKETS

    def tc_args(self) -> list[str]:
        return ["limit", str(self.packets)]  # always given to tc: replace keeps no old limit

    def describe(self) -> str | None:
        return f"limit {self.packets} packets" if self.is_set() else None

    def lint(self, netem: NetemView) -> list[str]:
        rate, d = netem.rate, netem.delay
        if not isinstance(rate, Rate) or not isinstance(d, Delay) or d.delay_ms <= 0:
            return []
        window_ms = d.delay_ms + d.jitter_ms
        in_flight = rate.bits_per_s / 8 * (window_ms / 1000) / FULL_PACKET_BYTES
        needed = math.ceil(in_flight)
        if self.packets >= needed:
            return []
        return [f"limit {self.packets} packets is below the ~{needed} {FULL_PACKET_BYTES}-byte "
                f"packets in flight at {format_rate_human(rate.bits_per_s)} with {format_time_ms(window_ms)} "
                f"of delay, so netem will drop packets at its queue limit once the link is busy; raise "
                f"it to at least limit {needed}."]

    def readback(self) -> dict[str, Any]:
        return {"limit": self.packets}


@dataclass(frozen=True)
class Ecn(_Flag):
    """``ecn``: mark ECN-capable packets instead of dropping them (needs a loss model)."""

    key: ClassVar[str] = "ecn"
    keywords: ClassVar[tuple[str, ...]] = ("ecn",)

    def tc_args(self) -> list[str]:
        return ["ecn"] if self.enabled else []

    def describe(self) -> str | None:
        return "ECN marks instead of drops" if self.enabled else None

    def lint(self, netem: NetemView) -> list[str]:
        if not self.enabled:
            return []
        return ["ecn only marks packets of ECN-capable flows (ECT set); packets of other flows are "
                "still dropped, so make sure the traffic under test negotiates ECN."]

    def readback(self) -> dict[str, Any]:
        return {"ecn": self.enabled}


@dataclass(frozen=True)
class Seed(_Plain):
    """``seed N``: seed of netem's random generator (Linux >= 6.3, iproute2 >= 6.6), or None."""

    key: ClassVar[str] = "seed"
    keywords: ClassVar[tuple[str, ...]] = ("seed",)
    detail: ClassVar[bool] = True

    value: int | None

    @classmethod
    def wrap(cls, raw: object) -> Section:
        assert raw is None or isinstance(raw, int)
        return Seed(raw)

    @classmethod
    def check(cls, raw: object) -> None:
        if raw is not None:
            check_int("seed", raw, 0, U64_MAX)

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        tok = tokens.need(keyword, "a number", "a whole number like 42")
        return tokens.integer("seed", tok, 0, U64_MAX)

    def is_set(self) -> bool:
        return self.value is not None

    def tc_args(self) -> list[str]:
        return [] if self.value is None else ["seed", str(self.value)]

    def describe(self) -> str | None:
        return None if self.value is None else f"seed {self.value}"

    def readback(self) -> dict[str, Any]:
        return {} if self.value is None else {"seed": self.value}


@dataclass(frozen=True)
class Partition(_Flag):
    """``partition`` (netbed's own): drop every packet. Must be the only setting; tc knows it
    as ``loss 100%``."""

    key: ClassVar[str] = "partition"
    keywords: ClassVar[tuple[str, ...]] = ("partition",)

    def tc_args(self) -> list[str]:
        return ["loss", "100%"] if self.enabled else []

    def text_args(self) -> list[str]:
        return ["partition"] if self.enabled else []

    def describe(self) -> str | None:
        return "partition (every packet dropped)" if self.enabled else None

    def readback(self) -> dict[str, Any]:
        return {"loss-random": {"loss": 1.0, "correlation": 0.0}} if self.enabled else {}
