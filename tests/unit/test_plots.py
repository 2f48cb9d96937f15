"""The run report's inline SVG plots (netbed/plots.py): well-formed, drawing what they are given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from netbed import plots

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on malformed XML


def test_scatter_draws_one_dot_per_point_and_escapes_its_title() -> None:
    root = parse(plots.scatter([(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)], "delay <ms>", "t (s)", "ms"))
    assert len(root.findall(f"{SVG}circle")) == 3
    assert root.find(f"{SVG}title").text == "delay <ms>"  # type: ignore[union-attr]


def test_stacked_bars_draw_one_rect_per_non_zero_count_plus_frame_and_legend() -> None:
    root = parse(plots.stacked_bars([("arrived", [3, 0, 2]), ("lost", [1, 0, 0])], 0.5, "x", "t", "n"))
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 1 + 3 + 2  # frame, three bars, two legend swatches


def test_histogram_has_area_one() -> None:
    values = [float(v % 10) for v in range(1000)]
    root = parse(plots.histogram(values, "h", "ms", bins=10))
    bars = [r for r in root.findall(f"{SVG}rect") if r.get("fill-opacity")]
    assert len(bars) == 10
    # equal counts in equal bins: equal heights
    assert len({round(float(r.get("height", 0)), 1) for r in bars}) == 1


@pytest.mark.parametrize(("delay", "expect_curve", "marker"), [
    ({"delay_ms": 50.0, "jitter_ms": 10.0, "correlation_pct": 0.0, "distribution": None}, True, None),
    ({"delay_ms": 50.0, "jitter_ms": 10.0, "correlation_pct": 0.0, "distribution": "normal"}, True, None),
    ({"delay_ms": 50.0, "jitter_ms": 10.0, "correlation_pct": 0.0, "distribution": "pareto"}, False, 50.0),
    ({"delay_ms": 50.0, "jitter_ms": 10.0, "correlation_pct": 25.0, "distribution": None}, False, 50.0),
    ({"delay_ms": 20.0, "jitter_ms": 0.0, "correlation_pct": 0.0, "distribution": None}, False, 20.0),
    (None, False, None),
])
def test_configured_density_integrates_to_one_where_it_has_a_closed_form(
        delay: dict[str, object] | None, expect_curve: bool, marker: float | None) -> None:
    density, span, mark = plots.configured_delay_density(delay)
    assert (density is not None) == expect_curve and mark == marker
    if density is not None and span is not None:
        steps = 20000
        width = (span[1] - span[0]) / steps
        area = sum(density(span[0] + (i + 0.5) * width) for i in range(steps)) * width
        assert area == pytest.approx(1.0, abs=0.01)


def test_empty_data_says_so() -> None:
    for svg in (plots.scatter([], "a", "x", "y"), plots.histogram([], "b", "x"),
                plots.stacked_bars([], 1.0, "c", "x", "y")):
        assert "no data" in svg and parse(svg) is not None


def test_arrival_bins_cover_the_sequence_without_empty_bins_at_the_end() -> None:
    from netbed.test_record import sequence_summary

    rows = [[seq, seq * 1_000_000, seq * 1_000_000 + 1_000_000, 64, True] for seq in range(200) if seq != 5]
    summary = sequence_summary(rows, 200, 0, 1000.0, "x", None)
    bins = summary["arrivals_per_bin"]
    assert sum(bins) == 199 and sum(summary["losses_per_bin"]) == 1 and all(bins)
    assert summary["bin_s"] * len(bins) == pytest.approx(0.2)
