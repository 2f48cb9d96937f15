"""`netbed capture`: Ctrl-C stops it cleanly and the file is written; --seconds ends it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from netbed import capture
from netbed.host import Host
from netbed.testbed import Testbed


@pytest.fixture
def netbed(testbed: Testbed) -> Callable[..., list[str]]:
    """argv of the netbed command for this session's testbed (running, whoever started it)."""
    def argv(*args: str) -> list[str]:
        return [sys.executable, "-m", "netbed", "--instance", testbed.instance, *args]
    return argv


def icmp_frames(path: Path, side: str) -> int:
    return sum(1 for p in capture.read(path) if p.interface.endswith(f"({side} side)")
               and p.data[12:14] == b"\x08\x00" and p.data[14 + 9] == 1)


def test_ctrl_c_stops_the_capture_and_writes_the_file(client: Host, server: Host, tmp_path: Path,
                                                       netbed: Callable[..., list[str]]) -> None:
    out = tmp_path / "cli.pcapng"
    proc = subprocess.Popen(netbed("capture", "-w", str(out)), stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the capture runs once this is printed
        assert "capturing" in line and "Ctrl-C to stop" in line, line
        client.run(["ping", "-c", "3", "-i", "0.2", server.ipv4], timeout=20, check=True)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"wrote {out}" in err
    # Each echo request and reply crosses both interfaces.
    assert icmp_frames(out, "client") >= 6 and icmp_frames(out, "server") >= 6


def test_seconds_ends_it(tmp_path: Path, netbed: Callable[..., list[str]]) -> None:
    out = tmp_path / "timed.pcapng"
    proc = subprocess.run(netbed("capture", "--seconds", "1", "--direction", "to-server", "-w", str(out)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
    capture.read(out)  # a valid pcapng


@pytest.mark.parametrize("args, message", [
    (["--seconds", "-1", "-w", "x.pcapng"], "--seconds must be between 0 and 86400"),
    (["-w", "/nonexistent-dir/x.pcapng"], "is not a directory"),
    (["--direction", "up", "-w", "x.pcapng"], "invalid choice: 'up'"),
])
def test_bad_arguments_are_named(args: list[str], message: str, netbed: Callable[..., list[str]]) -> None:
    proc = subprocess.run(netbed("capture", *args), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
