"""Packet capture at the router: both data interfaces, one pcapng, bounded.

One ``tcpdump`` per data interface (the client side and the server side, found by subnet:
``interfaces.py``) writes classic pcap into its own ring buffer (``-C``/``-W``: the newest
packets are kept, the oldest file is overwritten).  Stopping merges the two rings into one
pcapng (``netbed_core.pcapng``) whose interfaces carry their names and sides
(``eth1 (client side)``), so a reader sees each packet enter and, or not, leave.

Capture is passive: tcpdump reads copies of the frames from an ``AF_PACKET`` socket
(TPACKET_V3).  It is never in the forwarding path, so it delays no packet; if it cannot
keep up the *capture* loses packets (the kernel counts them: ``dropped_by_kernel``), never
the traffic.  With the userspace engine, the engine holds packets in netfilter's FORWARD
hook, between the two interfaces: the client side shows a packet entering, the server
side shows it leaving after its delay (or not at all).

Bounds (``limits`` below): at most ``MAX_CAPTURES`` captures exist at once (running or
stopped and not yet discarded); each one's ring is ``ring_mb`` MB (10^6 bytes) in total,
half per interface; a capture left running stops itself after ``max_seconds``.
"""

from __future__ import annotations

import base64
import os
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from netbed_core.pcapng import merge_pcaps

#: Where capture directories live (one per capture, named by its handle).
CAPTURE_ROOT = Path(os.environ.get("NETBED_CAPTURE_DIR", "/var/tmp/netbed-capture"))
#: The tcpdump binary (an environment override exists for fault tests).
TCPDUMP = os.environ.get("NETBED_TCPDUMP", "tcpdump")
#: Captures that may exist at once (running, or stopped and not yet discarded).
MAX_CAPTURES = 4
#: Ring buffer per capture, MB (10^6 bytes, tcpdump's -C unit): default, smallest, largest.
DEFAULT_RING_MB = 64
MIN_RING_MB = 4
MAX_RING_MB = 1024
#: Ring files per interface (tcpdump -W), at most.
RING_FILES = 4
#: A capture nobody stops ends itself after this long, seconds (default, largest).
DEFAULT_MAX_SECONDS = 3600.0
MAX_MAX_SECONDS = 24 * 3600.0
#: How long tcpdump may take to say it is listening, seconds (a request's ``timeout`` overrides it).
START_TIMEOUT_S = 5.0
#: How long tcpdump may take to exit after SIGINT before it is killed, seconds.
STOP_TIMEOUT_S = 5.0
#: Largest chunk one capture_read returns, bytes (before base64).
MAX_READ_BYTES = 1024 * 1024
#: The directions a capture can be limited to, and tcpdump's -Q per side for each.
DIRECTION_FILTERS: Mapping[str, Mapping[str, str | None]] = {
    "both": {"client": None, "server": None},
    "to-server": {"client": "in", "server": "out"},
    "to-client": {"client": "out", "server": "in"},
}


class CaptureError(RuntimeError):
    """A capture could not start or be read; the message says why (tcpdump's own words)."""


@dataclass
class _Side:
    """One interface's tcpdump."""

    side: str
    ifname: str
    proc: subprocess.Popen[bytes]
    stderr: list[str] = field(default_factory=list)
    exit: str | None = None


@dataclass
class Capture:
    """One capture: its handle, directory, tcpdumps and, once stopped, its pcapng."""

    handle: str
    directory: Path
    direction: str
    ring_mb: int
    interfaces: dict[str, str]
    started_wall: float
    started_mono: float
    max_seconds: float
    sides: list[_Side] = field(default_factory=list)
    result: dict[str, Any] | None = None
    timer: threading.Timer | None = None
    #: Kept by ``reset`` (a pytest session's own capture, which it cuts per test with snapshot).
    survives_reset: bool = False

    @property
    def path(self) -> Path:
        return self.directory / "capture.pcapng"


class CaptureTable:
    """Every capture of this router, by handle (thread-safe)."""

    def __init__(self, root: Path = CAPTURE_ROOT, tcpdump: str = TCPDUMP) -> None:
        self.root = root
        self.tcpdump = tcpdump
        self._lock = threading.Lock()
        self._captures: dict[str, Capture] = {}

    # -- start ----------------------------------------------------------------------------
    def start(self, interfaces: Mapping[str, str], *, direction: str = "both", ring_mb: int = DEFAULT_RING_MB,
              max_seconds: float = DEFAULT_MAX_SECONDS, start_timeout_s: float = START_TIMEOUT_S) -> Capture:
        """Start capturing ``interfaces`` (``{"client": IF, "server": IF}``); returns once both
        tcpdumps are listening.  Raises CaptureError (tcpdump missing, not permitted, no
        space) with everything started so far stopped and removed."""
        if direction not in DIRECTION_FILTERS:
            raise ValueError(f"capture: direction {direction!r}: expected one of {', '.join(DIRECTION_FILTERS)}")
        if not MIN_RING_MB <= ring_mb <= MAX_RING_MB:
            raise ValueError(f"capture: ring_mb must be {MIN_RING_MB}..{MAX_RING_MB} (MB), got {ring_mb}")
        with self._lock:
            if len(self._captures) >= MAX_CAPTURES:
                raise CaptureError(f"capture: {MAX_CAPTURES} captures exist already "
                                   f"({', '.join(sorted(self._captures))}); stop and discard one first")
            handle = secrets.token_hex(6)
            cap = Capture(handle, self.root / handle, direction, ring_mb, dict(interfaces), time.time(),
                          time.monotonic(), max_seconds)
            self._captures[handle] = cap
        try:
            self._launch(cap, start_timeout_s)
        except BaseException:
            self.discard(handle)
            raise
        cap.timer = threading.Timer(max_seconds, self._expire, (handle,))
        cap.timer.daemon = True
        cap.timer.start()
        return cap

    def _launch(self, cap: Capture, start_timeout_s: float) -> None:
        try:
            cap.directory.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise CaptureError(f"capture: cannot create {cap.directory}: {exc.strerror or exc}") from None
        per_if = cap.ring_mb // 2
        files = max(2, min(RING_FILES, per_if))
        file_mb = per_if // files
        for side in ("client", "server"):
            ifname = cap.interfaces[side]
            argv = [self.tcpdump, "-n", "-Z", "root", "-i", ifname, "-s", "0", "-B", "4096",
                    "--time-stamp-precision", "nano", "--immediate-mode", "-U", "-C", str(file_mb), "-W", str(files),
                    "-w", str(cap.directory / f"{side}.pcap")]
            q = DIRECTION_FILTERS[cap.direction][side]
            if q is not None:
                argv += ["-Q", q]
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, close_fds=True, start_new_session=True)
            except OSError as exc:
                raise CaptureError(f"capture: cannot run {self.tcpdump}: {exc.strerror or exc}") from None
            cap.sides.append(_Side(side, ifname, proc))
        deadline = time.monotonic() + start_timeout_s
        for s in cap.sides:
            _wait_listening(s, deadline, start_timeout_s)

    # -- stop -----------------------------------------------------------------------------
    def stop(self, handle: str) -> dict[str, Any]:
        """Stop both tcpdumps and merge their rings into ``capture.pcapng``.  Idempotent:
        a second stop returns the first one's result."""
        cap = self.get(handle)
        with self._lock:
            if cap.result is not None:
                return cap.result
            if cap.timer is not None:
                cap.timer.cancel()
            warnings: list[str] = []
            dropped: dict[str, int | None] = {}
            for s in cap.sides:  # both at once: each then flushes while the other does
                if s.proc.poll() is not None:
                    # It ended on its own before the stop: a write error (disk full) or a vanished interface.
                    s.exit = f"had exited ({s.proc.returncode}) before the stop"
                else:
                    s.proc.send_signal(signal.SIGINT)  # tcpdump flushes its file, prints its counts, exits
            for s in cap.sides:
                _stop_side(s)
                dropped[s.side] = _kernel_drops(s.stderr)
                if s.exit is not None:
                    warnings.append(f"tcpdump on {s.ifname} ({s.side} side) {s.exit}: "
                                    f"{' '.join(s.stderr[-3:])}".rstrip(": "))
            try:
                packets: int | None = self._merge(cap)["packets"]
            except OSError as exc:
                # A full disk (ENOSPC) or similar: say so; what was merged so far is kept.
                warnings.append(f"merging the capture failed: {exc.strerror or exc}")
                packets = None
            for d in ("client", "server"):
                for f in cap.directory.glob(f"{d}.pcap*"):
                    f.unlink(missing_ok=True)
            cap.result = {
                "handle": cap.handle,
                "path": str(cap.path),
                "size": cap.path.stat().st_size if cap.path.exists() else 0,
                "packets": packets,
                "interfaces": {side: f"{name}" for side, name in cap.interfaces.items()},
                "direction": cap.direction,
                "ring_mb": cap.ring_mb,
                "seconds": round(time.monotonic() - cap.started_mono, 3),
                "started": cap.started_wall,
                "dropped_by_kernel": dropped,
                "warnings": warnings,
            }
            return cap.result

    def snapshot(self, handle: str, since_ns: int, until_ns: int | None = None) -> Capture:
        """A new, stopped capture holding the packets of running capture ``handle`` captured
        from ``since_ns`` to ``until_ns`` (wall clock, ns; None: now); ``handle`` keeps
        running.  Its result's ``complete`` is False when the ring had already dropped packets
        from after ``since_ns`` (the ring's oldest packet is newer than that)."""
        src = self.get(handle)
        if src.result is not None:
            raise CaptureError(f"capture {handle} is stopped: a snapshot needs a running capture")
        with self._lock:
            if len(self._captures) >= MAX_CAPTURES:
                raise CaptureError(f"capture: {MAX_CAPTURES} captures exist already; discard one first")
            h = secrets.token_hex(6)
            snap = Capture(h, self.root / h, src.direction, src.ring_mb, dict(src.interfaces), time.time(),
                           time.monotonic(), 0.0)
            self._captures[snap.handle] = snap
        try:
            snap.directory.mkdir(parents=True)
            warnings = [f"tcpdump on {s.ifname} ({s.side} side) has exited ({s.proc.returncode}): the capture "
                        "ends there" for s in src.sides if s.proc.poll() is not None]
            stats = self._merge(src, snap.path, since_ns, until_ns)
        except BaseException:
            self.discard(snap.handle)
            raise
        oldest = stats["oldest_ns"]
        snap.result = {
            "handle": snap.handle, "path": str(snap.path), "size": snap.path.stat().st_size,
            "packets": stats["packets"], "interfaces": dict(src.interfaces), "direction": src.direction,
            "ring_mb": src.ring_mb, "seconds": round(((until_ns or time.time_ns()) - since_ns) / 1e9, 3),
            "started": since_ns / 1e9, "dropped_by_kernel": {}, "warnings": warnings, "of": handle,
            "complete": oldest is None or oldest <= since_ns or stats["wrapped"] is False,
        }
        return snap

    def _merge(self, cap: Capture, out_path: Path | None = None, since_ns: int | None = None,
               until_ns: int | None = None) -> dict[str, Any]:
        """Merge ``cap``'s ring files (those of a running capture as far as tcpdump has
        written them: it writes each packet at once, -U) into ``out_path`` (default: the
        capture's own pcapng), keeping packets from ``since_ns`` to ``until_ns``."""
        sources: list[tuple[str, list[IO[bytes]]]] = []
        opened: list[IO[bytes]] = []
        try:
            for side in ("client", "server"):
                files: list[IO[bytes]] = []
                for f in sorted(cap.directory.glob(f"{side}.pcap*")):
                    fh = f.open("rb")
                    opened.append(fh)
                    files.append(fh)
                sources.append((f"{cap.interfaces[side]} ({side} side)", files))
            with (out_path or cap.path).open("wb") as out:
                return merge_pcaps(out, sources, since_ns=since_ns, until_ns=until_ns)
        finally:
            for opened_file in opened:
                opened_file.close()

    def _expire(self, handle: str) -> None:
        try:
            self.stop(handle)
        except (CaptureError, OSError):
            pass  # discarded meanwhile, or the directory is gone: nothing left to stop

    # -- read, discard ----------------------------------------------------------------------
    def discard(self, handle: str) -> bool:
        """Stop (without merging) and remove a capture; False if there was none."""
        with self._lock:
            cap = self._captures.pop(handle, None)
        if cap is None:
            return False
        if cap.timer is not None:
            cap.timer.cancel()
        for s in cap.sides:
            if s.exit is None and s.proc.returncode is None:
                _kill(s.proc)
            _close(s.proc)
        shutil.rmtree(cap.directory, ignore_errors=True)
        return True

    def reap_leftovers(self) -> int:
        """At agent start: kill tcpdumps an earlier agent left writing under ``root`` (it was
        killed; its children were not) and delete what they wrote.  How many were killed."""
        killed = 0
        marker = str(self.root) + "/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # ended meanwhile, or not ours to read
            # A capture's tcpdump, whatever runs it: it writes (-w) under our root.
            if b"-w" in argv and any(a.decode(errors="replace").startswith(marker) for a in argv):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
        return killed

    def get(self, handle: str) -> Capture:
        with self._lock:
            cap = self._captures.get(handle)
        if cap is None:
            raise KeyError(f"no capture {handle!r} (discarded, or never started)")
        return cap

    def handles(self) -> list[str]:
        with self._lock:
            return sorted(self._captures)


def read_chunk(path: Path, offset: int, size: int) -> dict[str, Any]:
    """Up to ``size`` (at most MAX_READ_BYTES) bytes of ``path`` from ``offset``, base64, with
    the file's total size and whether this chunk reaches its end."""
    total = path.stat().st_size
    if offset > total:
        raise ValueError(f"offset {offset} is past the end ({total} bytes)")
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(min(size, MAX_READ_BYTES))
    return {"data": base64.b64encode(data).decode("ascii"), "offset": offset, "size": len(data),
            "total": total, "eof": offset + len(data) >= total}


# --------------------------------------------------------------------------------------
# one tcpdump
# --------------------------------------------------------------------------------------
def _wait_listening(s: _Side, deadline: float, timeout_s: float) -> None:
    """Read tcpdump's stderr until it says it is listening (from then on it captures)."""
    assert s.proc.stderr is not None
    fd = s.proc.stderr.fileno()
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CaptureError(f"capture: tcpdump on {s.ifname} did not start within {timeout_s:g} s")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # tcpdump exited
            s.proc.wait()
            s.stderr.extend(buf.decode(errors="replace").splitlines())
            raise CaptureError(f"capture: tcpdump on {s.ifname} exited ({s.proc.returncode}): "
                               f"{' '.join(s.stderr[-3:]) or 'no message'}")
        buf += chunk
        if b"listening on" in buf:
            s.stderr.extend(buf.decode(errors="replace").splitlines())
            return


def _stop_side(s: _Side) -> None:
    """Wait for a tcpdump sent SIGINT (``CaptureTable.stop``), SIGKILL after STOP_TIMEOUT_S;
    records the exit when it was not a clean stop."""
    proc = s.proc
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(proc)
        s.exit = f"did not stop within {STOP_TIMEOUT_S:g} s and was killed (its last packets may be lost)"
    if proc.stderr is not None:
        try:
            s.stderr.extend(proc.stderr.read().decode(errors="replace").splitlines())
        except (OSError, ValueError):
            pass
    if s.exit is None and proc.returncode not in (0, -signal.SIGINT):
        s.exit = f"exited ({proc.returncode})"
    _close(proc)


def _kernel_drops(lines: list[str]) -> int | None:
    """tcpdump's "N packets dropped by kernel" (packets the capture lost, not the traffic)."""
    for line in lines:
        if "dropped by kernel" in line:
            try:
                return int(line.split()[0])
            except (ValueError, IndexError):
                return None
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _close(proc: subprocess.Popen[bytes]) -> None:
    if proc.stderr is not None:
        try:
            proc.stderr.close()
        except OSError:
            pass
