"""The processes one connection starts: their process groups, output and slots.

Every process starts in its own session and process group (`start_new_session`,
`start_process`), so `kill_group` (SIGKILL to -pgid) ends whatever it started too.
`pump` feeds a process's stdin and reads its stdout and stderr into a `Capture`
each, which keeps the last bytes of the stream and counts what it dropped.

A `ProcessTable` (one per session, session.py) holds the spawned processes by
handle and every process group still to kill; `clear` kills them all.  Agent-wide
bounds: `_RUNNING` spawned processes, and `BUDGET` bytes of captured output.
The operations (proc_*) are in processes.py.
"""

from __future__ import annotations

import itertools
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from .errors import RequestError
from .limits import MAX_OUTPUT_BUFFERED_BYTES, MAX_PROCESSES_PER_CONNECTION, MAX_RUNNING_PROCESSES
from .threads import ThreadOwner

#: After a kill, how long we keep reading what the process group wrote before
#: it died (seconds): its pipes reach EOF as soon as the last writer is gone.
DRAIN_AFTER_KILL_S = 1.0
#: How often blocked loops look at their stop conditions, seconds.
POLL_S = 0.2

#: Spawned processes alive in the whole agent (all connections).
_RUNNING = threading.BoundedSemaphore(MAX_RUNNING_PROCESSES)


class OutputBudget:
    """Bytes of output capture the whole agent may hold: each process reserves 2 x max_output."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.reserved = 0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int, op: str) -> None:
        with self._lock:
            if self.reserved + nbytes > self.total:
                raise RequestError(
                    f"{op}: output buffers would exceed the agent's {self.total} bytes "
                    f"({self.reserved} reserved); ask for a smaller max_output or close processes", kind="busy")
            self.reserved += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved -= nbytes


BUDGET = OutputBudget(MAX_OUTPUT_BUFFERED_BYTES)


class Capture:
    """The last `limit` bytes of one stream, and how many were dropped before them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            excess = len(self._buf) - self.limit
            if excess > 0:
                del self._buf[:excess]
                self.dropped += excess

    def snapshot(self) -> tuple[bytes, int]:
        with self._lock:
            return bytes(self._buf), self.dropped


def start_process(op: str, argv: list[str], env: dict[str, str], cwd: str | None,
                  stdin: bool) -> subprocess.Popen[bytes]:
    """Popen in a new session; an exec failure is an OSError naming the program (or cwd)."""
    try:
        return subprocess.Popen(
            argv, env=env, cwd=cwd, start_new_session=True, close_fds=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as exc:
        # subprocess sets filename to the cwd when chdir failed, else to the program.
        what = exc.filename if exc.filename is not None else argv[0]
        raise OSError(exc.errno, f"{what!r}: {exc.strerror or exc}") from None


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False if it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def group_alive(pgid: int) -> bool:
    return kill_group(pgid, 0)


def pump(proc: subprocess.Popen[bytes], out: Capture, err: Capture, stdin_data: bytes,
          stop: threading.Event, deadline: float | None) -> bool:
    """Feed stdin, read stdout/stderr until both reach EOF.

    Stops reading when `stop` is set, or at `deadline` (monotonic seconds), after
    killing the process group and draining for DRAIN_AFTER_KILL_S.  True if it
    killed the group because of the deadline.
    """
    sel = selectors.DefaultSelector()
    # Registered by file descriptor: reads and writes go straight to the fds.
    captures: dict[int, Capture] = {}
    for stream, capture in ((proc.stdout, out), (proc.stderr, err)):
        assert stream is not None
        fd = stream.fileno()
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
        captures[fd] = capture
    pending = memoryview(stdin_data)
    stdin_fd = -1
    if proc.stdin is not None:
        if pending:
            stdin_fd = proc.stdin.fileno()
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    timed_out = False
    drain_until: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if drain_until is None and (stop.is_set() or (deadline is not None and now >= deadline)):
                timed_out = not stop.is_set()
                kill_group(proc.pid)
                drain_until = now + DRAIN_AFTER_KILL_S
            if drain_until is not None and now >= drain_until:
                break
            limit = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - now))
            if drain_until is not None:
                limit = min(POLL_S, max(0.0, drain_until - now))
            for key, _ in sel.select(limit):
                if key.fd == stdin_fd:
                    try:
                        sent = os.write(stdin_fd, pending[:65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        sent = len(pending)  # it stopped reading: the rest is not wanted
                    pending = pending[sent:]
                    if not pending:
                        sel.unregister(stdin_fd)
                        assert proc.stdin is not None
                        with suppress(OSError):
                            proc.stdin.close()
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    captures[key.fd].add(data)
                else:
                    sel.unregister(key.fd)
    finally:
        sel.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
    return timed_out


class Spawned:
    """One spawned process, its captured output and its pump thread."""

    def __init__(self, handle: int, argv: list[str], proc: subprocess.Popen[bytes], limit: int,
                 budget: OutputBudget) -> None:
        self.handle = handle
        self.budget = budget  # released into the budget it was reserved from
        self.argv = argv
        self.proc = proc
        self.out = Capture(limit)
        self.err = Capture(limit)
        self.stop = threading.Event()
        self.pumped = threading.Event()
        self.released = False


class ProcessTable:
    """One session's processes: spawned ones by handle, and process groups still to kill.

    `owner` runs the threads that read the spawned processes' output.
    """

    def __init__(self, owner: ThreadOwner) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._procs: dict[int, Spawned] = {}
        self._groups: set[int] = set()
        self._ids = itertools.count(1)

    def track_group(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)

    def untrack_group(self, pgid: int) -> None:
        # A group that outlives its leader (a daemonised child) stays ours to kill.
        if not group_alive(pgid):
            with self._lock:
                self._groups.discard(pgid)

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None, stdin_data: bytes,
              limit: int, op: str) -> Spawned:
        with self._lock:
            if len(self._procs) >= MAX_PROCESSES_PER_CONNECTION:
                raise RequestError(
                    f"{op}: this connection already holds {MAX_PROCESSES_PER_CONNECTION} processes; "
                    "proc_close some, or close_all", kind="busy")
            if not _RUNNING.acquire(blocking=False):
                raise RequestError(f"{op}: the agent already runs {MAX_RUNNING_PROCESSES} processes", kind="busy")
            handle = next(self._ids)
        budget = BUDGET
        try:
            budget.reserve(2 * limit, op)
        except BaseException:
            _RUNNING.release()
            raise
        try:
            proc = start_process(op, argv, env, cwd, stdin=bool(stdin_data))
        except BaseException:
            _RUNNING.release()
            budget.release(2 * limit)
            raise
        item = Spawned(handle, argv, proc, limit, budget)
        with self._lock:
            self._procs[handle] = item
            self._groups.add(proc.pid)

        def read_output() -> None:
            try:
                pump(proc, item.out, item.err, stdin_data, item.stop, None)
                # Pipes closed: the process has ended or closed them itself; either way
                # it is reaped by wait/poll, not here (that would race with proc_wait).
            finally:
                item.pumped.set()

        self._owner.spawn(read_output, f"proc-{handle}")
        return item

    def get(self, handle: Any) -> Spawned:
        with self._lock:
            item = self._procs.get(handle) if type(handle) is int else None
        if item is None:
            raise RequestError(f"no process with handle {handle!r} on this connection", kind="bad_handle")
        return item

    def close(self, handle: Any) -> Spawned:
        """Kill the process's group, wait for it, forget it; returns it, ended."""
        item = self.get(handle)
        with self._lock:
            self._procs.pop(handle, None)
        self._finish(item)
        return item

    def _finish(self, item: Spawned) -> None:
        kill_group(item.proc.pid)
        item.proc.wait()
        item.stop.set()
        item.pumped.wait(DRAIN_AFTER_KILL_S + 2 * POLL_S)
        with self._lock:
            if not item.released:
                item.released = True
                _RUNNING.release()
                item.budget.release(2 * item.out.limit)
            if not group_alive(item.proc.pid):
                self._groups.discard(item.proc.pid)

    def items(self) -> Iterator[Spawned]:
        with self._lock:
            return iter(list(self._procs.values()))

    def clear(self) -> int:
        """Kill every process group this session started; returns how many processes it held."""
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
            groups = set(self._groups)
        for pgid in groups:
            kill_group(pgid)
        for item in procs:
            self._finish(item)
        with self._lock:
            self._groups = {g for g in self._groups if group_alive(g)}
        return len(procs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._procs)
