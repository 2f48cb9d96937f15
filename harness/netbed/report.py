"""pytest plugin: the conformance report, socket property x network condition.

Tests declare the property they verify with a marker; the network condition comes from
the parametrize id of their ``condition`` argument (a value with a ``.name``, or a string),
else from a ``condition`` marker, else it is "clean":

    @pytest.mark.property("stream: bytes arrive once, in order")
    @pytest.mark.parametrize("condition", params("clean", "loss"))
    def test_order(condition): ...

The table has one row per property, one column per condition, each cell the aggregate
outcome of the tests behind it (pass, FAIL, skip, or empty when the property was not checked
under that condition).  The netbed plugin loads this collector in every session; the run
report (run_report.py) shows the table as a section of ``reports/index.html`` and writes
``reports/conformance.md`` (what ``make readme-report`` copies into the README).  A run that
did not cover the whole suite says so at the top of both, and ``make readme-report`` refuses
it.  Nothing is written when no test carrying a ``property`` marker ran.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

PROPERTY_MARK = "property"
CONDITION_MARK = "condition"
#: Keys of the (property, condition) pair each property-marked test report carries (user_properties).
PROPERTY_KEY = "netbed_property"
CONDITION_KEY = "netbed_condition"
#: Columns in this order when present; any other condition follows in order of appearance.
PREFERRED_ORDER = ("clean", "loss", "delay+jitter", "reorder", "duplicate", "corrupt", "rate", "partition")
REPORT_DIR = "reports"
MARKDOWN_NAME = "conformance.md"
#: The run report's plugin name (run_report.py); when it is active it writes this table.
RUN_REPORT_PLUGIN = "netbed-run-report"
#: The first words of a partial table's warning line (conformance.md).
PARTIAL_MARK = "**Partial run:**"


@dataclass
class Result:
    """One test item's outcome for the report."""

    nodeid: str
    prop: str
    condition: str
    outcome: str = "not run"  # passed, failed, error, skipped, xfailed, xpassed
    message: str = ""


@dataclass
class Cell:
    """The tests behind one (property, condition) cell."""

    results: list[Result] = field(default_factory=list)

    def count(self, *outcomes: str) -> int:
        return sum(1 for r in self.results if r.outcome in outcomes)

    @property
    def status(self) -> str:
        """"fail" if any test failed or errored, else "pass" if any passed, else "skip"."""
        if self.count("failed", "error", "xpassed"):
            return "fail"
        if self.count("passed", "xfailed"):
            return "pass"
        return "skip"

    def text(self) -> str:
        total = len(self.results)
        if self.status == "fail":
            return f"FAIL {self.count('failed', 'error', 'xpassed')}/{total}"
        if self.status == "pass":
            skipped = self.count("skipped")
            note = f" ({skipped} skipped)" if skipped else ""
            return f"pass {self.count('passed', 'xfailed')}/{total}{note}"
        return "skip"


class HasOutcome(Protocol):
    """What update_outcome sets: an outcome (passed, failed, error, skipped, xfailed, xpassed,
    or "not run" before any report) and its one-line reason."""

    outcome: str
    message: str


def update_outcome(result: HasOutcome, report: pytest.TestReport) -> None:
    """Fold one phase's report (setup, call, teardown) into a test's outcome."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "setup":
        if report.skipped:
            result.outcome = "xfailed" if xfail else "skipped"
            result.message = _skip_reason(report)
        elif report.failed:
            result.outcome = "error"
            result.message = _first_line(report)
    elif report.when == "call":
        if report.passed:
            result.outcome = "xpassed" if xfail else "passed"
        elif report.skipped:
            result.outcome = "xfailed" if xfail else "skipped"
            result.message = _skip_reason(report)
        else:
            result.outcome = "failed"
            result.message = _first_line(report)
    elif report.when == "teardown" and report.failed and result.outcome in ("passed", "not run"):
        result.outcome = "error"
        result.message = _first_line(report)


def condition_of(item: pytest.Item) -> str:
    """The network condition of a test: its `condition` parameter, marker, else "clean"."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "condition" in callspec.params:
        value = callspec.params["condition"]
        name = getattr(value, "name", None)
        if isinstance(name, str) and name:
            return name
        return str(value) or "clean"
    marker = item.get_closest_marker(CONDITION_MARK)
    if marker is not None and marker.args:
        return str(marker.args[0])
    return "clean"


def property_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(PROPERTY_MARK)
    if marker is None or not marker.args:
        return None
    return str(marker.args[0])


class ConformanceReport:
    """Collects outcomes of property-marked tests; writes the tables at session end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, Result] = {}
        self.written: list[Path] = []

    # -- collection of outcomes ------------------------------------------------------
    # The property and condition travel on each report (user_properties), and outcomes are
    # collected from the reports, not the items: under pytest-xdist the items live in the
    # workers and only the reports reach the controller, which writes the one whole table.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
            None, pytest.TestReport, pytest.TestReport]:
        report = yield
        prop = property_of(item)
        if prop is not None:
            report.user_properties.extend([(PROPERTY_KEY, prop), (CONDITION_KEY, condition_of(item))])
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = dict(p for p in report.user_properties if p[0] in (PROPERTY_KEY, CONDITION_KEY))
        if PROPERTY_KEY not in found:
            return
        result = self.results.get(report.nodeid)
        if result is None:
            result = self.results[report.nodeid] = Result(report.nodeid, str(found[PROPERTY_KEY]),
                                                          str(found[CONDITION_KEY]))
        update_outcome(result, report)

    # -- output ---------------------------------------------------------------------
    def table(self) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
        """(properties in first-seen order, conditions in column order, cells)."""
        props: list[str] = []
        seen_conditions: list[str] = []
        cells: dict[tuple[str, str], Cell] = {}
        for result in self.results.values():
            if result.outcome == "not run":
                continue
            if result.prop not in props:
                props.append(result.prop)
            if result.condition not in seen_conditions:
                seen_conditions.append(result.condition)
            cells.setdefault((result.prop, result.condition), Cell()).results.append(result)
        columns = [c for c in PREFERRED_ORDER if c in seen_conditions]
        columns += [c for c in seen_conditions if c not in columns]
        return props, columns, cells

    def notes(self) -> list[Result]:
        """Failures and skips, with their one-line reasons."""
        return [r for r in self.results.values() if r.outcome in ("failed", "error", "xpassed", "skipped")]

    def markdown(self, partial: Sequence[str] = ()) -> str:
        """The table as Markdown; `partial`: why this run did not cover the whole suite (the
        table then says so first, and `make readme-report` refuses it)."""
        props, columns, cells = self.table()
        lines = [
            "# Socket conformance: property x network condition",
            "",
        ]
        if partial:
            lines += [f"{PARTIAL_MARK} this table covers only the tests this run selected, not the whole suite: "
                      + "; ".join(partial), ""]
        lines += [
            f"Generated by `netbed.report` on {_now()}. Each cell aggregates the tests of one",
            "property under one router condition (pass n/N, FAIL n/N, skip); an empty cell means",
            "the property was not checked under that condition.",
            "",
            "| Property | " + " | ".join(columns) + " |",
            "|---|" + "|".join(":---:" for _ in columns) + "|",
        ]
        for prop in props:
            row = []
            for column in columns:
                cell = cells.get((prop, column))
                if cell is None:
                    row.append("")
                else:
                    text = cell.text()
                    row.append(f"**{text}**" if cell.status == "fail" else text)
            lines.append(f"| {_md_escape(prop)} | " + " | ".join(row) + " |")
        notes = self.notes()
        if notes:
            lines += ["", "## Failures and skips", ""]
            for r in notes:
                lines.append(f"- `{r.nodeid}` — {r.outcome}: {_md_escape(r.message)}")
        return "\n".join(lines) + "\n"

    def html_section(self, partial: Sequence[str] = ()) -> str:
        """The table as an HTML fragment (a section of reports/index.html)."""
        props, columns, cells = self.table()
        out = ['<section id="conformance">',
               "<h2>Socket conformance: property &times; network condition</h2>"]
        if partial:
            out.append('<p class="partial"><strong>Partial:</strong> this table covers only the tests this run '
                       "selected, not the whole suite (" + html.escape("; ".join(partial)) + ").</p>")
        out.append("<p>Each cell aggregates the tests of one property under one router condition "
                   "(pass n/N, FAIL n/N, skip); an empty cell: not checked under that condition.</p>")
        out.append('<table class="conformance"><thead><tr><th>Property</th>'
                   + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead><tbody>")
        for prop in props:
            tds = []
            for column in columns:
                cell = cells.get((prop, column))
                if cell is None:
                    tds.append("<td></td>")
                else:
                    title = html.escape("; ".join(f"{r.nodeid}: {r.outcome}" for r in cell.results), quote=True)
                    tds.append(f"<td class=\"{cell.status}\" title=\"{title}\">{html.escape(cell.text())}</td>")
            out.append(f"<tr><td class=\"prop\">{html.escape(prop)}</td>{''.join(tds)}</tr>")
        out.append("</tbody></table>")
        notes = self.notes()
        if notes:
            out.append("<h3>Failures and skips</h3><ul>")
            out += [f"<li><code>{html.escape(r.nodeid)}</code> &mdash; {html.escape(r.outcome)}: "
                    f"{html.escape(r.message)}</li>" for r in notes]
            out.append("</ul>")
        out.append("</section>")
        return "\n".join(out) + "\n"

    def has_results(self) -> bool:
        return any(r.outcome != "not run" for r in self.results.values())

    def write(self, directory: Path, partial: Sequence[str] = ()) -> list[Path]:
        """Write conformance.md (what `make readme-report` copies); the HTML table is a section
        of the run report (run_report.py, reports/index.html)."""
        directory.mkdir(parents=True, exist_ok=True)
        md = directory / MARKDOWN_NAME
        md.write_text(self.markdown(partial), encoding="utf-8")
        self.written = [md]
        return [md]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes the report from every worker's reports
        if self.config.pluginmanager.has_plugin(RUN_REPORT_PLUGIN):
            return  # the run report writes this table too, knowing whether the run was partial
        if self.config.getoption("--netbed-report", None) == "off":
            return
        if self.has_results():
            self.write(Path(self.config.rootpath) / REPORT_DIR)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written:
            props, columns, _cells = self.table()
            names = ", ".join(str(p) for p in self.written)
            terminalreporter.write_line(
                f"netbed conformance report ({len(props)} properties x {len(columns)} conditions): {names}")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")[:300]
    return _first_line(report)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{PROPERTY_MARK}(text): the socket property a test verifies "
                                       "(a row of the conformance report)")
    config.addinivalue_line("markers", f"{CONDITION_MARK}(name): the network condition of a test not "
                                       "parametrized over `condition` (default: clean)")
    if not config.pluginmanager.has_plugin("netbed-conformance-report"):
        config.pluginmanager.register(ConformanceReport(config), "netbed-conformance-report")



README_START = "<!-- conformance:start (generated by `make readme-report`; do not edit) -->"
README_END = "<!-- conformance:end -->"


def splice_into_readme(readme: Path, table_md: str) -> str:
    """README text with the section between the conformance markers replaced by `table_md`."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme}: no conformance markers ({README_START!r} ... {README_END!r})")
    head, rest = text.split(README_START, 1)
    _old, tail = rest.split(README_END, 1)
    body = table_md.split("\n", 1)[1].strip()  # drop the report's own title line
    return f"{head}{README_START}\n{body}\n{README_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Copy the last conformance report into README.md.")
    parser.add_argument("--report", type=Path, default=Path("reports/conformance.md"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    opts = parser.parse_args(argv)
    if not opts.report.exists():
        raise SystemExit(f"{opts.report} does not exist: run `make test` first")
    if PARTIAL_MARK in opts.report.read_text(encoding="utf-8"):
        raise SystemExit(f"{opts.report} is from a partial run (it says so at the top); run the whole suite "
                         "(`make test` without PYTEST_ARGS) before copying its table into the README")
    opts.readme.write_text(splice_into_readme(opts.readme, opts.report.read_text(encoding="utf-8")),
                           encoding="utf-8")
    print(f"updated the conformance table in {opts.readme} from {opts.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
