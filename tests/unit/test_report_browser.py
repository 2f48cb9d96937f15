"""The run report opens in a real browser: headless Chromium renders reports/index.html of an
inner session, and the test checks that the tables and plots are laid out (non-zero size) and
that the browser's console printed nothing (the page has no script of its own, so any console
line is an error: a bad resource, a parse problem).

Skipped, saying what to install, where no Chromium is installed (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_run_report import inner

#: Browsers tried, in order (Debian's package installs `chromium`).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds Chromium may take to render (the machine may be loaded).
BROWSER_TIMEOUT_S = 120
#: Appended to a copy of the page: measures the laid-out tables and plots into a data attribute
#: that --dump-dom shows.  It logs nothing, so the console check still covers the page itself.
PROBE = """<script>
const size = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
document.body.dataset.probe = JSON.stringify({
  tables: [...document.querySelectorAll("table")].map(t => [t.id || t.className, t.rows.length, ...size(t)]),
  plots: [...document.querySelectorAll("svg.plot")].map(size),
  partial: !!document.getElementById("partial"),
});
</script>"""

SEQUENCE_TEST = '''
import pytest
from netbed import test_record

@pytest.mark.property("browser: a property")
def test_with_a_sequence():
    rows = [[seq, seq * 1_000_000, seq * 1_000_000 + 5_000_000 + (seq % 7) * 100_000, 64, True]
            for seq in range(200) if seq % 13]
    test_record.record_sequence(rows, 200, rate_pps=1000.0, label="browser", direction="to-server")

def test_fails():
    assert False, "a failure <with> markup"
'''


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser installed (looked for " + ", ".join(BROWSERS) + "); on Debian: "
                "apt-get install chromium  (or `make browser` as root)")


class Probe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.probe: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.probe = dict(attrs).get("data-probe")


def render(page: Path, profile: Path) -> tuple[dict[str, object], list[str]]:
    """(what the probe measured, the console lines) of `page` in headless Chromium."""
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    # --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers run as root).
    result = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
                            capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    parser = Probe()
    parser.feed(result.stdout)
    assert parser.probe, f"the probe did not run; the DOM was:\n{result.stdout[:2000]}"
    console = [line for line in result.stderr.splitlines() if re.search(r":CONSOLE[(:]", line)]
    return json.loads(parser.probe), console


def test_the_report_renders_in_chromium_with_tables_plots_and_a_clean_console(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_inner.py").write_text(SEQUENCE_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    inner(tmp_path, "tests/test_inner.py::test_with_a_sequence", "tests/test_inner.py::test_fails")
    probe, console = render(tmp_path / "reports" / "index.html", tmp_path / "profile")
    assert console == [], console
    tables = {str(t[0]): t[1:] for t in probe["tables"]}  # type: ignore[attr-defined, index]
    assert tables["tests-table"][0] == 3, tables  # header and two tests
    assert tables["conformance"][0] == 2, tables  # header and one property
    assert all(t[1] > 0 and t[2] > 0 for t in tables.values()), tables  # laid out: width and height
    plots = probe["plots"]
    assert len(plots) == 3 and all(w > 0 and h > 0 for w, h in plots), plots  # type: ignore[arg-type, misc]
    assert probe["partial"] is True  # two named tests of the suite: the page says the run was partial


def test_the_console_check_sees_an_error(tmp_path: Path) -> None:
    """The check above can fail: a page with a script error shows in the console lines."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>notAFunction();</script></body></html>")
    _probe, console = render(page, tmp_path / "profile")
    assert any("notAFunction" in line for line in console), console
