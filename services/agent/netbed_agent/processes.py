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

This module reads the arguments and builds the replies; starting, reading and
killing processes, and the table of a connection's processes, are in
process_table.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from . import process_table
from .args import Args, b64
from .errors import OperationTimeout, RequestError
from .limits import DEFAULT_OUTPUT_BYTES, MAX_ARGV_ITEMS, MAX_OUTPUT_BYTES
from .process_table import DRAIN_AFTER_KILL_S, POLL_S, Capture, Spawned, kill_group, pump, start_process

if TYPE_CHECKING:
    from .session import Session

#: Environment variables a process never inherits from the agent.
HIDDEN_ENV = frozenset({"NETBED_AGENT_TOKEN"})
#: After a spawned process exits, how long proc_wait waits at most for its pipes to
#: reach EOF (seconds; a loaded machine can take a while to schedule the reader).
OUTPUT_SETTLE_S = 5.0


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


def _limit(args: Args) -> int:
    return args.int("max_output", DEFAULT_OUTPUT_BYTES, minimum=0, maximum=MAX_OUTPUT_BYTES)


def _output(out: Capture, err: Capture) -> dict[str, Any]:
    stdout, stdout_dropped = out.snapshot()
    stderr, stderr_dropped = err.snapshot()
    return {"stdout": b64(stdout), "stderr": b64(stderr),
            "stdout_dropped": stdout_dropped, "stderr_dropped": stderr_dropped}


def _state(item: Spawned) -> dict[str, Any]:
    return {"proc": item.handle, "pid": item.proc.pid, "argv": item.argv, "returncode": item.proc.poll(),
            **_output(item.out, item.err)}


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
    budget = process_table.BUDGET
    budget.reserve(2 * limit, args.op)
    try:
        return _run(session, argv, env, cwd, stdin_data, out, err, timeout, args.op)
    finally:
        budget.release(2 * limit)


def _run(session: Session, argv: list[str], env: dict[str, str], cwd: str | None, stdin_data: bytes,
         out: Capture, err: Capture, timeout: float, op: str) -> dict[str, Any]:
    started = time.monotonic()
    proc = start_process(op, argv, env, cwd, stdin=bool(stdin_data))
    # Owned by the session while it runs: a closed connection ends it too.
    session.processes.track_group(proc.pid)
    try:
        timed_out = pump(proc, out, err, stdin_data, session.cancelled, started + timeout)
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
    return _state(args.session.processes.get(handle))


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
    return _state(item)


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
    return _state(args.session.processes.close(handle))


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
