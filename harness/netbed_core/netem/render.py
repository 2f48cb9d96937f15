"""Render a :class:`Netem` back to text: exact ``tc`` tokens, netbed syntax, or a summary.

* :func:`to_tc_args` -- the arguments after ``tc qdisc replace dev X root netem``, in
  canonical order, with explicit units and exact numbers, so that
  ``parse(" ".join(to_tc_args(n))) == n`` for every ``n`` except a partition (which tc knows
  as ``loss 100%``).
* :func:`to_text` -- netbed syntax: like the tc arguments, but ``partition`` stays
  ``partition`` and a default ``limit`` is left out; ``parse(to_text(n)) == n`` always.
* :func:`describe` -- a short human summary for logs and reports.

Standard library only.
"""

from __future__ import annotations

from .model import DEFAULT_LIMIT_PACKETS, GemodelLoss, Netem, RandomLoss, Slot, StateLoss
from .units import format_percent, format_rate, format_rate_human, format_time_ms

__all__ = ["describe", "to_tc_args", "to_text"]


def _slot_args(slot: Slot) -> list[str]:
    if slot.distribution is None:
        out = ["slot", format_time_ms(slot.min_delay_ms, nanoseconds=True)]
        if slot.max_delay_ms != slot.min_delay_ms:
            out.append(format_time_ms(slot.max_delay_ms, nanoseconds=True))
    else:
        assert slot.delay_ms is not None and slot.jitter_ms is not None  # guaranteed by Slot
        out = ["slot", "distribution", slot.distribution,
               format_time_ms(slot.delay_ms, nanoseconds=True),
               format_time_ms(slot.jitter_ms, nanoseconds=True)]
    if slot.max_packets is not None:
        out += ["packets", str(slot.max_packets)]
    if slot.max_bytes is not None:
        out += ["bytes", str(slot.max_bytes)]
    return out


def _args(n: Netem, *, include_default_limit: bool) -> list[str]:
    out: list[str] = []
    if include_default_limit or n.limit_packets != DEFAULT_LIMIT_PACKETS:
        out += ["limit", str(n.limit_packets)]
    if n.delay is not None:
        d = n.delay
        out += ["delay", format_time_ms(d.delay_ms)]
        if d.jitter_ms != 0 or d.correlation_pct != 0:
            out.append(format_time_ms(d.jitter_ms))
            if d.correlation_pct != 0:
                out.append(format_percent(d.correlation_pct))
        if d.distribution is not None:
            out += ["distribution", d.distribution]
    loss = n.loss
    if isinstance(loss, RandomLoss):
        out += ["loss", "random", format_percent(loss.pct)]
        if loss.correlation_pct != 0:
            out.append(format_percent(loss.correlation_pct))
    elif isinstance(loss, StateLoss):
        out += ["loss", "state"] + [format_percent(p) for p in (
            loss.p13_pct, loss.p31_pct, loss.p32_pct, loss.p23_pct, loss.p14_pct)]
    elif isinstance(loss, GemodelLoss):
        out += ["loss", "gemodel"] + [format_percent(p) for p in (
            loss.p_pct, loss.r_pct, loss.one_minus_h_pct, loss.one_minus_k_pct)]
    for name, section in (("duplicate", n.duplicate), ("corrupt", n.corrupt)):
        if section is not None:
            out += [name, format_percent(section.pct)]
            if section.correlation_pct != 0:
                out.append(format_percent(section.correlation_pct))
    if n.reorder is not None:
        r = n.reorder
        out += ["reorder", format_percent(r.pct)]
        if r.correlation_pct != 0:
            out.append(format_percent(r.correlation_pct))
        if r.gap != 1:
            out += ["gap", str(r.gap)]
    if n.rate is not None:
        rate = n.rate
        out += ["rate", format_rate(rate.bits_per_s)]
        positional = [rate.packet_overhead_bytes, rate.cell_size_bytes, rate.cell_overhead_bytes]
        while positional and positional[-1] == 0:
            positional.pop()
        out += [str(v) for v in positional]
    if n.slot is not None:
        out += _slot_args(n.slot)
    if n.ecn:
        out.append("ecn")
    if n.seed is not None:
        out += ["seed", str(n.seed)]
    return out


def to_tc_args(netem: Netem) -> list[str]:
    """The exact tokens for ``tc qdisc replace dev X root netem <tokens>``.

    Canonical order: ``limit delay [distribution] loss duplicate corrupt reorder [gap] rate slot
    ecn [seed]``. Times carry a unit (``100ms``, ``4350us``), percentages a ``%``, rates are in
    ``bit``; the limit is always given. A partition renders as ``loss 100%``.
    """
    if netem.partition:
        return ["limit", str(netem.limit_packets), "loss", "100%"]
    return _args(netem, include_default_limit=True)


def to_text(netem: Netem) -> str:
    """netbed syntax for ``netem``: parses back to an equal model (``""`` when pristine)."""
    if netem.partition:
        return "partition"
    return " ".join(_args(netem, include_default_limit=False))


def _pct(p: float) -> str:
    return format_percent(p)


def describe(netem: Netem) -> str:
    """A short one-line human summary, e.g. ``"delay 100ms ±10ms (normal), loss 1%, rate 10Mbit/s"``."""
    if netem.partition:
        return "partition (every packet dropped)"
    if netem.is_pristine:
        return "no impairment"
    parts: list[str] = []
    if netem.delay is not None:
        d = netem.delay
        text = f"delay {format_time_ms(d.delay_ms)}"
        if d.jitter_ms:
            text += f" ±{format_time_ms(d.jitter_ms)}"
        extra = [f"{_pct(d.correlation_pct)} correlated"] if d.correlation_pct else []
        if d.distribution:
            extra.append(d.distribution)
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    loss = netem.loss
    if isinstance(loss, RandomLoss):
        corr = f" ({_pct(loss.correlation_pct)} correlated)" if loss.correlation_pct else ""
        parts.append(f"loss {_pct(loss.pct)}{corr}")
    elif isinstance(loss, StateLoss):
        parts.append(f"4-state loss (p13 {_pct(loss.p13_pct)}, p31 {_pct(loss.p31_pct)}, "
                     f"p32 {_pct(loss.p32_pct)}, p23 {_pct(loss.p23_pct)}, p14 {_pct(loss.p14_pct)})")
    elif isinstance(loss, GemodelLoss):
        parts.append(f"Gilbert-Elliott loss (p {_pct(loss.p_pct)}, r {_pct(loss.r_pct)}, "
                     f"1-h {_pct(loss.one_minus_h_pct)}, 1-k {_pct(loss.one_minus_k_pct)})")
    for name, section in (("duplicate", netem.duplicate), ("corrupt", netem.corrupt)):
        if section is not None:
            corr = f" ({_pct(section.correlation_pct)} correlated)" if section.correlation_pct else ""
            parts.append(f"{name} {_pct(section.pct)}{corr}")
    if netem.reorder is not None:
        r = netem.reorder
        extra = [f"{_pct(r.correlation_pct)} correlated"] if r.correlation_pct else []
        if r.gap != 1:
            extra.append(f"gap {r.gap}")
        parts.append(f"reorder {_pct(r.pct)}" + (f" ({', '.join(extra)})" if extra else ""))
    if netem.rate is not None:
        rate = netem.rate
        extra = []
        if rate.packet_overhead_bytes:
            extra.append(f"{rate.packet_overhead_bytes:+d}B/packet")
        if rate.cell_size_bytes:
            extra.append(f"{rate.cell_size_bytes}B cells")
        if rate.cell_overhead_bytes:
            extra.append(f"{rate.cell_overhead_bytes:+d}B/cell")
        text = f"rate {format_rate_human(rate.bits_per_s)}"
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    if netem.slot is not None:
        s = netem.slot
        if s.distribution is None:
            text = f"slots every {format_time_ms(s.min_delay_ms, nanoseconds=True)}"
            if s.max_delay_ms != s.min_delay_ms:
                text += f"-{format_time_ms(s.max_delay_ms, nanoseconds=True)}"
        else:
            assert s.delay_ms is not None and s.jitter_ms is not None
            text = (f"slots every {format_time_ms(s.delay_ms, nanoseconds=True)} "
                    f"±{format_time_ms(s.jitter_ms, nanoseconds=True)} ({s.distribution})")
        extra = []
        if s.max_packets is not None:
            extra.append(f"≤{s.max_packets} packets")
        if s.max_bytes is not None:
            extra.append(f"≤{s.max_bytes} bytes")
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    if netem.ecn:
        parts.append("ECN marks instead of drops")
    if netem.limit_packets != DEFAULT_LIMIT_PACKETS:
        parts.append(f"limit {netem.limit_packets} packets")
    if netem.seed is not None:
        parts.append(f"seed {netem.seed}")
    return ", ".join(parts)

