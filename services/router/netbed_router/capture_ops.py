"""The router's capture operations: capture_start, capture_stop, capture_read, capture_discard.

The capture itself is ``capture.py`` (tcpdump per data interface, one pcapng); the
userspace engine's decision log is ``decision_log.py``, run by the engine processes and
written beside the capture as ``decisions.jsonl`` (one header line, then every decision of
both directions in time order).  docs/agent-protocol.md states the arguments and replies.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_core import subnets

from .capture import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_RING_MB,
    DIRECTION_FILTERS,
    MAX_MAX_SECONDS,
    MAX_READ_BYTES,
    MAX_RING_MB,
    MIN_RING_MB,
    START_TIMEOUT_S,
    CaptureError,
    CaptureTable,
    read_chunk,
)
from .decision_log import DEFAULT_MAX_ENTRIES, MAX_MAX_ENTRIES
from .interfaces import InterfaceError, find_interfaces, read_addresses

DECISIONS_FILE = "decisions.jsonl"
#: What a capture_read may read, by name.
FILES = {"capture": "capture.pcapng", "decisions": DECISIONS_FILE}


class RouterView(Protocol):
    """What these operations need of the router's state (``ops.RouterState``)."""

    backend: Any
    backend_name: str


class CaptureOps:
    """The operations, on one router's state and capture table."""

    def __init__(self, state: RouterView, captures: CaptureTable | None = None) -> None:
        self.state = state
        self.captures = captures if captures is not None else CaptureTable()
        # Captures with a decision log, and when each started (CLOCK_MONOTONIC ns, the
        # engines' clock).  Each engine has one log, shared: it runs while any of them does,
        # and each capture gets the entries from its own start on.
        self.decisions: dict[str, int] = {}
        self._decisions_lock = threading.Lock()

    def ops(self) -> dict[str, Any]:
        return {
            "capture_start": self.op_capture_start,
            "capture_stop": self.op_capture_stop,
            "capture_snapshot": self.op_capture_snapshot,
            "capture_read": self.op_capture_read,
            "capture_discard": self.op_capture_discard,
        }

    def interfaces(self) -> dict[str, str]:
        """The client- and server-side interfaces: the backend's, else found by subnet."""
        backend = self.state.backend
        client_if, server_if = getattr(backend, "client_if", None), getattr(backend, "server_if", None)
        if isinstance(client_if, str) and isinstance(server_if, str):
            return {"client": client_if, "server": server_if}
        nets = {
            "client4": os.environ.get("NETBED_CLIENT_NET4", subnets.CLIENT_NET4),
            "server4": os.environ.get("NETBED_SERVER_NET4", subnets.SERVER_NET4),
            "client6": os.environ.get("NETBED_CLIENT_NET6") or None,
            "server6": os.environ.get("NETBED_SERVER_NET6") or None,
        }
        try:
            return find_interfaces(nets, read_addresses())
        except InterfaceError as exc:
            raise RequestError(f"capture: {exc}", kind="command_failed") from None

    # -- capture_start ------------------------------------------------------------------------
    def op_capture_start(self, args: Args) -> dict[str, Any]:
        """Start capturing both data interfaces; with ``decisions``, the userspace engine logs
        each packet's decision too."""
        direction = args.str("direction", "both")
        ring_mb = args.int("ring_mb", DEFAULT_RING_MB, minimum=MIN_RING_MB, maximum=MAX_RING_MB)
        max_seconds = args.float("max_seconds", DEFAULT_MAX_SECONDS, minimum=1.0, maximum=MAX_MAX_SECONDS)
        decisions = args.bool("decisions", False)
        max_entries = args.int("max_decisions", DEFAULT_MAX_ENTRIES, minimum=1, maximum=MAX_MAX_ENTRIES)
        survives_reset = args.bool("survives_reset", False)
        start_timeout = args.timeout(START_TIMEOUT_S)
        args.finish()
        if direction not in DIRECTION_FILTERS:
            raise RequestError(f"capture_start: direction {direction!r}: expected one of "
                               f"{', '.join(DIRECTION_FILTERS)}")
        interfaces = self.interfaces()
        try:
            cap = self.captures.start(interfaces, direction=direction, ring_mb=ring_mb, max_seconds=max_seconds,
                                      start_timeout_s=start_timeout)
        except CaptureError as exc:
            raise RequestError(str(exc), kind="command_failed") from None
        cap.survives_reset = survives_reset
        note = self._start_decisions(cap.handle, max_entries) if decisions else None
        return {"handle": cap.handle, "interfaces": interfaces, "direction": direction, "ring_mb": ring_mb,
                "max_seconds": max_seconds, "decisions": decisions and note is None, "decisions_note": note}

    def _start_decisions(self, handle: str, max_entries: int) -> str | None:
        """Start the engines' decision log for ``handle``; None, or why there is none."""
        start = getattr(self.state.backend, "decisions_start", None)
        if start is None:
            return f"no decision log on the {self.state.backend_name} backend (netem decides inside the kernel)"
        with self._decisions_lock:
            if not self.decisions:
                start(max_entries)  # else the running log serves this capture too (its size stays)
            self.decisions[handle] = time.monotonic_ns()
        return None

    # -- capture_snapshot -----------------------------------------------------------------
    def op_capture_snapshot(self, args: Args) -> dict[str, Any]:
        """A stopped copy of a running capture's packets from ``since_ns`` to ``until_ns``
        (wall clock ns), with its decision log over the same span; the capture keeps running.
        Answers as ``capture_stop`` does, for the new ``handle``."""
        handle = args.str("handle", required=True)
        since_ns = args.int("since_ns", required=True, minimum=0)
        until_ns = args.opt_int("until_ns", minimum=0)
        decisions = args.bool("decisions", True)
        args.timeout()  # the client's wait for this reply
        args.finish()
        try:
            snap = self.captures.snapshot(handle, since_ns, until_ns)
        except KeyError as exc:
            raise RequestError(str(exc.args[0]), kind="bad_handle") from None
        except CaptureError as exc:
            raise RequestError(str(exc), kind="command_failed") from None
        assert snap.result is not None
        if decisions and handle in self.decisions:
            mono_to_wall = time.time_ns() - time.monotonic_ns()
            until_mono = None if until_ns is None else until_ns - mono_to_wall
            with self._decisions_lock:
                snap.result["decisions"] = self._write_decisions(snap.directory, since_ns - mono_to_wall,
                                                                 until_mono)
        return dict(snap.result)

    def _end_decisions(self, handle: str, directory: Path | None) -> dict[str, Any] | None:
        """``handle``'s share of the log written to ``directory`` (None: not written); the
        log stops when no capture wants it any more.  None if ``handle`` had no log."""
        backend = self.state.backend
        with self._decisions_lock:
            since = self.decisions.pop(handle, None)
            if since is None:
                return None
            written = self._write_decisions(directory, since) if directory is not None else None
            if not self.decisions:
                stop = getattr(backend, "decisions_stop", None)
                if stop is not None:
                    stop()
            return written

    # -- capture_stop ---------------------------------------------------------------------
    def op_capture_stop(self, args: Args) -> dict[str, Any]:
        """Stop a capture and merge it into one pcapng; its size, packets and warnings."""
        handle = args.str("handle", required=True)
        args.timeout()  # the client's wait for this reply; each tcpdump gets STOP_TIMEOUT_S
        args.finish()
        try:
            result = dict(self.captures.stop(handle))
        except KeyError as exc:
            raise RequestError(str(exc.args[0]), kind="bad_handle") from None
        written = self._end_decisions(handle, Path(result["path"]).parent)
        if written is not None:
            result["decisions"] = written
        return result

    def _write_decisions(self, directory: Path, since_ns: int, until_ns: int | None = None) -> dict[str, Any]:
        """Have each engine write its log from ``since_ns`` on (engine time), then join them,
        in time order and up to ``until_ns``, into decisions.jsonl."""
        write = getattr(self.state.backend, "decisions_write", None)
        if write is None:
            return {"error": "the backend changed while the capture ran"}
        headers: dict[str, dict[str, Any]] = write(str(directory), since_ns)
        entries: list[dict[str, Any]] = []
        for head in headers.values():
            part = directory / str(head.get("file", ""))
            if head.get("file") and part.is_file():
                with part.open() as f:
                    next(f, None)  # the direction's header: kept in `headers`
                    entries.extend(json.loads(line) for line in f if line.strip())
                part.unlink()
        if until_ns is not None:
            entries = [e for e in entries if e["t_ns"] <= until_ns]
        entries.sort(key=lambda e: e["t_ns"])
        path = directory / DECISIONS_FILE
        with path.open("w") as f:
            f.write(json.dumps({"decision_log": headers}) + "\n")
            for e in entries:
                f.write(json.dumps(e) + "\n")
        return {"file": DECISIONS_FILE, "size": path.stat().st_size, "entries": len(entries),
                "directions": headers}

    # -- capture_read, capture_discard ----------------------------------------------------------
    def op_capture_read(self, args: Args) -> dict[str, Any]:
        """A chunk of a stopped capture's file (``file``: capture or decisions), base64."""
        handle = args.str("handle", required=True)
        which = args.str("file", "capture")
        offset = args.int("offset", 0, minimum=0)
        size = args.int("size", MAX_READ_BYTES, minimum=1, maximum=MAX_READ_BYTES)
        args.timeout()  # the client's wait for this reply
        args.finish()
        if which not in FILES:
            raise RequestError(f"capture_read: file {which!r}: expected one of {', '.join(FILES)}")
        try:
            cap = self.captures.get(handle)
        except KeyError as exc:
            raise RequestError(str(exc.args[0]), kind="bad_handle") from None
        if cap.result is None:
            raise RequestError(f"capture {handle} is still running: stop it first (capture_stop)")
        path = cap.directory / FILES[which]
        if not path.is_file():
            raise RequestError(f"capture {handle} has no {which} file"
                               + (" (capture_start with decisions, on the userspace backend)"
                                  if which == "decisions" else ""))
        try:
            return read_chunk(path, offset, size)
        except ValueError as exc:
            raise RequestError(f"capture_read: {exc}") from None

    def op_capture_discard(self, args: Args) -> dict[str, Any]:
        """Stop (if running) and delete a capture and its files."""
        handle = args.str("handle", required=False, default="")
        every = args.bool("all", False)
        args.timeout()  # the client's wait for this reply
        args.finish()
        if every == bool(handle):
            raise RequestError("capture_discard: give exactly one of 'handle' or 'all': true")
        if every:
            return {"discarded": self.discard_all(keep_survivors=False)}
        return {"discarded": self.discard(handle)}

    def discard(self, handle: str) -> bool:
        """Stop the decision log if ``handle`` runs it, then remove the capture."""
        self._end_decisions(handle, None)
        return self.captures.discard(handle)

    def discard_all(self, *, keep_survivors: bool = True) -> int:
        """Remove every capture (``reset``: except those started with ``survives_reset``);
        how many there were."""
        handles = [h for h in self.captures.handles()
                   if not (keep_survivors and getattr(self._find(h), "survives_reset", False))]
        return sum(self.discard(h) for h in handles)

    def _find(self, handle: str) -> Any:
        try:
            return self.captures.get(handle)
        except KeyError:
            return None
