"""A cancelled session (SIGTERM, how CI cancels) cleans up; a killed one (SIGKILL) is cleaned
by the next netbed command, which finds that the testbed's owner has ended."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance, pytest_argv, start_blocking_session

from netbed import docker_api

NOTHING = {"containers": [], "networks": [], "volumes": []}


@pytest.mark.integration
def test_sigterm_runs_the_cleanup(tmp_path: Path) -> None:
    instance = new_instance("lc-term")
    client = docker_api.connect()
    try:
        proc, _marker = start_blocking_session(tmp_path, instance)
        assert docker_api.leftovers(client, instance)["containers"], "the inner testbed should be up"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, out[-3000:]  # pytest's "interrupted"
        assert docker_api.leftovers(client, instance) == NOTHING, out[-3000:]
    finally:
        docker_api.remove_by_label(client, instance)


@pytest.mark.integration
def test_sigkill_leftovers_are_removed_by_the_watcher_within_seconds(tmp_path: Path) -> None:
    instance = new_instance("lc-watch")
    client = docker_api.connect()
    try:
        proc, _marker = start_blocking_session(tmp_path, instance)
        assert docker_api.leftovers(client, instance)["containers"], "the inner testbed should be up"
        proc.kill()
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 30
        while docker_api.leftovers(client, instance) != NOTHING and time.monotonic() < deadline:
            time.sleep(0.2)  # polling for the watcher's work, with a deadline
        assert docker_api.leftovers(client, instance) == NOTHING
    finally:
        docker_api.remove_by_label(client, instance)


@pytest.mark.integration
def test_sigkill_leftovers_are_removed_by_the_next_netbed_command(tmp_path: Path) -> None:
    """Without the watcher (here switched off; in life: killed with the job's whole process tree)."""
    instance = new_instance("lc-kill")
    client = docker_api.connect()
    try:
        proc, _marker = start_blocking_session(tmp_path, instance, NETBED_REAPER_WATCH="0")
        proc.kill()
        proc.communicate(timeout=60)
        left = docker_api.leftovers(client, instance)
        assert len(left["containers"]) == 3 and len(left["networks"]) == 3 and len(left["volumes"]) == 1, left
        owners = {c.labels.get("io.netbed.owner") for c in
                  client.containers.list(all=True, filters=docker_api.instance_filter(instance))}
        assert len(owners) == 1 and str(owners.pop()).startswith(f"{proc.pid}@"), "the killed session owns it"

        # Any netbed command, here one about another instance, removes the orphan first.
        status = subprocess.run([sys.executable, "-m", "netbed", "--instance", new_instance("lc-other"), "status"],
                                capture_output=True, text=True, timeout=120, env=inner_env())
        assert f"removed testbed '{instance}' left by an ended session" in status.stderr, status.stderr
        assert docker_api.leftovers(client, instance) == NOTHING
    finally:
        docker_api.remove_by_label(client, instance)


ROUTER_IS_PRISTINE = '''
def test_router_is_reset_at_session_start(netbed_session):
    directions = netbed_session.router.impair_status()["directions"]
    assert all(entry["impairment"] is None for entry in directions.values()), directions
'''


@pytest.mark.integration
def test_a_user_started_testbed_is_reused_reset_and_never_reaped(tmp_path: Path) -> None:
    """`netbed up` leaves no owner: a session reuses it with a pristine router and leaves it up,
    and other netbed commands never remove it."""
    instance = new_instance("lc-user")
    client = docker_api.connect()

    def netbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netbed", "--instance", instance, *args],
                              capture_output=True, text=True, timeout=300, env=inner_env())

    try:
        up = netbed("up")
        assert up.returncode == 0, up.stderr[-3000:]
        owners = {c.labels.get("io.netbed.owner") for c in
                  client.containers.list(all=True, filters=docker_api.instance_filter(instance))}
        assert owners == {""}
        assert netbed("impair", "loss", "1%").returncode == 0
        (tmp_path / "test_reset.py").write_text(ROUTER_IS_PRISTINE)
        inner = subprocess.run(pytest_argv(instance, tmp_path / "test_reset.py"), cwd=tmp_path,
                               capture_output=True, text=True, timeout=300, env=inner_env())
        assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-2000:]
        status = netbed("status")
        assert status.returncode == 0 and "removed testbed" not in status.stderr, status.stderr
    finally:
        docker_api.remove_by_label(client, instance)


SHELL_STRING_SETUP = '''
import pytest

@pytest.fixture(scope="session")
def docker_setup():
    return ["up --build --wait"]
'''


def test_a_shell_string_fixture_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(SHELL_STRING_SETUP)
    (tmp_path / "test_x.py").write_text("def test_x(testbed):\n    pass\n")
    inner = subprocess.run(pytest_argv(new_instance("lc-shell"), tmp_path / "test_x.py"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, env=inner_env())
    assert inner.returncode != 0
    assert "not shell strings" in inner.stdout, inner.stdout[-3000:]
