"""The pytest plugin's lifecycle, checked from outside: an inner pytest session that starts
its own testbed leaves nothing behind, whether its tests pass or fail.

The inner session uses its own instance name, so it runs beside any other testbed (which
also shows that two testbeds can run side by side on one machine).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance, pytest_argv

from netbed import docker_api

INNER_TESTS = '''
import socket

def test_passes(client, server, router):
    sock = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = sock.bind(("", 0))[1]
    client.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (server.ipv4, port))
    assert sock.recvfrom(10)[0] == b"x"

def test_fails(client):
    assert client.ping() is False, "deliberate failure: cleanup must still happen"

def test_the_overridden_compose_files_are_used(testbed):
    assert testbed.containers()["client"].labels.get("io.example.extra") == "yes"
'''

#: A user's conftest composes its own file onto netbed's, with pytest-docker's fixture name.
INNER_CONFTEST = '''
import pytest
from netbed.compose import COMPOSE_FILE

@pytest.fixture(scope="session")
def docker_compose_file(tmp_path_factory):
    extra = tmp_path_factory.mktemp("compose") / "extra.yaml"
    extra.write_text("services:\\n  client:\\n    labels:\\n      io.example.extra: 'yes'\\n")
    return [str(COMPOSE_FILE), str(extra)]
'''


@pytest.mark.integration
def test_inner_session_leaves_nothing_behind(tmp_path: Path) -> None:
    """After a session that started its own testbed ends (with a failed test in it), no
    container, network or volume labelled with its instance is left.  The session composes
    a user's extra file onto netbed's through pytest-docker's `docker_compose_file` name."""
    instance = new_instance("plugin")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    client = docker_api.connect()
    try:
        proc = subprocess.run(pytest_argv(instance, tmp_path / "test_inner.py"),
                              cwd=tmp_path, capture_output=True, text=True, timeout=300, env=inner_env())
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "1 failed, 2 passed" in proc.stdout, proc.stdout[-3000:]
        assert "netbed router impairment" in proc.stdout, "a failing test's report carries the router counters"
        assert docker_api.leftovers(client, instance) == {"containers": [], "networks": [], "volumes": []}
    finally:
        docker_api.remove_by_label(client, instance)
