"""Programs on the host: run one to completion, or spawn one and talk to it later.

Every process starts in its own session and process group (`start_new_session`),
with an argument list (never a shell: pass ["sh", "-c", ...] for one), and is
killed by process group (SIGKILL to -pgid), so whatever it started dies with it:
- `proc_run` at its `timeout` (the reply then says `timed_out` and carries the
  output printed so far);
- a spawned process when its connection closes, or sends `close_all` / `reset` /
  `proc_close_all`, or `proc_close` names it.

Output is captured per stream (stdout and stderr apart) into a buffer that keeps
the last `max_output` bytes; `*_dropped` says how many bytes were discarded from
the start, so a truncated capture is never mistaken for the whole.  Bytes travel
as base64.  The agent's own token (NETBED_AGENT_TOKEN) is removed from the
environment a process inherits; `env` adds or overrides variables verbatim.
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
from typing import TYPE_CHECKING, Any

from .args import Args, b64
from .errors import OperationTimeout, RequestError
from .limits import (
    DEFAULT_OUTPUT_BYTES,
    MAX_ARGV_ITEMS,
    MAX_OUTPUT_BUFFERED_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_PROCESSES_PER_CONNECTION,
    MAX_RUNNING_PROCESSES,
)

if TYPE_CHECKING:
    from .session import Session

#: Environment variables a process never inherits from the agent.
HIDDEN_ENV = frozenset({"NETBED_AGENT_TOKEN"})
#: After a kill, how long we keep reading what the process group wrote before
#: it died (seconds): its pipes reach EOF as soon as the last writer is gone.
DRAIN_AFTER_KILL_S = 1.0
#: After a spawned process exits, how long proc_wait waits at most for its pipes to
#: reach EOF (seconds; a loaded machine can take a while to schedule the reader).
OUTPUT_SETTLE_S = 5.0
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


# -- arguments ----------------------------------------------------------------------------
def _text(op: str, what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{op}: {what} must be a string, got {value!r}")
    if "\0" in value:
        raise RequestError(f"{op}: {what} contains a NUL character")
    return value


def _argv(args: Args) -> list[str]:
    value = args.raw("argv", required=True)
    if not isinstance(value, list) or not value:
        raise RequestError(f"{args.op}: argument 'argv' must be a non-empty list of strings, got {value!r}")
    if len(value) > MAX_ARGV_ITEMS:
        raise RequestError(f"{args.op}: argument 'argv' has {len(value)} items; at most {MAX_ARGV_ITEMS}")
    argv = [_text(args.op, f"argv[{i}]", item) for i, item in enumerate(value)]
    if not argv[0]:
        raise RequestError(f"{args.op}: argv[0] (the program) is empty")
    return argv


def _env(args: Args) -> dict[str, str]:
    value = args.raw("env")
    base = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    if value is None:
        return base
    if not isinstance(value, dict):
        raise RequestError(f"{args.op}: argument 'env' must be an object of strings, got {value!r}")
    for key, item in value.items():
        _text(args.op, "an env name", key)
        if not key or "=" in key:
            raise RequestError(f"{args.op}: env name {key!r} is empty or holds '='")
        _text(args.op, f"env[{key!r}]", item)
    return {**base, **value}


def _cwd(args: Args) -> str | None:
    value = args.raw("cwd")
    return None if value is None else _text(args.op, "argument 'cwd'", value)


def _start(op: str, argv: list[str], env: dict[str, str], cwd: str | None, stdin: bool) -> subprocess.Popen[bytes]:
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


def _pump(proc: subprocess.Popen[bytes], out: Capture, err: Capture, stdin_data: bytes,
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


def _limit(args: Args) -> int:
    return args.int("max_output", DEFAULT_OUTPUT_BYTES, minimum=0, maximum=MAX_OUTPUT_BYTES)


def _output(out: Capture, err: Capture) -> dict[str, Any]:
    stdout, stdout_dropped = out.snapshot()
    stderr, stderr_dropped = err.snapshot()
    return {"stdout": b64(stdout), "stderr": b64(stderr),
            "stdout_dropped": stdout_dropped, "stderr_dropped": stderr_dropped}


# -- run to completion --------------------------------------------------------------------
def op_proc_run(args: Args) -> dict[str, Any]:
    """Run argv to completion (or to `timeout`, then kill its process group)."""
    argv = _argv(args)
    env = _env(args)
    cwd = _cwd(args)
    stdin_data = args.bytes("input", required=False)
    limit = _limit(args)
    timeout = args.timeout()
    args.finish()
    session = args.session
    out, err = Capture(limit), Capture(limit)
    budget = BUDGET
    budget.reserve(2 * limit, args.op)
    try:
        return _run(session, argv, env, cwd, stdin_data, out, err, timeout, args.op)
    finally:
        budget.release(2 * limit)


def _run(session: Session, argv: list[str], env: dict[str, str], cwd: str | None, stdin_data: bytes,
         out: Capture, err: Capture, timeout: float, op: str) -> dict[str, Any]:
    started = time.monotonic()
    proc = _start(op, argv, env, cwd, stdin=bool(stdin_data))
    # Owned by the session while it runs: a closed connection ends it too.
    session.processes.track_group(proc.pid)
    try:
        timed_out = _pump(proc, out, err, stdin_data, session.cancelled, started + timeout)
        remaining = max(0.0, started + timeout - time.monotonic())
        try:
            returncode = proc.wait(remaining if not timed_out else DRAIN_AFTER_KILL_S)
        except subprocess.TimeoutExpired:
            # Its pipes closed (or a grandchild holds them) but it still runs: the deadline ends it.
            timed_out = True
            kill_group(proc.pid)
            returncode = proc.wait()
    finally:
        if proc.poll() is None:
            kill_group(proc.pid)
            proc.wait()
        session.processes.untrack_group(proc.pid)
    return {"pid": proc.pid, "returncode": returncode, "timed_out": timed_out,
            "duration_s": round(time.monotonic() - started, 6), **_output(out, err)}


# -- spawn and manage ---------------------------------------------------------------------
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

    def state(self) -> dict[str, Any]:
        return {"proc": self.handle, "pid": self.proc.pid, "argv": self.argv, "returncode": self.proc.poll(),
                **_output(self.out, self.err)}


class ProcessTable:
    """One session's processes: spawned ones by handle, and process groups still to kill."""

    def __init__(self, session: Session) -> None:
        self._session = session
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
            proc = _start(op, argv, env, cwd, stdin=bool(stdin_data))
        except BaseException:
            _RUNNING.release()
            budget.release(2 * limit)
            raise
        item = Spawned(handle, argv, proc, limit, budget)
        with self._lock:
            self._procs[handle] = item
            self._groups.add(proc.pid)

        def pump() -> None:
            try:
                _pump(proc, item.out, item.err, stdin_data, item.stop, None)
                # Pipes closed: the process has ended or closed them itself; either way
                # it is reaped by wait/poll, not here (that would race with proc_wait).
            finally:
                item.pumped.set()

        self._session.spawn(pump, f"proc-{handle}")
        return item

    def get(self, handle: Any) -> Spawned:
        with self._lock:
            item = self._procs.get(handle) if type(handle) is int else None
        if item is None:
            raise RequestError(f"no process with handle {handle!r} on this connection", kind="bad_handle")
        return item

    def close(self, handle: Any) -> dict[str, Any]:
        """Kill the process's group, wait for it, forget it; returns its final state."""
        item = self.get(handle)
        with self._lock:
            self._procs.pop(handle, None)
        self._finish(item)
        return item.state()

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


def op_proc_spawn(args: Args) -> dict[str, Any]:
    """Start argv in the background; returns its handle and pid."""
    argv = _argv(args)
    env = _env(args)
    cwd = _cwd(args)
    stdin_data = args.bytes("input", required=False)
    limit = _limit(args)
    args.finish()
    item = args.session.processes.spawn(argv, env, cwd, stdin_data, limit, args.op)
    return {"proc": item.handle, "pid": item.proc.pid}


def op_proc_output(args: Args) -> dict[str, Any]:
    """What the process printed so far (stdout, stderr apart) and its exit code (null while it runs)."""
    handle = args.raw("proc", required=True)
    args.finish()
    return args.session.processes.get(handle).state()


def op_proc_wait(args: Args) -> dict[str, Any]:
    """Wait up to `timeout` s for the process to exit; its state (with the output) then."""
    handle = args.raw("proc", required=True)
    timeout = args.timeout()
    args.finish()
    item = args.session.processes.get(handle)
    deadline = time.monotonic() + timeout
    while True:
        try:
            item.proc.wait(min(POLL_S, max(0.0, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            if args.session.cancelled.is_set() or time.monotonic() >= deadline:
                raise OperationTimeout(
                    f"process {handle} (pid {item.proc.pid}) still running after {timeout:g} s") from None
    # Its last output may still be in the pipes: wait for EOF, up to the caller's timeout
    # (at least DRAIN_AFTER_KILL_S, at most OUTPUT_SETTLE_S: a child of its group that
    # keeps the pipes open must not hold the reply; what it printed so far is in it).
    item.pumped.wait(min(OUTPUT_SETTLE_S, max(DRAIN_AFTER_KILL_S, deadline - time.monotonic())))
    return item.state()


#: Signals proc_signal accepts by name.
SIGNALS = {name: int(getattr(signal, name)) for name in
           ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT")}


def op_proc_signal(args: Args) -> dict[str, Any]:
    """Send `signal` (a name in SIGNALS) to the process's group (or only to it, `group` false)."""
    handle = args.raw("proc", required=True)
    name = args.str("signal", "SIGTERM")
    group = args.bool("group", True)
    args.finish()
    if name not in SIGNALS:
        raise RequestError(f"{args.op}: unknown signal {name!r}; one of {', '.join(sorted(SIGNALS))}")
    item = args.session.processes.get(handle)
    pid = item.proc.pid
    if item.proc.poll() is not None and not group:
        return {"delivered": False}
    if group:
        return {"delivered": kill_group(pid, SIGNALS[name])}
    os.kill(pid, SIGNALS[name])
    return {"delivered": True}


def op_proc_close(args: Args) -> dict[str, Any]:
    """Kill the process's group (if still running), forget it; its final state."""
    handle = args.raw("proc", required=True)
    args.finish()
    return args.session.processes.close(handle)


def op_proc_list(args: Args) -> dict[str, Any]:
    """This connection's processes: handle, pid, argv, exit code (null while running)."""
    args.finish()
    return {"processes": [{"proc": p.handle, "pid": p.proc.pid, "argv": p.argv, "returncode": p.proc.poll()}
                          for p in args.session.processes.items()]}


def op_proc_close_all(args: Args) -> dict[str, Any]:
    """Kill every process group this connection started (sockets and jobs stay)."""
    args.finish()
    return {"killed": args.session.processes.clear()}


OPS = {
    "proc_run": op_proc_run,
    "proc_spawn": op_proc_spawn,
    "proc_output": op_proc_output,
    "proc_wait": op_proc_wait,
    "proc_signal": op_proc_signal,
    "proc_close": op_proc_close,
    "proc_list": op_proc_list,
    "proc_close_all": op_proc_close_all,
}
