"""A process or attached container that outlives its test is removed and reported: an inner
pytest session on this testbed (with LeftoverWarning turned into an error, so each report
lands on its own test's teardown) leaves one of each behind, and cleans up after a third."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from inner_session import inner_env, pytest_argv

from netbed.host import Host
from netbed.testbed import Testbed

INNER_TESTS = '''
def test_leaves_a_process(client):
    client.spawn(["sleep", "317"])

def test_leaves_a_container(server):
    server.attach(server.container.image.id, ["sleep", "318"])

def test_cleans_up(client):
    with client.spawn(["sleep", "319"]):
        pass
'''


@pytest.mark.integration
def test_leftovers_are_removed_and_reported(testbed: Testbed, client: Host, tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    argv = pytest_argv(testbed.instance, tmp_path / "test_inner.py", "-rA",
                       "-W", "error::netbed.pytest_plugin.LeftoverWarning")
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=inner_env())
    out = proc.stdout
    assert "3 passed, 2 errors" in out, out[-4000:]
    assert "ERROR at teardown of test_leaves_a_process" in out, out[-4000:]
    assert "ERROR at teardown of test_leaves_a_container" in out, out[-4000:]
    assert "ERROR at teardown of test_cleans_up" not in out, out[-4000:]
    assert "client: process pid" in out and "['sleep', '317']" in out, out[-4000:]
    assert "server: attached container" in out, out[-4000:]
    # Removed, not only reported: no such process is left on the client.
    assert client.run(["pgrep", "-f", "sleep 31[789]"], timeout=10).returncode == 1
