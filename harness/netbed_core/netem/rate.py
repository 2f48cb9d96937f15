"""The ``rate`` section: ``rate RATE [PACKETOVERHEAD [CELLSIZE [CELLOVERHEAD]]]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .checks import FULL_PACKET_BYTES, S32_MAX, U32_MAX, U64_MAX, NetemError, check_int
from .section import NetemView, Section, Tokens
from .units import UnitError, format_rate, format_rate_human, parse_rate_bits

__all__ = ["FAST_RATE_BITS_PER_S", "Rate"]

FAST_RATE_BITS_PER_S = 4_000_000_000
"""Above this rate a full-size packet lasts under 3us, finer than netem can pace reliably."""


@dataclass(frozen=True)
class Rate(Section):
    """``rate RATE [PACKETOVERHEAD [CELLSIZE [CELLOVERHEAD]]]``: serialisation delay.

    Attributes:
        bits_per_s: link rate, bits per second (the kernel keeps whole bytes per second).
        packet_overhead_bytes: added to (or, if negative, removed from) each packet's length.
        cell_size_bytes: link-layer cell size (e.g. 48 for ATM); 0 = no cells.
        cell_overhead_bytes: per-cell overhead (e.g. 5 for ATM); only used with a cell size.
    """

    key: ClassVar[str] = "rate"
    keywords: ClassVar[tuple[str, ...]] = ("rate",)

    bits_per_s: int
    packet_overhead_bytes: int = 0
    cell_size_bytes: int = 0
    cell_overhead_bytes: int = 0

    def __post_init__(self) -> None:
        check_int("bits_per_s", self.bits_per_s, 8, U64_MAX)
        check_int("packet_overhead_bytes", self.packet_overhead_bytes, -S32_MAX - 1, S32_MAX)
        check_int("cell_size_bytes", self.cell_size_bytes, 0, U32_MAX)
        check_int("cell_overhead_bytes", self.cell_overhead_bytes, -S32_MAX - 1, S32_MAX)

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        tok = tokens.need(keyword, "a rate", "a rate like 10mbit")
        if "%" in tok:
            raise NetemError(
                f'netem: rate "{tok}" as a percentage of the link speed is not supported: '
                "expected an absolute rate like 10mbit", token=tok, expected="a rate like 10mbit")
        try:
            bits = parse_rate_bits(tok)
        except UnitError as e:
            raise tokens.bad("rate", tok, str(e)) from None
        if bits < 8:
            raise tokens.bad("rate", tok, "at least 8bit (the kernel counts whole bytes per second)")
        if bits > U64_MAX:
            raise tokens.bad("rate", tok, f"at most {U64_MAX}bit (tc keeps a 64-bit rate)")
        overhead = cell = cell_overhead = 0
        if tokens.next_is_signed_number():
            overhead = tokens.integer("rate packet overhead", tokens.take(), -S32_MAX - 1, S32_MAX, signed=True)
        if tokens.next_is_number():
            cell = tokens.integer("rate cell size", tokens.take(), 0, U32_MAX)
        if tokens.next_is_signed_number():
            cell_overhead = tokens.integer("rate cell overhead", tokens.take(), -S32_MAX - 1, S32_MAX,
                                           signed=True)
        return Rate(bits, overhead, cell, cell_overhead)

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"rate": {"rate": 0.0, "packetoverhead": 0.0, "cellsize": 0.0, "celloverhead": 0.0}}

    def tc_args(self) -> list[str]:
        positional = [self.packet_overhead_bytes, self.cell_size_bytes, self.cell_overhead_bytes]
        while positional and positional[-1] == 0:
            positional.pop()
        return ["rate", format_rate(self.bits_per_s), *(str(v) for v in positional)]

    def describe(self) -> str:
        extra = []
        if self.packet_overhead_bytes:
            extra.append(f"{self.packet_overhead_bytes:+d}B/packet")
        if self.cell_size_bytes:
            extra.append(f"{self.cell_size_bytes}B cells")
        if self.cell_overhead_bytes:
            extra.append(f"{self.cell_overhead_bytes:+d}B/cell")
        text = f"rate {format_rate_human(self.bits_per_s)}"
        return text + (f" ({', '.join(extra)})" if extra else "")

    def lint(self, netem: NetemView) -> list[str]:
        out: list[str] = []
        if self.cell_overhead_bytes != 0 and self.cell_size_bytes == 0:
            out.append("rate CELLOVERHEAD does nothing without a CELLSIZE; remove it or give a cell size.")
        if self.bits_per_s % 8:
            kept = self.bits_per_s // 8 * 8
            out.append(f"rate {self.bits_per_s}bit is not a whole number of bytes per second; the "
                       f"kernel uses {kept}bit, so give a multiple of 8 bits.")
        if self.bits_per_s > FAST_RATE_BITS_PER_S:
            packet_us = FULL_PACKET_BYTES * 8 / self.bits_per_s * 1e6
            out.append(
                f"rate {format_rate_human(self.bits_per_s)} is beyond what netem paces accurately: a "
                f"{FULL_PACKET_BYTES}-byte packet lasts {packet_us:.1f}us, finer than the kernel's "
                "timer granularity, so netem sends bursts and the achieved rate is approximate; "
                "measure the rate you get, or drop the rate if this link is not the bottleneck.")
        return out

    def readback(self) -> dict[str, Any]:
        return {"rate": {"rate": self.bits_per_s / 8, "packetoverhead": self.packet_overhead_bytes,
                         "cellsize": self.cell_size_bytes, "celloverhead": self.cell_overhead_bytes}}
