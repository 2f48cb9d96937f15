"""Small inline SVG plots for the run report, standard library only (no plotting dependency).

Three kinds, each a function returning one ``<svg>`` element as text:
- :func:`scatter`: points (one-way delay over time);
- :func:`stacked_bars`: counts per time bin (arrivals and losses);
- :func:`histogram`: a distribution of values, with an optional density curve drawn over it
  (the configured delay distribution, :func:`configured_delay_density`).

Coordinates are data units; every figure is WIDTH x HEIGHT px with its axes' ranges printed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

WIDTH = 520
HEIGHT = 220
#: Plot area margins, px: left (y labels), right, top (title), bottom (x labels).
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 36
#: Colours of the series (first: arrivals/measured, second: losses/configured).
COLOURS = ("#3366cc", "#dc3912", "#109618")
#: The y range reaches this factor above the data, leaving the top of the plot to the legend.
LEGEND_ROOM = 1.25

Density = Callable[[float], float]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _frame(title: str, xlabel: str, ylabel: str, x0: float, x1: float, y0: float, y1: float, body: list[str],
           legend: Sequence[tuple[str, str]] = ()) -> str:
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title, quote=True)}">',
           f'<title>{html.escape(title)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>',
           f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
           f'<text x="{LEFT}" y="{HEIGHT - 20}" font-size="11">{_fmt(x0)}</text>',
           f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 20}" font-size="11" text-anchor="end">{_fmt(x1)}</text>',
           f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
           f'{html.escape(xlabel)}</text>',
           f'<text x="{LEFT - 4}" y="{TOP + ph}" font-size="11" text-anchor="end">{_fmt(y0)}</text>',
           f'<text x="{LEFT - 4}" y="{TOP + 10}" font-size="11" text-anchor="end">{_fmt(y1)}</text>',
           f'<text x="12" y="{TOP + ph / 2}" font-size="11" text-anchor="middle" '
           f'transform="rotate(-90 12 {TOP + ph / 2})">{html.escape(ylabel)}</text>']
    out += body
    for i, (name, colour) in enumerate(legend):
        x = LEFT + 8 + i * 150
        out.append(f'<rect x="{x}" y="{TOP + 6}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="{TOP + 15}" font-size="11">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _span(lo: float, hi: float) -> tuple[float, float]:
    """A non-empty range containing [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _scale(x0: float, x1: float, y0: float, y1: float) -> tuple[Callable[[float], float], Callable[[float], float]]:
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return (lambda x: LEFT + (x - x0) / (x1 - x0) * pw), (lambda y: TOP + ph - (y - y0) / (y1 - y0) * ph)


def scatter(points: Sequence[tuple[float, float]], title: str, xlabel: str, ylabel: str) -> str:
    """One dot per (x, y) point."""
    if not points:
        return _frame(title, xlabel, ylabel, 0, 1, 0, 1, [_empty()])
    x0, x1 = _span(min(p[0] for p in points), max(p[0] for p in points))
    # The data's own range (not from 0), padded: jitter of a few ms on a long delay stays visible.
    lo, hi = _span(min(p[1] for p in points), max(p[1] for p in points))
    pad = (hi - lo) * 0.08
    y0, y1 = lo - pad, hi + pad
    sx, sy = _scale(x0, x1, y0, y1)
    dots = [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.5" fill="{COLOURS[0]}"/>' for x, y in points]
    return _frame(title, xlabel, ylabel, x0, x1, y0, y1, dots)


def stacked_bars(series: Sequence[tuple[str, Sequence[int]]], bin_width: float, title: str, xlabel: str,
                 ylabel: str) -> str:
    """Per bin i (x from i*bin_width to (i+1)*bin_width), the series' counts stacked, first at the bottom."""
    bins = max((len(values) for _name, values in series), default=0)
    if bins == 0:
        return _frame(title, xlabel, ylabel, 0, 1, 0, 1, [_empty()])
    top = max(sum(values[i] for _n, values in series if i < len(values)) for i in range(bins))
    x0, x1 = 0.0, bins * bin_width if bin_width > 0 else float(bins)
    width = bin_width if bin_width > 0 else 1.0
    y0, y1 = _span(0.0, float(top) * LEGEND_ROOM)
    sx, sy = _scale(x0, x1, y0, y1)
    body = []
    for i in range(bins):
        base = 0
        for (_name, values), colour in zip(series, COLOURS, strict=False):
            count = values[i] if i < len(values) else 0
            if count:
                left, right = sx(i * width), sx((i + 1) * width)
                body.append(f'<rect x="{left:.1f}" y="{sy(base + count):.1f}" width="{max(right - left - 1, 1):.1f}" '
                            f'height="{sy(base) - sy(base + count):.1f}" fill="{colour}"/>')
            base += count
    legend = [(name, colour) for (name, _v), colour in zip(series, COLOURS, strict=False)]
    return _frame(title, xlabel, ylabel, x0, x1, y0, y1, body, legend)


def histogram(values: Sequence[float], title: str, xlabel: str, *, bins: int = 40,
              density: Density | None = None, density_range: tuple[float, float] | None = None,
              marker: float | None = None) -> str:
    """The values' distribution as a density histogram (area 1); `density` (a function of x, per
    x unit) is drawn over it as a curve across `density_range` (else the values' range), and
    `marker` as a vertical line (e.g. a configured delay without jitter)."""
    if not values:
        return _frame(title, xlabel, "density", 0, 1, 0, 1, [_empty()])
    lo, hi = min(values), max(values)
    if density_range is not None:
        lo, hi = min(lo, density_range[0]), max(hi, density_range[1])
    if marker is not None:
        lo, hi = min(lo, marker), max(hi, marker)
    x0, x1 = _span(lo, hi)
    width = (x1 - x0) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - x0) / width))] += 1
    heights = [c / (len(values) * width) for c in counts]
    curve: list[tuple[float, float]] = []
    if density is not None:
        c0, c1 = density_range if density_range is not None else (x0, x1)
        curve = [(c0 + (c1 - c0) * i / 200, density(c0 + (c1 - c0) * i / 200)) for i in range(201)]
    y0, y1 = _span(0.0, max([*heights, *(y for _x, y in curve)]) * LEGEND_ROOM)
    sx, sy = _scale(x0, x1, y0, y1)
    body = [f'<rect x="{sx(x0 + i * width):.1f}" y="{sy(h):.1f}" width="{max(sx(x0 + width) - sx(x0) - 1, 1):.1f}" '
            f'height="{sy(0) - sy(h):.1f}" fill="{COLOURS[0]}" fill-opacity="0.7"/>'
            for i, h in enumerate(heights) if h > 0]
    legend = [("measured", COLOURS[0])]
    if curve:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve)
        body.append(f'<polyline points="{pts}" fill="none" stroke="{COLOURS[1]}" stroke-width="2"/>')
        legend.append(("configured", COLOURS[1]))
    if marker is not None:
        body.append(f'<line x1="{sx(marker):.1f}" x2="{sx(marker):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                    f'stroke="{COLOURS[1]}" stroke-width="2"/>')
        if not curve:
            legend.append(("configured", COLOURS[1]))
    return _frame(title, xlabel, "density (1/ms)", x0, x1, y0, y1, body, legend)


def _empty() -> str:
    return f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="12">no data</text>'


def configured_delay_density(delay: dict[str, object] | None) -> tuple[Density | None, tuple[float, float] | None,
                                                                         float | None]:
    """(density per ms, its range, a marker) of netem's configured delay section (its wire dict,
    docs/netem.md): uniform jitter is flat over delay ± jitter; `normal` is a Gaussian with
    sigma = jitter; other tables (pareto, paretonormal) and correlated jitter have no closed
    form here and get only a marker at the configured delay, as does a delay without jitter."""
    if not delay:
        return None, None, None
    base = float(delay.get("delay_ms") or 0.0)  # type: ignore[arg-type]
    jitter = float(delay.get("jitter_ms") or 0.0)  # type: ignore[arg-type]
    correlation = float(delay.get("correlation_pct") or 0.0)  # type: ignore[arg-type]
    dist = delay.get("distribution")
    if jitter <= 0 or correlation > 0 or dist not in (None, "normal"):
        return None, None, base
    if dist is None:
        return (lambda x: 1 / (2 * jitter) if base - jitter <= x <= base + jitter else 0.0), \
            (base - jitter * 1.2, base + jitter * 1.2), None

    def normal(x: float) -> float:
        return math.exp(-0.5 * ((x - base) / jitter) ** 2) / (jitter * math.sqrt(2 * math.pi))

    return normal, (base - 4 * jitter, base + 4 * jitter), None
