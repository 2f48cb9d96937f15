"""The run report (netbed/run_report.py): every session writes reports/index.html and
index.json covering all its tests; a partial run says so; old run folders are pruned.

Each test runs an inner pytest session (no testbed: these inner tests use no netbed fixture)
in a temporary directory and reads what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netbed import run_report
from netbed.report import PARTIAL_MARK

INNER_TESTS = '''
import pytest
from netbed import test_record

def test_passes():
    pass

def test_fails():
    assert 1 == 2, "one is not two"

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.property("inner: a property")
def test_with_a_property():
    pass

def test_with_a_sequence_and_an_artifact():
    # 100 datagrams at 1000 pps, every 10th lost, 5 ms one-way
    rows = [[seq, seq * 1_000_000, seq * 1_000_000 + 5_000_000, 64, True] for seq in range(100) if seq % 10]
    test_record.record_sequence(rows, 100, rate_pps=1000.0, label="inner", direction="to-server")
    path = test_record.artifact_path("note.txt")
    path.write_text("kept")
    test_record.add_artifact("a note", path)
'''


def inner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)


def index(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "reports" / "index.json").read_text())
    return data


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "tests" / "test_other.py").write_text("def test_other():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    return tmp_path


def test_a_whole_run_reports_every_test_with_outcome_duration_plots_and_artifacts(suite: Path) -> None:
    result = inner(suite)
    assert result.returncode == 1, result.stdout[-2000:]
    data = index(suite)
    assert data["partial"] is False and data["partial_reasons"] == []
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in data["tests"]}
    assert outcomes == {"test_passes": "passed", "test_fails": "failed", "test_skipped": "skipped",
                        "test_with_a_property": "passed", "test_with_a_sequence_and_an_artifact": "passed",
                        "test_other": "passed"}
    failed = next(t for t in data["tests"] if t["outcome"] == "failed")
    assert "one is not two" in failed["message"] and failed["duration_s"] >= 0
    seq_test = next(t for t in data["tests"] if t["nodeid"].endswith("artifact"))
    (seq,) = seq_test["sequences"]
    assert (seq["sent"], seq["arrived"], seq["lost"]) == (100, 90, 10)
    assert sum(seq["arrivals_per_bin"]) == 90 and sum(seq["losses_per_bin"]) == 10
    link = seq_test["artifacts"]["a note"]
    assert link.startswith(f"runs/{data['run_id']}/") and (suite / "reports" / link).read_text() == "kept"
    page = (suite / "reports" / "index.html").read_text()
    assert "Partial run" not in page and page.count("<svg") == 3 and f'href="{link}"' in page
    assert "inner: a property" in page and PARTIAL_MARK not in (suite / "reports" / "conformance.md").read_text()
    assert "netbed run report:" in result.stdout


@pytest.mark.parametrize(("args", "reason"), [
    (("tests/test_inner.py",), "only tests/test_inner.py selected"),
    (("-k", "passes"), "tests deselected"),
    (("-x",), "stopped early"),
])
def test_a_partial_run_says_so_at_the_top_and_in_the_conformance_table(suite: Path, args: tuple[str, ...],
                                                                        reason: str) -> None:
    inner(suite, *args)
    data = index(suite)
    assert data["partial"] and any(reason in r for r in data["partial_reasons"]), data["partial_reasons"]
    page = (suite / "reports" / "index.html").read_text()
    assert page.index('id="partial"') < page.index('id="tests"')
    conformance = suite / "reports" / "conformance.md"
    if conformance.exists():  # when the property-marked test ran
        assert PARTIAL_MARK in conformance.read_text()
        assert "this table covers only" in page


def test_old_run_folders_are_pruned_to_the_newest_n(suite: Path) -> None:
    stray = suite / "reports" / "runs" / "mine"
    stray.mkdir(parents=True)
    for _ in range(3):
        inner(suite, "--netbed-report-keep", "2")
    runs = sorted(p.name for p in (suite / "reports" / "runs").iterdir())
    assert len(runs) == 3 and "mine" in runs  # two runs, and a folder the report did not make
    assert index(suite)["run_id"] in runs


def test_off_writes_nothing_and_a_bad_keep_is_refused(suite: Path) -> None:
    inner(suite, "--netbed-report", "off")
    assert not (suite / "reports").exists()
    result = inner(suite, "--netbed-report-keep", "0")
    assert result.returncode == 4 and "--netbed-report-keep=0" in result.stderr


def test_prune_keeps_the_newest_by_name(tmp_path: Path) -> None:
    names = ["20261126T100000Z-1", "20261126T110000Z-7", "20261126T090000Z-3", "notes"]
    for name in names:
        (tmp_path / name).mkdir()
    removed = run_report.prune_runs(tmp_path, 1)
    assert sorted(p.name for p in removed) == ["20261126T090000Z-3", "20261126T100000Z-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261126T110000Z-7", "notes"]


def test_html_escapes_what_tests_named() -> None:
    data = {"run_id": "r", "generated": "now", "partial": False, "partial_reasons": [], "summary": {"failed": 1},
            "retention": {"runs_kept": 10, "runs_dir": "runs"},
            "tests": [{"nodeid": "t.py::test[<b>]", "outcome": "failed", "message": "x < y", "duration_s": 0.1,
                       "longrepr": "", "artifacts": {"<log>": "runs/r/a&b.log"}}]}
    page = run_report.render_html(data)
    assert "test[&lt;b&gt;]" in page and "x &lt; y" in page and 'href="runs/r/a&amp;b.log"' in page
    assert "<b>" not in page


def test_a_report_folder_that_cannot_be_written_warns_and_does_not_fail_the_run(suite: Path) -> None:
    (suite / "blocked").write_text("a file where the folder should be")
    (suite / "tests" / "test_artifact.py").write_text(
        "from netbed import test_record\n\ndef test_asks_for_an_artifact():\n"
        "    assert test_record.artifact_path('x.log') is None\n")
    result = inner(suite, "--netbed-report", "blocked/reports", "tests/test_other.py", "tests/test_artifact.py")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "the run report could not be written" in result.stdout and "blocked/reports" in result.stdout
