"""The router's capture table (netbed_router.capture) against fake tcpdumps: a tcpdump that
cannot start, one that never says it listens, one that dies (a full disk) while capturing.
Each is an error or a warning naming what happened; nothing is left running or on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from netbed_router.capture import MAX_CAPTURES, CaptureError, CaptureTable

IFS = {"client": "eth1", "server": "eth2"}


def fake_tcpdump(tmp_path: Path, body: str) -> str:
    """A shell script standing in for tcpdump; `$W` is its -w file (the argument after -w)."""
    path = tmp_path / "tcpdump"
    path.write_text("#!/bin/sh\nW=''; prev=''\nfor a in \"$@\"; do [ \"$prev\" = -w ] && W=$a; prev=$a; done\n"
                    + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


LISTENS_UNTIL_INTERRUPTED = """
trap 'echo "0 packets captured" >&2; echo "3 packets dropped by kernel" >&2; exit 0' INT
: > "${W}0"
printf 'tcpdump: listening on x\\n' >&2
while :; do sleep 0.05; done
"""


def table(tmp_path: Path, body: str) -> CaptureTable:
    return CaptureTable(root=tmp_path / "captures", tcpdump=fake_tcpdump(tmp_path, body))


def test_a_clean_capture_reports_the_packets_the_capture_lost(tmp_path: Path) -> None:
    t = table(tmp_path, LISTENS_UNTIL_INTERRUPTED)
    cap = t.start(IFS)
    result = t.stop(cap.handle)
    assert result["warnings"] == []
    assert result["dropped_by_kernel"] == {"client": 3, "server": 3}
    assert Path(result["path"]).read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section header
    assert t.discard(cap.handle) and not (tmp_path / "captures" / cap.handle).exists()


def test_tcpdump_missing_is_named(tmp_path: Path) -> None:
    t = CaptureTable(root=tmp_path / "captures", tcpdump=str(tmp_path / "no-such-tcpdump"))
    with pytest.raises(CaptureError, match="cannot run .*no-such-tcpdump"):
        t.start(IFS)
    assert t.handles() == [] and list((tmp_path / "captures").iterdir()) == []


def test_tcpdump_refusing_to_start_is_named_with_its_words(tmp_path: Path) -> None:
    t = table(tmp_path, "echo 'tcpdump: eth1: You don'\"'\"'t have permission to capture on that device' >&2; exit 1\n")
    with pytest.raises(CaptureError, match="exited \\(1\\): .*permission to capture"):
        t.start(IFS)
    assert t.handles() == []


def test_tcpdump_that_never_listens_times_out(tmp_path: Path) -> None:
    t = table(tmp_path, "exec sleep 30\n")
    with pytest.raises(CaptureError, match="did not start within 0.5 s"):
        t.start(IFS, start_timeout_s=0.5)
    assert t.handles() == []


def test_a_tcpdump_that_died_while_capturing_is_a_warning(tmp_path: Path) -> None:
    """A full disk: tcpdump stops writing and exits; the stop still answers, with a warning."""
    t = table(tmp_path, "printf 'tcpdump: listening on x\\n' >&2\n"
                        "sleep 0.2; echo 'tcpdump: /x/client.pcap0: No space left on device' >&2; exit 1\n")
    cap = t.start(IFS)
    for s in cap.sides:
        s.proc.wait(10)
    result = t.stop(cap.handle)
    assert len(result["warnings"]) == 2
    assert all("had exited (1) before the stop" in w and "No space left on device" in w for w in result["warnings"])
    t.discard(cap.handle)


def test_the_number_of_captures_is_bounded(tmp_path: Path) -> None:
    t = table(tmp_path, LISTENS_UNTIL_INTERRUPTED)
    caps = [t.start(IFS) for _ in range(MAX_CAPTURES)]
    try:
        with pytest.raises(CaptureError, match=f"{MAX_CAPTURES} captures exist already"):
            t.start(IFS)
    finally:
        for c in caps:
            t.discard(c.handle)
    assert t.handles() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"direction": "up"}, "direction 'up'"),
    ({"ring_mb": 2}, "ring_mb must be 4..1024"),
])
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        table(tmp_path, LISTENS_UNTIL_INTERRUPTED).start(IFS, **kwargs)  # type: ignore[arg-type]


def test_no_process_is_left_after_discard(tmp_path: Path) -> None:
    t = table(tmp_path, LISTENS_UNTIL_INTERRUPTED)
    cap = t.start(IFS)
    pids = [s.proc.pid for s in cap.sides]
    t.discard(cap.handle)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_an_agent_start_kills_the_tcpdumps_an_earlier_agent_left(tmp_path: Path) -> None:
    """The agent was killed, its tcpdumps were not: the next agent's table kills them and
    deletes their files."""
    earlier = table(tmp_path, LISTENS_UNTIL_INTERRUPTED)
    cap = earlier.start(IFS)
    procs = [s.proc for s in cap.sides]
    later = CaptureTable(root=tmp_path / "captures")
    # Two tcpdumps; a third process is counted when one of them is caught between fork and exec
    # of its `sleep` (the child still carries the script's argv).
    assert later.reap_leftovers() >= 2
    assert [p.wait(10) for p in procs] == [-9, -9]
    assert not (tmp_path / "captures").exists()
