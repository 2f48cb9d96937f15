"""Warnings for settings netem accepts but that do nothing, or not what one would expect.

:func:`lint` never fails; it returns sentences that each say what is wrong and what to do.
The rules are listed (with their sources) in docs/netem.md. Standard library only.
"""

from __future__ import annotations

import math
from decimal import Decimal

from .model import Netem, RandomLoss
from .units import format_percent, format_rate_human, format_time_ms

__all__ = ["FAST_RATE_BITS_PER_S", "FULL_PACKET_BYTES", "lint"]

FULL_PACKET_BYTES = 1500
"""Packet size assumed when estimating how many packets are in flight (an Ethernet MTU)."""

FAST_RATE_BITS_PER_S = 4_000_000_000
"""Above this rate a full-size packet lasts under 3us, finer than netem can pace reliably."""

_SLOT_MIN_MS = 1.0
"""Slots closer than this are smeared by timer and softirq granularity."""


def _whole_us(ms: float) -> bool:
    us = Decimal(repr(ms)) * 1000
    return us == us.to_integral_value()


def lint(netem: Netem) -> list[str]:
    """Return warnings (possibly none) about ``netem``, in a fixed order."""
    out: list[str] = []
    d = netem.delay
    loss = netem.loss
    rate = netem.rate
    ms = format_time_ms

    # -- settings that do nothing ------------------------------------------------------------
    if isinstance(loss, RandomLoss) and loss.pct == 100:
        out.append('loss 100% drops every packet, so nothing else in this setting can be observed; '
                   'write "partition" instead, which says so.')
    if isinstance(loss, RandomLoss) and loss.pct == 0:
        out.append("loss 0% drops nothing; remove it.")
    for name, section in (("duplicate", netem.duplicate), ("corrupt", netem.corrupt)):
        if section is not None and section.pct == 0:
            out.append(f"{name} 0% does nothing; remove it.")
    if netem.reorder is not None and netem.reorder.pct == 0:
        out.append("reorder 0% does nothing: netem only reorders with a reorder percentage above 0 "
                   'and a delay (e.g. "delay 10ms reorder 25%"); remove it or give a percentage.')
    if d is not None and d.correlation_pct > 0 and d.jitter_ms == 0:
        out.append("delay correlation does nothing without jitter; remove it or add a jitter.")
    if rate is not None and rate.cell_overhead_bytes != 0 and rate.cell_size_bytes == 0:
        out.append("rate CELLOVERHEAD does nothing without a CELLSIZE; remove it or give a cell size.")

    # -- correlation -------------------------------------------------------------------------
    if isinstance(loss, RandomLoss) and loss.correlation_pct > 0:
        out.append(
            f"loss correlation {format_percent(loss.correlation_pct)} does not give bursty loss: "
            'tc-netem(8) says the "loss random" correlation "is now deprecated due to the noticed bad '
            'behavior"; model bursts with "loss state P13 P31" or "loss gemodel P R" instead.')
    correlated = [
        (name, section.correlation_pct)
        for name, section in (("delay", d), ("duplicate", netem.duplicate), ("corrupt", netem.corrupt),
                              ("reorder", netem.reorder))
        if section is not None and section.correlation_pct > 0
        and not (name == "delay" and d is not None and d.jitter_ms == 0)
    ]
    for name, corr in correlated:
        out.append(
            f"{name} correlation {format_percent(corr)} is only an approximation: netem mixes each new "
            "random value with the previous one, which is not a true statistical correlation and "
            "shrinks the spread of the values; set it to 0 unless you have measured its effect.")

    # -- jitter, rate and timers -------------------------------------------------------------
    if d is not None and d.jitter_ms > d.delay_ms:
        out.append(
            f"jitter {ms(d.jitter_ms)} is larger than the delay {ms(d.delay_ms)}: delays drawn below "
            "zero are sent at once, so the delay distribution is cut off at 0 (its mean is higher "
            "than the delay)"
            + ("" if rate is not None else
               ", and packets overtake each other since netem sends each packet at its own random time")
            + "; use a jitter no larger than the delay.")
    if d is not None and rate is not None and d.jitter_ms > 0:
        out.append(
            f"rate with jitter: netem never sends a packet before the one queued ahead of it when a "
            f"rate is set, so jitter does not reorder, and under load a short delay only shortens "
            f"the wait behind the previous packet; the measured jitter will be smaller than "
            f"{ms(d.jitter_ms)}. Drop the rate if you need the full jitter.")
    if d is not None:
        for label, value in (("delay", d.delay_ms), ("jitter", d.jitter_ms)):
            if value > 0 and not _whole_us(value):
                whole = math.floor(Decimal(repr(value)) * 1000)
                out.append(f"{label} {ms(value)} is not a whole number of microseconds; tc truncates it "
                           f"to {whole}us, so give it in whole microseconds.")
    if rate is not None:
        if rate.bits_per_s % 8:
            kept = rate.bits_per_s // 8 * 8
            out.append(f"rate {rate.bits_per_s}bit is not a whole number of bytes per second; the "
                       f"kernel uses {kept}bit, so give a multiple of 8 bits.")
        if rate.bits_per_s > FAST_RATE_BITS_PER_S:
            packet_us = FULL_PACKET_BYTES * 8 / rate.bits_per_s * 1e6
            out.append(
                f"rate {format_rate_human(rate.bits_per_s)} is beyond what netem paces accurately: a "
                f"{FULL_PACKET_BYTES}-byte packet lasts {packet_us:.1f}us, finer than the kernel's "
                "timer granularity, so netem sends bursts and the achieved rate is approximate; "
                "measure the rate you get, or drop the rate if this link is not the bottleneck.")
    slot = netem.slot
    if slot is not None:
        spacing = slot.min_delay_ms if slot.distribution is None else (slot.delay_ms or 0.0)
        if spacing < _SLOT_MIN_MS:
            out.append(
                f"slot spacing {ms(spacing, nanoseconds=True)} is below 1ms: timer and softirq "
                "granularity smear slots this short, so bursts will not be delivered on time; "
                "use slots of 1ms or more.")

    # -- queue limit -------------------------------------------------------------------------
    if rate is not None and d is not None and d.delay_ms > 0:
        window_ms = d.delay_ms + d.jitter_ms
        in_flight = rate.bits_per_s / 8 * (window_ms / 1000) / FULL_PACKET_BYTES
        needed = math.ceil(in_flight)
        if netem.limit_packets < needed:
            out.append(
                f"limit {netem.limit_packets} packets is below the ~{needed} {FULL_PACKET_BYTES}-byte "
                f"packets in flight at {format_rate_human(rate.bits_per_s)} with {ms(window_ms)} of "
                f"delay, so netem will drop packets at its queue limit once the link is busy; raise "
                f"it to at least limit {needed}.")

    # -- ecn ---------------------------------------------------------------------------------
    if netem.ecn:
        out.append("ecn only marks packets of ECN-capable flows (ECT set); packets of other flows are "
                   "still dropped, so make sure the traffic under test negotiates ECN.")
    return out
