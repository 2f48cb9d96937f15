"""An inner pytest session against a real testbed, as a user's CI runs it: with --junitxml each
test carries its impairment, seed and backend as properties; a failing test's report shows a
short table of what the router had active (not a JSON dump); reports/index.json covers every
test, with the sequence workload's data for its plots."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance, pytest_argv

from netbed import docker_api

INNER_TESTS = '''
import pytest
from netbed import measure

@pytest.mark.netem("delay 5ms seed 7", direction="to-server")
def test_seeded(client, server):
    run = measure.run_sequence(client, server, 50, 500.0)
    assert run.arrivals

@pytest.mark.netem("loss 1% seed 9", direction="to-client")
def test_fails_under_loss(client):
    assert False, "deliberate"

def test_without_a_testbed():
    pass
'''


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


@pytest.mark.integration
def test_junit_properties_failure_table_and_run_report(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    instance = new_instance("junit")
    client = docker_api.connect()
    try:
        result = subprocess.run(pytest_argv(instance, tmp_path / "test_inner.py", "--junitxml", "junit.xml"),
                                cwd=tmp_path, capture_output=True, text=True, timeout=600, env=inner_env())
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
        cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}

        seeded = _properties(cases["test_seeded"])
        assert "to-server: delay 5ms" in seeded["netbed_impairment"] and "to-client" not in seeded["netbed_impairment"]
        assert seeded["netbed_seed"] == "to-server: 7"
        assert seeded["netbed_backend"] in ("kernel", "userspace")
        failing = _properties(cases["test_fails_under_loss"])
        assert failing["netbed_seed"] == "to-client: 9" and failing["netbed_backend"] == seeded["netbed_backend"]
        assert cases["test_fails_under_loss"].find("failure") is not None
        assert not any(k.startswith("netbed_") for k in _properties(cases["test_without_a_testbed"]))

        # The failing test's report: the short table, once, and no JSON dump.
        out = result.stdout
        assert out.count("netbed router impairment") == 1, out[-4000:]
        section = out.split("netbed router impairment", 1)[1]
        assert "active at the failure" in section and '"directions"' not in section
        to_client = next(line for line in section.splitlines() if line.startswith("to-client"))
        assert "loss random 1% seed 9" in to_client and to_client.rstrip().endswith("9")

        data = json.loads((tmp_path / "reports" / "index.json").read_text())
        tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
        assert {n: t["outcome"] for n, t in tests.items()} == {
            "test_seeded": "passed", "test_fails_under_loss": "failed", "test_without_a_testbed": "passed"}
        (seq,) = tests["test_seeded"]["sequences"]
        assert seq["sent"] == 50 and seq["direction"] == "to-server" and len(seq["delays"]) == seq["arrived"]
        during = tests["test_seeded"]["network"]["directions"]["to-server"]["during"]
        assert [d["spec"]["delay"]["delay_ms"] for d in during] == [5.0]
        assert tests["test_without_a_testbed"]["network"] is None
        page = (tmp_path / "reports" / "index.html").read_text()
        assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"') == 3
        assert docker_api.leftovers(client, instance) == {"containers": [], "networks": [], "volumes": []}
    finally:
        docker_api.remove_by_label(client, instance)
