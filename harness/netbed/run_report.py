"""The run report: every pytest session with the netbed plugin writes reports/index.html and
reports/index.json covering every test of the run, the user's own included.

Per test: outcome, duration, the impairment active during it (with seed and backend), the
router's counters, links to its artifacts (test_record.py: anything a test or the harness
added, e.g. process logs of a failing test), and plots of its sequence workloads.  The
conformance table (report.py) is a section of the page.  A run that did not cover the whole
suite (explicit paths, -k/-m/--lf deselection, a stop after failures, Ctrl-C) says so at the
top, and the conformance section says its table is partial.

Retention (reports/ never grows without bound): index.html, index.json and conformance.md are
overwritten by every run; per-test artifacts go to reports/runs/RUN_ID/ (RUN_ID = UTC start
time and pid, so names sort by age), and at the end of each run only the newest
``--netbed-report-keep`` (default :data:`KEEP_RUNS`) such folders are kept.  Nothing else in
reports/ is touched.  ``--netbed-report=off`` writes nothing.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re
import shutil
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import plots, test_record, timeline
from .report import RUN_REPORT_PLUGIN, ConformanceReport, update_outcome

#: Run folders (reports/runs/RUN_ID) kept by default.
KEEP_RUNS = 10
INDEX_HTML = "index.html"
INDEX_JSON = "index.json"
RUNS_DIR = "runs"
#: A run folder's name: what this module creates, and the only folders it removes.
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-\d+$")
#: Characters of a failing test's traceback kept in the report.
MAX_LONGREPR_CHARS = 6000
#: The attribute of a test's teardown report carrying its record (a plain dict; crosses xdist).
RECORD_ATTR = "netbed_record"
#: workerinput key carrying the run folder to pytest-xdist workers.
WORKER_RUN_DIR = "netbed_run_dir"
CONFORMANCE_PLUGIN = "netbed-conformance-report"


def add_options(group: Any) -> None:
    """The run report's options, in the netbed option group."""
    group.addoption("--netbed-report", default="reports", metavar="DIR",
                    help="where the run report goes (relative to the rootdir; default: reports); 'off' writes none")
    group.addoption("--netbed-report-keep", type=int, default=KEEP_RUNS, metavar="N",
                    help=f"per-run artifact folders kept under DIR/runs (default {KEEP_RUNS})")


@dataclass
class TestRow:
    """One test's line in the report."""

    nodeid: str
    outcome: str = "not run"
    message: str = ""
    duration_s: float = 0.0
    longrepr: str = ""
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"nodeid": self.nodeid, "outcome": self.outcome, "message": self.message,
                "duration_s": round(self.duration_s, 4), "longrepr": self.longrepr, **self.record}


def new_run_id(now: _dt.datetime | None = None, pid: int | None = None) -> str:
    now = now or _dt.datetime.now(_dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid() if pid is None else pid}"


def prune_runs(runs_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` run folders (only names matching RUN_ID_PATTERN)."""
    if not runs_dir.is_dir():
        return []
    found = sorted(p for p in runs_dir.iterdir() if p.is_dir() and RUN_ID_PATTERN.match(p.name))
    doomed = found[:-keep] if keep > 0 else found
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


class Recorder:
    """Opens each test's record as it starts and hands it, as a plain dict, to its teardown
    report (so it reaches the controller under pytest-xdist).  Active with or without the run
    report: a failing test's table and the JUnit properties come from the record too."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        test_record.begin(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
            None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when == "teardown":
            record = test_record.end()
            if record is not None and record.nodeid == item.nodeid:
                setattr(report, RECORD_ATTR, record.to_dict())
        return report


class RunReport:
    """Collects every test's reports and records; writes the run report at session end."""

    def __init__(self, config: pytest.Config, directory: Path, keep: int) -> None:
        self.config = config
        self.directory = directory
        self.keep = keep
        self.rows: dict[str, TestRow] = {}
        self.deselected = 0
        self.collected = 0
        self.written: list[Path] = []
        self.error = ""
        worker_dir = getattr(config, "workerinput", {}).get(WORKER_RUN_DIR)
        self.run_dir = Path(worker_dir) if worker_dir else directory / RUNS_DIR / new_run_id()
        self.run_id = self.run_dir.name
        test_record.set_run_dir(self.run_dir)

    # -- pytest-xdist: workers put artifacts into the controller's run folder ----------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_RUN_DIR] = str(self.run_dir)

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.setdefault(report.nodeid, TestRow(report.nodeid))
        update_outcome(row, report)
        row.duration_s += float(getattr(report, "duration", 0.0) or 0.0)
        if report.failed and report.longrepr and not row.longrepr:
            row.longrepr = str(report.longrepr)[-MAX_LONGREPR_CHARS:]
        record = getattr(report, RECORD_ATTR, None)
        if isinstance(record, dict):
            row.record = record

    # -- writing -----------------------------------------------------------------------
    def partial_reasons(self, session: pytest.Session, exitstatus: int) -> list[str]:
        return partial_reasons(self.config, session, exitstatus, self.deselected,
                               self.collected, sum(1 for r in self.rows.values() if r.outcome != "not run"))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes the report from every worker's reports
        partial = self.partial_reasons(session, int(exitstatus))
        conformance = self.config.pluginmanager.get_plugin(CONFORMANCE_PLUGIN)
        if not isinstance(conformance, ConformanceReport):
            conformance = None
        try:
            self.written = self.write(partial, conformance)
        except OSError as exc:  # a full disk or a read-only folder must not fail the run
            self.written = []
            self.error = f"netbed: the run report could not be written to {self.directory}: {exc}"
        prune_runs(self.directory / RUNS_DIR, self.keep)

    def write(self, partial: Sequence[str], conformance: ConformanceReport | None) -> list[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        rows = [self._relative(r.to_dict()) for r in self.rows.values() if r.outcome != "not run"]
        data = {
            "run_id": self.run_id,
            "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "partial": bool(partial),
            "partial_reasons": list(partial),
            "summary": summary(rows),
            "retention": {"overwritten": [INDEX_HTML, INDEX_JSON, "conformance.md"],
                          "runs_dir": RUNS_DIR, "runs_kept": self.keep},
            "tests": rows,
            "conformance": None,
        }
        written = []
        conformance_html = ""
        if conformance is not None and conformance.has_results():
            written += conformance.write(self.directory, partial)
            props, columns, _cells = conformance.table()
            data["conformance"] = {"properties": len(props), "conditions": columns, "partial": bool(partial),
                                   "markdown": "conformance.md"}
            conformance_html = conformance.html_section(partial)
        (self.directory / INDEX_JSON).write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        (self.directory / INDEX_HTML).write_text(render_html(data, conformance_html), encoding="utf-8")
        return [self.directory / INDEX_HTML, self.directory / INDEX_JSON, *written]

    def _relative(self, row: dict[str, Any]) -> dict[str, Any]:
        """Artifact paths inside the report folder, relative to it (so the folder can be moved)."""
        artifacts = {}
        for name, path in (row.get("artifacts") or {}).items():
            p = Path(path)
            try:
                artifacts[name] = str(p.resolve().relative_to(self.directory.resolve()))
            except ValueError:
                artifacts[name] = str(p)
        row["artifacts"] = artifacts
        return row

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.error:
            terminalreporter.write_line(self.error, yellow=True)
        if self.written:
            terminalreporter.write_line(f"netbed run report: {self.written[0]} ({len(self.rows)} tests)")


def partial_reasons(config: pytest.Config, session: pytest.Session, exitstatus: int, deselected: int,
                    collected: int, ran: int) -> list[str]:
    """Why this run did not cover the whole suite (empty: it did)."""
    reasons = []
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        default = [Path(config.rootpath, p).resolve() for p in config.getini("testpaths")] or [config.rootpath]
        given = [Path(config.invocation_params.dir, a.split("::")[0]).resolve() for a in config.args]
        if sorted(given) != sorted(default) or any("::" in a for a in config.args):
            reasons.append("only " + ", ".join(config.args) + " selected")
    if deselected:
        reasons.append(f"{deselected} tests deselected (-k, -m, --lf or a plugin)")
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        reasons.append("the run was interrupted (Ctrl-C, or errors during collection)")
    elif session.shouldfail or session.shouldstop:
        reasons.append(f"the run stopped early ({session.shouldfail or session.shouldstop})")
    if collected and ran < collected and not reasons:
        reasons.append(f"{collected - ran} of the {collected} collected tests did not run")
    return reasons


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    return dict(sorted(counts.items()))


STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}"
         "th,td{border:1px solid #bbb;padding:3px 6px;vertical-align:top;font-size:13px}"
         "td.prop{text-align:left}.pass,.passed,.xfailed{background:#d4f7d4}"
         ".fail,.failed,.error,.xpassed{background:#f7c6c6;font-weight:bold}.skip,.skipped{background:#eee;color:#666}"
         ".partial{background:#fff3cd;border:1px solid #e0b000;padding:.5em 1em}pre{background:#f6f6f6;padding:.5em;"
         "overflow-x:auto;font-size:12px}.plots svg{margin:4px}code{font-size:12px}")


def _anchor(index: int) -> str:
    return f"t{index}"


def _links(artifacts: Mapping[str, str]) -> str:
    out = []
    for name, path in artifacts.items():
        href = path if not Path(path).is_absolute() else Path(path).as_uri()
        out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(name)}</a>')
    return "<br>".join(out)


def _counters(network: Mapping[str, Any] | None) -> str:
    if not network:
        return ""
    return "<br>".join(f"{html.escape(d)}: {html.escape(timeline.counters_line(e.get('counters', {})))}"
                       for d, e in network.get("directions", {}).items() if e.get("during"))


def sequence_plots(seq: Mapping[str, Any], network: Mapping[str, Any] | None) -> str:
    """The three plots of one sequence workload (delay over time, arrivals and losses, histogram)."""
    label = str(seq.get("label", "sequence"))
    delays = [(float(x), float(y)) for x, y in seq.get("delays", [])]
    configured = None
    direction = seq.get("direction")
    if network and direction in network.get("directions", {}):
        during = network["directions"][direction].get("during") or []
        if during:
            configured = (during[-1].get("spec") or {}).get("delay")
    density, span, marker = plots.configured_delay_density(configured)
    parts = [
        plots.scatter(delays, f"one-way delay over time: {label}", "send time (s)", "delay (ms)"),
        plots.stacked_bars([("arrived", seq.get("arrivals_per_bin", [])), ("lost", seq.get("losses_per_bin", []))],
                           float(seq.get("bin_s", 0.0)), f"arrivals and losses: {label}", "send time (s)",
                           "datagrams"),
        plots.histogram([y for _x, y in delays], f"delay histogram vs configured: {label}", "one-way delay (ms)",
                        density=density, density_range=span, marker=marker),
    ]
    caption = (f"{seq.get('sent')} sent at {seq.get('rate_pps')} pps, {seq.get('arrived')} arrived, "
               f"{seq.get('lost')} lost ({direction or 'direction unknown'})")
    return f'<div class="plots"><p>{html.escape(caption)}</p>{"".join(parts)}</div>'


def render_html(data: Mapping[str, Any], conformance_html: str = "") -> str:
    """The whole page (no script: it renders the same everywhere and logs nothing)."""
    rows = data["tests"]
    counts = ", ".join(f"{n} {k}" for k, n in data["summary"].items()) or "no tests"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>netbed run report</title>", f"<style>{STYLE}</style></head><body>",
           "<h1>netbed run report</h1>"]
    if data["partial"]:
        out.append('<p class="partial" id="partial"><strong>Partial run:</strong> '
                   + html.escape("; ".join(data["partial_reasons"]))
                   + ". Only the tests this run selected are shown; this is not the whole suite.</p>")
    out.append(f"<p>Run {html.escape(data['run_id'])}, generated {html.escape(data['generated'])}: "
               f"{len(rows)} tests ({html.escape(counts)}). Artifacts of the last {data['retention']['runs_kept']} "
               f"runs are kept under <code>{html.escape(data['retention']['runs_dir'])}/</code>.</p>")
    out.append('<h2 id="tests">Tests</h2><table id="tests-table"><thead><tr><th>Test</th><th>Outcome</th>'
               "<th>Duration (s)</th><th>Impairment during the test</th><th>Seed</th><th>Backend</th>"
               "<th>Router counters (end of test)</th><th>Artifacts</th></tr></thead><tbody>")
    details = []
    for i, row in enumerate(rows):
        network = row.get("network")
        has_details = bool(network and network.get("changes")) or row.get("sequences") or row.get("longrepr") \
            or row.get("notes")
        name = html.escape(row["nodeid"])
        if has_details:
            name = f'<a href="#{_anchor(i)}">{name}</a>'
        message = f"<br><small>{html.escape(row['message'])}</small>" if row.get("message") else ""
        out.append(
            f"<tr><td><code>{name}</code>{message}</td><td class=\"{html.escape(row['outcome'])}\">"
            f"{html.escape(row['outcome'])}</td><td>{row['duration_s']:.2f}</td>"
            f"<td>{html.escape(timeline.impairment_summary(network) if network else '')}</td>"
            f"<td>{html.escape(timeline.seed_summary(network) if network else '')}</td>"
            f"<td>{html.escape(str(network.get('backend', '')) if network else '')}</td>"
            f"<td>{_counters(network)}</td><td>{_links(row.get('artifacts') or {})}</td></tr>")
        if has_details:
            details.append(_details(i, row))
    out.append("</tbody></table>")
    if details:
        out.append('<h2 id="details">Details</h2>')
        out += details
    if conformance_html:
        out.append(conformance_html)
    else:
        out.append('<section id="conformance"><h2>Socket conformance</h2><p>No test carrying a '
                   "<code>property</code> marker ran.</p></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _details(index: int, row: Mapping[str, Any]) -> str:
    out = [f'<section id="{_anchor(index)}" class="test"><h3><code>{html.escape(row["nodeid"])}</code> '
           f"({html.escape(row['outcome'])})</h3>"]
    network = row.get("network")
    if network:
        when = "active at the failure" if row.get("outcome") in ("failed", "error") else "active at the end"
        out.append(f"<pre>{html.escape(timeline.render_failure(network, when=when))}</pre>")
    for note in row.get("notes") or []:
        out.append(f"<p><em>{html.escape(note)}</em></p>")
    for seq in row.get("sequences") or []:
        out.append(sequence_plots(seq, network))
    if row.get("longrepr"):
        out.append(f"<details><summary>failure</summary><pre>{html.escape(row['longrepr'])}</pre></details>")
    out.append("</section>")
    return "".join(out)


RECORDER_PLUGIN = "netbed-test-record"


def configure(config: pytest.Config) -> None:
    """Register the per-test recorder, and the run report unless --netbed-report=off (the
    netbed plugin calls this)."""
    if not config.pluginmanager.has_plugin(RECORDER_PLUGIN):
        config.pluginmanager.register(Recorder(), RECORDER_PLUGIN)
    if config.pluginmanager.has_plugin(RUN_REPORT_PLUGIN):
        return
    where = str(config.getoption("--netbed-report", "reports"))
    if where == "off":
        return
    keep = int(config.getoption("--netbed-report-keep", KEEP_RUNS))
    if keep < 1:
        raise pytest.UsageError(f"--netbed-report-keep={keep}: keep at least 1 run folder")
    directory = Path(config.rootpath, where)
    config.pluginmanager.register(RunReport(config, directory, keep), RUN_REPORT_PLUGIN)
