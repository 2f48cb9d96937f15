"""What one test leaves for the run report: its network, its sequence workloads, its artifacts.

The pytest plugin opens a :class:`TestRecord` when a test starts (``begin``) and the run
report (run_report.py) reads it when the test's reports are made.  Inside a test, and in
harness code a test calls, :func:`current` is the running test's record (None outside one):

    from netbed import test_record
    path = test_record.artifact_path("server.log")   # a file under reports/runs/RUN/TEST/
    ...write it...
    test_record.add_artifact("server log", path)      # a link in reports/index.html

``measure.run_sequence`` records its arrivals here by itself (:func:`record_sequence`), so a
test that ran a sequence workload gets plots without asking.  A record travels to the report
as a plain dict (:meth:`TestRecord.to_dict`), also from pytest-xdist workers.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Delay values kept per sequence workload (evenly thinned beyond it): enough for a histogram
#: and a time series, small enough for index.json.
MAX_DELAY_POINTS = 2000
#: Time bins of the arrivals-and-losses plot.
TIME_BINS = 60
#: Sequence workloads kept per test (the first ones).
MAX_SEQUENCES = 8


@dataclass
class TestRecord:
    """One test's record.  `artifacts`: {name: path}, path relative to the report folder when
    it lies inside it; `network`: timeline.network_record(...) (None without a testbed);
    `notes`: what could not be collected, one line each (never fails the test)."""

    nodeid: str
    directory: Path | None = None
    network: dict[str, Any] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start_events: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "artifacts": dict(self.artifacts), "sequences": list(self.sequences),
                "notes": list(self.notes)}


_current: TestRecord | None = None
#: Where this run keeps per-test artifacts (reports/runs/RUN), set by the run report; None: no report.
_run_dir: Path | None = None


def set_run_dir(path: Path | None) -> None:
    global _run_dir
    _run_dir = path


def run_dir() -> Path | None:
    return _run_dir


def begin(nodeid: str) -> TestRecord:
    """Open the record of the test `nodeid` (the plugin calls it at the start of each test)."""
    global _current
    _current = TestRecord(nodeid)
    return _current


def end() -> TestRecord | None:
    """Close the running test's record and return it."""
    global _current
    record, _current = _current, None
    return record


def current() -> TestRecord | None:
    """The running test's record, None outside a test."""
    return _current


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150] or "test"


def artifact_path(name: str) -> Path | None:
    """A path for an artifact file `name` of the running test, in its own folder under this
    run's folder (created); None outside a test, when this run writes no report, or when the
    folder cannot be made (then the report's notes say why: a report never fails a test)."""
    record = _current
    if record is None or _run_dir is None:
        return None
    if record.directory is None:
        folder = _run_dir / _slug(record.nodeid)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            record.notes.append(f"artifact {name!r} not kept: {exc}")
            return None
        record.directory = folder
    return record.directory / Path(name).name


def add_artifact(name: str, path: str | Path) -> None:
    """Link `path` from the running test's row of the report, as `name` (outside a test: ignored,
    there is no row)."""
    record = _current
    if record is None:
        return
    record.artifacts[name] = str(path)


def _thin(values: Sequence[Any], limit: int) -> list[Any]:
    if len(values) <= limit:
        return list(values)
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def sequence_summary(arrivals: Iterable[Sequence[Any]], sent: int, first_seq: int, rate_pps: float,
                     label: str, direction: str | None) -> dict[str, Any]:
    """The plot data of one sequence workload: `arrivals` are recv_sequence rows
    (seq, send_ns, recv_ns, ...), `sent` datagrams numbered from `first_seq` at `rate_pps`.

    delays: [send offset s, one-way delay ms] per arrival (thinned to MAX_DELAY_POINTS);
    bins: per TIME_BINS slice of the sequence numbers (their send time at `rate_pps`), how many
    arrived and how many never did."""
    rows = [(int(r[0]), int(r[1]), int(r[2])) for r in arrivals]
    start_ns = min((r[1] for r in rows), default=0)
    delays = [[round((s - start_ns) / 1e9, 6), round((rcv - s) / 1e6, 4)] for _seq, s, rcv in rows]
    arrived = {seq for seq, _s, _r in rows if first_seq <= seq < first_seq + sent}
    per_bin = max(1, -(-sent // TIME_BINS))  # datagrams per bin, rounded up
    bins = max(1, -(-sent // per_bin))  # so that no bin at the end stays empty
    arrivals_per_bin = [0] * bins
    losses_per_bin = [0] * bins
    for offset in range(sent):
        b = min(bins - 1, offset // per_bin)
        if first_seq + offset in arrived:
            arrivals_per_bin[b] += 1
        else:
            losses_per_bin[b] += 1
    ms = [d[1] for d in delays]
    return {
        "label": label,
        "direction": direction,
        "sent": sent,
        "arrived": len(arrived),
        "lost": sent - len(arrived),
        "rate_pps": rate_pps,
        "bin_s": per_bin / rate_pps if rate_pps > 0 else 0.0,
        "arrivals_per_bin": arrivals_per_bin,
        "losses_per_bin": losses_per_bin,
        "delays": _thin(delays, MAX_DELAY_POINTS),
        "delay_median_ms": statistics.median(ms) if ms else None,
    }


def record_sequence(arrivals: Iterable[Sequence[Any]], sent: int, *, first_seq: int = 0, rate_pps: float,
                    label: str = "sequence", direction: str | None = None) -> None:
    """Keep one sequence workload's arrivals for the report's plots (outside a test: ignored).
    `direction` ("to-server", "to-client") lets the report draw the configured delay beside it."""
    record = _current
    if record is None or len(record.sequences) >= MAX_SEQUENCES:
        return
    record.sequences.append(sequence_summary(arrivals, sent, first_seq, rate_pps, label, direction))
