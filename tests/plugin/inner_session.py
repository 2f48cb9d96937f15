"""Run an inner pytest session with the netbed plugin, as a user's CI would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

#: An inner test that says the testbed is up (by writing MARKER), then blocks until killed.
BLOCKING_TESTS = '''
import os, threading

def test_blocks_until_killed(client):
    assert client.ping()
    with open(os.environ["NETBED_TEST_MARKER"], "w") as fh:
        fh.write(str(os.getpid()))
    threading.Event().wait(600)
'''


def new_instance(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inner_env(**extra: str) -> dict[str, str]:
    """Our environment without a pinned subnet: the inner testbed picks a free one beside ours."""
    env = {k: v for k, v in os.environ.items() if k != "NETBED_CLIENT_NET4"}
    return {**env, **extra}


def pytest_argv(instance: str, test_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netbed-instance", instance,
            *extra, str(test_file)]


def start_blocking_session(tmp_path: Path, instance: str, **env: str) -> tuple[subprocess.Popen[str], Path]:
    """An inner session whose test holds the testbed up; returns it once the test runs."""
    test_file = tmp_path / "test_inner_blocking.py"
    test_file.write_text(BLOCKING_TESTS)
    marker = tmp_path / "testbed-is-up"
    proc = subprocess.Popen(pytest_argv(instance, test_file), cwd=tmp_path, text=True,
                            env=inner_env(NETBED_TEST_MARKER=str(marker), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"inner session ended before its test ran (exit {proc.returncode}):\n{out[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("inner session's testbed did not come up within 300 s")
        time.sleep(0.2)  # polling for the marker, with a deadline above
    return proc, marker
