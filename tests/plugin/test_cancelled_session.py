"""A cancelled session (SIGTERM, how CI cancels) cleans up; a killed one (SIGKILL) is cleaned
by the next netbed command, which finds that the testbed's owner has ended."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance, start_blocking_session

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
def test_sigkill_leftovers_are_removed_by_the_next_netbed_command(tmp_path: Path) -> None:
    instance = new_instance("lc-kill")
    client = docker_api.connect()
    try:
        proc, _marker = start_blocking_session(tmp_path, instance)
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


@pytest.mark.integration
def test_a_user_started_testbed_is_not_reaped(tmp_path: Path) -> None:
    """`netbed up` leaves no owner: other netbed commands never remove it."""
    instance = new_instance("lc-user")
    client = docker_api.connect()
    try:
        up = subprocess.run([sys.executable, "-m", "netbed", "--instance", instance, "up"],
                            capture_output=True, text=True, timeout=300, env=inner_env())
        assert up.returncode == 0, up.stderr[-3000:]
        owners = {c.labels.get("io.netbed.owner") for c in
                  client.containers.list(all=True, filters=docker_api.instance_filter(instance))}
        assert owners == {""}
        status = subprocess.run([sys.executable, "-m", "netbed", "--instance", instance, "status"],
                                capture_output=True, text=True, timeout=120, env=inner_env())
        assert status.returncode == 0 and "removed testbed" not in status.stderr, status.stderr
    finally:
        docker_api.remove_by_label(client, instance)
