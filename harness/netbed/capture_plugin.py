"""Per-test capture at the router, for the pytest plugin (``--netbed-capture``).

Every test that uses the testbed is captured at the router (both data interfaces, one
pcapng, ``netbed.capture``), with the userspace engine's decision log:

* ``failed`` (default): kept for tests whose call fails, nothing kept for the others;
* ``all``: kept for every test;
* ``off``: no capture.

How, cheaply: the session runs ONE capture at the router (started at its first test, kept
across the per-test resets, a ring of ``RING_MB``), and a test whose capture is kept gets a
*snapshot* of it, the packets and decisions from the test's start to the end of its call.
A passing test costs no router call at all.  Should the ring have overwritten the start of
a long test, the report says so.

Kept files go to ``reports/captures/run-<id>/<test>.pcapng`` (and ``<test>.decisions.jsonl``);
a failing test's report names them (section "netbed capture") and its ``user_properties``
carry them (``netbed_capture``, ``netbed_decisions``).  Retention: a session deletes the run
folders beyond the newest ``KEEP_RUNS`` when it starts, so ``reports/captures`` never
grows without bound.

A capture that cannot start or be kept (no tcpdump, no permission, a full disk, a router
that does not answer) is a ``CaptureWarning`` in the report: it never fails a test, and
every router call it makes has a timeout, so it cannot hang one.
``--netbed-decisions=on`` adds the engine's decision log to the session's capture (off by
default: it costs the engine a third of its TCP throughput, README, Performance, and the
impairment a user asked for must not depend on whether they debug it);
``@pytest.mark.netbed_capture(decisions=False)`` keeps no decision log for one test;
``@pytest.mark.netbed_capture(enabled=False)`` keeps nothing for it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from . import capture, test_record
from .capture import Capture
from .errors import CaptureError, NetbedError
from .host import Router

MODES = ("failed", "all", "off")
#: Ring buffer of the session's capture at the router, MB (the newest packets are kept).
RING_MB = 64
#: The session's capture stops itself after this long if the session dies without stopping it, s.
SESSION_MAX_SECONDS = 6 * 3600.0
#: Run folders kept under reports/captures (the newest; older ones are deleted at session start).
KEEP_RUNS = 5
START_KEY = pytest.StashKey[int]()
WARNING_KEY = pytest.StashKey[str]()
#: {name: path} of what was kept for a test (for the run's report).
ARTIFACTS_KEY = pytest.StashKey[dict[str, str]]()
#: The session's capture (on the config: one per session, and per xdist worker).
SESSION_KEY = pytest.StashKey["Capture | None"]()


class CaptureWarning(UserWarning):
    """A per-test capture could not be taken or kept; the test's outcome is unaffected."""


def addoption(group: Any) -> None:
    group.addoption("--netbed-capture", choices=MODES, default="failed",
                    help="capture each test at the router and keep the pcapng (and the engine's decision log) "
                         "for failed tests (default), all tests, or none (off)")
    group.addoption("--netbed-decisions", choices=("on", "off"), default="off",
                    help="with the userspace engine, log what it decided for each packet while the session's "
                         "capture runs (costs the engine per-packet speed; default off)")
    group.addoption("--netbed-capture-dir", default="reports/captures",
                    help=f"where kept captures go (a run-<id> folder per session; the newest {KEEP_RUNS} are kept)")


def configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "netbed_capture(enabled=True, decisions=True): keep this test's capture at the router and its "
        "decision log (see --netbed-capture)",
    )


def _mode(config: pytest.Config) -> str:
    return str(config.getoption("--netbed-capture", "failed"))


def run_dir(config: pytest.Config) -> Path:
    """This session's folder for kept captures (xdist workers share their run's)."""
    existing = getattr(config, "_netbed_capture_run_dir", None)
    if isinstance(existing, Path):
        return existing
    root = Path(str(config.getoption("--netbed-capture-dir", "reports/captures")))
    if not root.is_absolute():
        root = Path(str(config.rootpath)) / root
    worker_input = getattr(config, "workerinput", None)
    run_id = str(worker_input["testrunuid"])[:12] if isinstance(worker_input, dict) and \
        "testrunuid" in worker_input else uuid.uuid4().hex[:12]
    path = root / f"run-{run_id}"
    config._netbed_capture_run_dir = path  # type: ignore[attr-defined]
    return path


def prune(root: Path, keep: int = KEEP_RUNS) -> list[Path]:
    """Delete the run folders under ``root`` beyond the newest ``keep``; the ones deleted."""
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("run-")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return runs[keep:]


def sessionstart(session: pytest.Session) -> None:
    if _mode(session.config) != "off" and not hasattr(session.config, "workerinput"):
        prune(run_dir(session.config).parent)


def _wanted(item: pytest.Item) -> dict[str, Any] | None:
    """This test's capture options, or None when it keeps no capture."""
    if _mode(item.config) == "off":
        return None
    marker = item.get_closest_marker("netbed_capture")
    opts = dict(marker.kwargs) if marker is not None else {}
    return opts if opts.pop("enabled", True) else None


def begin(router: Router, item: pytest.Item) -> None:
    """Before the test (and its impairment): make sure the session's capture runs and note
    when this test starts.  A capture that cannot start is a warning."""
    if _wanted(item) is None:
        return
    config = item.config
    cap = config.stash.get(SESSION_KEY, None)
    if cap is None or cap.router is not router:
        try:
            if SESSION_KEY not in config.stash:
                capture.discard_all(router)  # whatever a killed session left at this router
            decisions = config.getoption("--netbed-decisions", "off") == "on"
            cap = capture.start(router, ring_mb=RING_MB, decisions=decisions, survives_reset=True,
                                max_seconds=SESSION_MAX_SECONDS)
        except (CaptureError, NetbedError, OSError) as exc:
            config.stash[SESSION_KEY] = None
            _warn(item, f"netbed: no capture for {item.nodeid}: {exc}")
            return
        config.stash[SESSION_KEY] = cap
    item.stash[START_KEY] = time.time_ns()


def makereport(item: pytest.Item, report: pytest.TestReport) -> None:
    """After the call: keep the capture (failed, or --netbed-capture=all) and name it in the report."""
    if report.when != "call":
        return
    start = item.stash.get(START_KEY, None)
    cap = item.config.stash.get(SESSION_KEY, None)
    opts = _wanted(item)
    keep = report.failed or _mode(item.config) == "all"
    if start is not None and cap is not None and opts is not None and keep:
        _keep(item, report, cap, start, bool(opts.get("decisions", True)))
    note = item.stash.get(WARNING_KEY, None)
    if note is not None and report.failed:
        report.sections.append(("netbed capture", note))


def _keep(item: pytest.Item, report: pytest.TestReport, session_cap: Capture, start_ns: int,
          decisions_wanted: bool) -> None:
    name = _file_name(item.nodeid)
    pcap, decisions = run_dir(item.config) / f"{name}.pcapng", run_dir(item.config) / f"{name}.decisions.jsonl"
    try:
        cap = session_cap.snapshot(start_ns, time.time_ns(), decisions=decisions_wanted)
    except (CaptureError, NetbedError, OSError) as exc:
        item.config.stash[SESSION_KEY] = None  # gone (the router restarted?): the next test starts one
        _warn(item, f"netbed: the capture of {item.nodeid} could not be kept: {exc}")
        if report.failed:
            report.sections.append(("netbed capture", str(exc)))
        return
    try:
        result = cap.fetch(pcap, decisions=decisions if decisions_wanted else None)
        stopped = cap.stop()
    except (CaptureError, NetbedError, OSError) as exc:
        _warn(item, f"netbed: the capture of {item.nodeid} could not be kept: {exc}")
        if report.failed:
            report.sections.append(("netbed capture", str(exc)))
        return
    finally:
        try:
            cap.discard()
        except CaptureError as exc:
            _warn(item, f"netbed: the capture of {item.nodeid} could not be discarded: {exc}")
    artifacts = {"capture": str(result)}
    if decisions.exists():
        artifacts["decisions"] = str(decisions)
    item.stash[ARTIFACTS_KEY] = artifacts
    for label, path in artifacts.items():  # linked from the test's row of reports/index.html
        test_record.add_artifact("packet capture (pcapng)" if label == "capture" else "engine decision log", path)
    report.user_properties.extend((f"netbed_{k}", v) for k, v in artifacts.items())
    lines = [f"capture: {_relative(result)} ({stopped.packets} packets, {stopped.size} bytes; "
             f"interfaces {cap.interfaces['client']} client side, {cap.interfaces['server']} server side)"]
    if "decisions" in artifacts:
        lines.append(f"decision log: {_relative(decisions)} "
                     f"({(stopped.decisions or {}).get('entries', 0)} packets the engine decided on)")
    elif decisions_wanted and session_cap.decisions_note:
        lines.append(f"decision log: none ({session_cap.decisions_note})")
    if stopped.raw.get("complete") is False:
        lines.append(f"the ring ({session_cap.ring_mb} MB) had already overwritten the start of this test: "
                     "its first packets are missing")
    lost = {side: n for side, n in stopped.dropped_by_kernel.items() if n}
    if lost:
        lines.append(f"the capture itself missed packets (tcpdump, dropped by kernel): {lost}")
    lines.extend(f"warning: {w}" for w in stopped.warnings)
    if report.failed:
        report.sections.append(("netbed capture", "\n".join(lines)))


def session_end(config: pytest.Config) -> None:
    """When the session's testbed is about to go: stop and discard the session's capture."""
    cap = config.stash.get(SESSION_KEY, None)
    config.stash[SESSION_KEY] = None
    if cap is not None:
        try:
            cap.discard()
        except CaptureError as exc:
            warnings.warn(CaptureWarning(f"netbed: the session's capture could not be discarded: {exc}"),
                          stacklevel=2)


def _warn(item: pytest.Item, message: str) -> None:
    item.stash[WARNING_KEY] = message
    warnings.warn(CaptureWarning(message), stacklevel=2)


def _file_name(nodeid: str) -> str:
    """A file name from a test id: path separators and odd characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", nodeid).strip("_")
    return name[-180:]


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
