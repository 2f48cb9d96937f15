"""--netbed-capture, checked from outside: an inner pytest session on this testbed keeps the
capture of its failing test (named in the report) and not the passing one's; and a capture
that cannot start (no tcpdump on the router) is a warning, never a failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from inner_session import inner_env, pytest_argv

from netbed import capture
from netbed.host import Router
from netbed.testbed import Testbed

INNER_TESTS = '''
import socket

def exchange(client, server, payload):
    rx = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = rx.bind(("", 0))[1]
    client.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payload, (server.ipv4, port))
    return rx.recvfrom(100)[0]

def test_passes(client, server):
    assert exchange(client, server, b"passing-test-datagram") == b"passing-test-datagram"

def test_fails(client, server):
    assert exchange(client, server, b"failing-test-datagram") == b"something else"
'''


def run_inner(tmp_path: Path, instance: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    return subprocess.run(pytest_argv(instance, tmp_path / "test_inner.py", "-rA", *extra),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=inner_env())


@pytest.fixture
def instance(testbed: Testbed) -> str:
    """This session's testbed: the inner session reuses it (running) instead of starting one."""
    return testbed.instance


def payloads(path: Path) -> dict[str, int]:
    """How many captured frames carry each test's datagram."""
    data = [p.data for p in capture.read(path)]
    return {name: sum(f"{name}-test-datagram".encode() in d for d in data) for name in ("passing", "failing")}


@pytest.mark.integration
def test_a_failing_test_keeps_its_capture_and_a_passing_one_does_not(router: Router, tmp_path: Path,
                                                                    instance: str) -> None:
    captures = tmp_path / "captures"
    proc = run_inner(tmp_path, instance, f"--netbed-capture-dir={captures}", "--netbed-decisions=on")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    kept = sorted(p.name for p in captures.glob("run-*/*"))
    assert kept == ["test_inner.py_test_fails.decisions.jsonl", "test_inner.py_test_fails.pcapng"] or \
        kept == ["test_inner.py_test_fails.pcapng"], kept  # no decision log on the kernel backend
    pcap = next(captures.glob("run-*/test_inner.py_test_fails.pcapng"))
    assert "netbed capture" in proc.stdout and pcap.name in proc.stdout, proc.stdout[-3000:]
    # The datagram entered on the client side and left on the server side: two frames.
    assert payloads(pcap) == {"passing": 0, "failing": 2}


@pytest.mark.integration
def test_all_keeps_every_capture(router: Router, tmp_path: Path, instance: str) -> None:
    captures = tmp_path / "captures"
    proc = run_inner(tmp_path, instance, f"--netbed-capture-dir={captures}", "--netbed-capture=all")
    assert proc.returncode == 1, proc.stdout[-3000:]
    pcaps = sorted(captures.glob("run-*/*.pcapng"))
    assert [p.name for p in pcaps] == ["test_inner.py_test_fails.pcapng", "test_inner.py_test_passes.pcapng"]
    assert payloads(pcaps[1]) == {"passing": 2, "failing": 0}


@pytest.mark.integration
def test_a_capture_that_cannot_start_is_a_warning_not_a_failure(router: Router, tmp_path: Path, instance: str) -> None:
    """tcpdump removed from the router: the passing test still passes, the failing one fails
    for its own reason, both report a CaptureWarning, nothing is kept."""
    captures = tmp_path / "captures"
    router.run(["mv", "/usr/bin/tcpdump", "/usr/bin/tcpdump.netbed-test"], timeout=10, check=True)
    try:
        proc = run_inner(tmp_path, instance, f"--netbed-capture-dir={captures}")
    finally:
        router.run(["mv", "/usr/bin/tcpdump.netbed-test", "/usr/bin/tcpdump"], timeout=10, check=True)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count("CaptureWarning: netbed: no capture for") == 2, proc.stdout[-3000:]
    assert "tcpdump" in proc.stdout
    assert list(captures.glob("run-*/*")) == []


def test_old_runs_are_pruned(tmp_path: Path) -> None:
    """Retention: only the newest KEEP_RUNS run folders stay."""
    from netbed.capture_plugin import KEEP_RUNS, prune

    for i in range(KEEP_RUNS + 3):
        run = tmp_path / f"run-{i}"
        run.mkdir()
        os.utime(run, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "not-a-run").mkdir()
    prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["not-a-run", *(f"run-{i}" for i in range(3, KEEP_RUNS + 3))])


@pytest.mark.integration
def test_decisions_off_keeps_the_capture_without_a_decision_log(router: Router, tmp_path: Path, instance: str) -> None:
    captures = tmp_path / "captures"
    proc = run_inner(tmp_path, instance, f"--netbed-capture-dir={captures}", "--netbed-decisions=off")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert sorted(p.name for p in captures.glob("run-*/*")) == ["test_inner.py_test_fails.pcapng"]
