"""The agent's side of an engine process (``engine_process.py``): start it, talk to it over
its stdin/stdout pipes, restart it when it dies.

``EngineProcess`` has the surface ``UserspaceBackend`` expects of a queue worker
(``engine``, ``held``, ``set_engine``, ``flush``, ``stop``, ``alive``, ``fatal``), so the backend
is the same whether the engine runs in a thread or in a process.  ``engine`` is the agent's
copy of the desired engine (config, resolved seed, stream); the process runs an identical one.

Supervision: a thread waits for the process to exit.  Unless the backend closed it, it
records why (exit code or signal), starts a new process and sends it the desired engine
again (same config, same seed, same stream; the match lives in the iptables rules, which
did not change).  Between the death and the new process binding the queue, the kernel drops
the queued direction's packets (no listener, no ``--queue-bypass``): fail-closed.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from .counters import EngineCounters
from .engine import Engine, EngineConfig, HeldQueue
from .engine_process import config_to_wire, counters_from_wire

log = logging.getLogger("netbed.router.userspace")

#: Longest wait for one answer (or the ready line) from the engine process, seconds.
ANSWER_TIMEOUT_S = 5.0
#: Wait between failed restarts, seconds (doubling up to RESTART_BACKOFF_MAX_S).
RESTART_BACKOFF_S = 0.1
RESTART_BACKOFF_MAX_S = 2.0


class EngineDied(RuntimeError):
    """The engine process exited, or did not answer in time."""


def exit_reason(returncode: int) -> str:
    """``"killed by SIGKILL"`` for a negative return code, else ``"exited with status N"``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _child_env() -> dict[str, str]:
    """Our environment, with our import path, so the child imports the same netbed_router."""
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


class EngineProcess:
    """One direction's engine in a supervised child process."""

    def __init__(self, queue_num: int, name: str, *, stream: int | None = None,
                 command: Sequence[str] | None = None, scheduling: str = "realtime", gso: bool = True,
                 coalesce_us: int | None = None) -> None:
        """stream: the direction index (default: queue_num); command: the child's argv (tests
        run a fake engine; default ``python3 -m netbed_router.engine_process``); scheduling: the
        child worker's class (``scheduling.MODES``; real-time with its fallback by default); gso: let it take GSO
        units whole when the impairment allows (``EngineConfig.gso_safe``); coalesce_us: the
        child's wakeup coalescing (None: its default, ``worker.DEFAULT_COALESCE_US``)."""
        self.queue_num, self.name = queue_num, name
        self.command = list(command) if command is not None else [
            sys.executable, "-m", "netbed_router.engine_process", "--queue-num", str(queue_num), "--name", name,
            "--scheduling", scheduling, "--gso", "on" if gso else "off",
            *([] if coalesce_us is None else ["--coalesce-us", str(coalesce_us)])]
        self.stream = queue_num if stream is None else stream
        self.held = HeldQueue()  # the backend builds engines on it; packets are held in the child
        self.engine = Engine(EngineConfig(seed=0), self.held, EngineCounters(), stream=self.stream)
        self.restarts = 0
        self.last_exit: str | None = None
        self.last_restart_monotonic: float | None = None
        self.reapplied = False
        self.worker_fatal: str | None = None
        # What the process's worker got (scheduling.Scheduling.to_dict()), from its last stats.
        self.scheduling: dict[str, Any] | None = None
        self.decisions_max: int | None = None  # the decision log's size while it runs
        self.armed = False  # the worker wakes for steps handed over (arm); a restart re-arms it
        self._lock = threading.RLock()
        self._closing = False
        self._stopped = False
        self._proc, self._out, self.pid = self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name=f"engine-sup-{name}", daemon=True)
        self._supervisor.start()

    # -- the worker surface ---------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True until ``stop``: a dead process is restarted by the supervisor, not replaced."""
        return not self._closing

    @property
    def fatal(self) -> str | None:
        return self.worker_fatal

    def set_engine(self, engine: Engine) -> None:
        """Make ``engine`` the desired engine and send it to the process.  If the process is
        down, the supervisor sends it when the new one is up."""
        keep = engine.stats is self.engine.stats
        self.engine = engine
        try:
            self._call(self._engine_request(engine, keep_counters=keep))
        except EngineDied as exc:
            log.warning("%s: engine process down (%s); the restart applies the new setting", self.name, exc)

    def schedule_engine(self, engine: Engine, at_ns: int) -> None:
        """Make ``engine`` the desired engine, for the process to swap in by itself at ``at_ns``
        (``time.monotonic_ns``; ``pending_switch.py``).  If the process is down, the restart
        applies it at once (the supervisor does not know deadlines)."""
        keep = engine.stats is self.engine.stats
        self.engine = engine
        request = self._engine_request(engine, keep_counters=keep)
        request["at_ns"] = at_ns
        try:
            self._call(request)
        except EngineDied as exc:
            log.warning("%s: engine process down (%s); the restart applies the new setting", self.name, exc)

    def arm(self, on: bool) -> bool:
        """Make the process's idle worker wakeable by ``schedule_engine`` (``on``), or not; True
        once it is (False: the process is down or did not confirm in time)."""
        self.armed = on
        try:
            return bool(self._call({"op": "arm", "on": on}).get("armed"))
        except EngineDied:
            return False

    def wait_switched(self, timeout_s: float) -> int | None:
        """When the process swapped in the engine of ``schedule_engine`` (monotonic ns), waiting
        up to ``timeout_s``; None if it did not (cancelled, timed out, process down)."""
        try:
            value = self._call({"op": "switched", "timeout_s": timeout_s}).get("switched_ns")
        except EngineDied:
            return None
        return None if value is None else int(value)

    def flush(self, timeout_s: float = 2.0) -> bool:
        try:
            return bool(self._call({"op": "flush"}).get("flushed"))
        except EngineDied:
            return False

    def stop(self) -> None:
        """Release held packets, stop the process (kill it after ANSWER_TIMEOUT_S).  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._closing = True  # first, without the lock: a restart loop holding it sees this and ends
        with self._lock:
            proc = self._proc
            try:
                self._call({"op": "close"})
            except (EngineDied, RuntimeError):
                pass
            try:
                proc.wait(timeout=ANSWER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _close_pipes(proc)
        self._supervisor.join(timeout=ANSWER_TIMEOUT_S)

    # -- the decision log (decision_log.py) ---------------------------------------------------
    def decisions_start(self, max_entries: int) -> None:
        """Log each packet's decision in the process (kept across a restart, minus the
        entries the dead process held)."""
        self.decisions_max = max_entries
        try:
            self._call({"op": "decisions_start", "max_entries": max_entries})
        except EngineDied as exc:
            log.warning("%s: engine process down (%s); the restart starts the decision log", self.name, exc)

    def decisions_write(self, path: str, since_ns: int) -> dict[str, Any]:
        """Write the process's decision log from engine time ``since_ns`` on to ``path``; its header."""
        try:
            return self._call({"op": "decisions_write", "path": path, "since_ns": since_ns})
        except EngineDied as exc:
            return {"entries": 0, "omitted": 0, "error": f"engine process down: {exc}"}

    def decisions_stop(self) -> None:
        """Stop logging."""
        self.decisions_max = None
        try:
            self._call({"op": "decisions_stop"})
        except EngineDied:
            pass  # a restarted process starts without the log (decisions_max is None)

    # -- stats ----------------------------------------------------------------------------
    def refresh_stats(self) -> bool:
        """Copy the process's counters into ``engine.stats``; False if it did not answer."""
        try:
            reply = self._call({"op": "stats"})
        except EngineDied:
            return False
        counters_from_wire(reply["counters"], self.engine.stats)
        self.worker_fatal = reply.get("worker_fatal")
        self.scheduling = reply.get("scheduling")
        return bool(reply.get("worker_alive"))

    def supervision(self) -> dict[str, Any]:
        """What ``impair_status`` shows: pid, running, restarts, last exit, re-applied."""
        proc = self._proc
        since = self.last_restart_monotonic
        return {
            "pid": self.pid,
            "running": proc.poll() is None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "reapplied": self.reapplied,
            "seconds_since_restart": None if since is None else round(time.monotonic() - since, 3),
            "scheduling": self.scheduling,
        }

    # -- the process ----------------------------------------------------------------------
    def _spawn(self) -> tuple[subprocess.Popen[str], IO[str], int]:
        proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=_child_env(), close_fds=True)
        assert proc.stdout is not None
        try:
            ready = self._read(proc, proc.stdout)
        except EngineDied:
            proc.kill()
            proc.wait()
            raise
        return proc, proc.stdout, int(ready["pid"])

    def _read(self, proc: subprocess.Popen[str], out: IO[str]) -> dict[str, Any]:
        r, _, _ = select.select([out], [], [], ANSWER_TIMEOUT_S)
        line = out.readline() if r else ""
        if not line:
            rc = proc.poll()
            raise EngineDied(exit_reason(rc) if rc is not None else f"no answer in {ANSWER_TIMEOUT_S:g} s")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"engine process ({self.name}): {reply.get('error')}")
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            proc, out = self._proc, self._out
            if proc.stdin is None or proc.stdin.closed:
                raise EngineDied("closed")
            try:
                proc.stdin.write(json.dumps(req) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise EngineDied(str(exc)) from None
            return self._read(proc, out)

    def _engine_request(self, engine: Engine, *, keep_counters: bool) -> dict[str, Any]:
        config = config_to_wire(engine.config)
        config["seed"] = engine.seed  # resolved: a seed drawn at random is the same after a restart
        return {"op": "engine", "config": config, "stream": engine.stream, "keep_counters": keep_counters,
                "stats_seed": engine.stats.seed, "flush": engine.noop}

    def _supervise(self) -> None:
        while True:
            proc = self._proc
            returncode = proc.wait()
            with self._lock:  # short: requests meanwhile fail fast (the old pipes are closed)
                if self._closing:
                    return
                self.last_exit = exit_reason(returncode)
                self.restarts += 1
                self.reapplied = False
                log.error("%s: engine process %d %s; restarting it (restart %d)", self.name, self.pid,
                          self.last_exit, self.restarts)
                _close_pipes(proc)
            self._restart()

    def _restart(self) -> None:
        """Start a new process and send it the desired engine; retry with backoff until it works
        or the backend closes (the queue stays unbound meanwhile: its packets are dropped).
        The process starts without the lock, so agent requests are not held up meanwhile."""
        backoff = RESTART_BACKOFF_S
        while not self._closing:
            try:
                proc, out, pid = self._spawn()
            except (EngineDied, OSError, RuntimeError) as exc:
                log.error("%s: engine restart failed: %s; retrying in %.1f s", self.name, exc, backoff)
                time.sleep(backoff)
                backoff = min(2 * backoff, RESTART_BACKOFF_MAX_S)
                continue
            with self._lock:
                if self._closing:
                    proc.kill()
                    proc.wait()
                    _close_pipes(proc)
                    return
                self._proc, self._out, self.pid = proc, out, pid
                active = not self.engine.noop
                self.engine.stats.reset()  # the new process counts from zero
                try:
                    self._call(self._engine_request(self.engine, keep_counters=False))
                    if self.decisions_max is not None:
                        self._call({"op": "decisions_start", "max_entries": self.decisions_max})
                    if self.armed:
                        self._call({"op": "arm", "on": True})
                except (EngineDied, RuntimeError) as exc:
                    # The supervise loop sees this process exit and tries again.
                    log.error("%s: engine process %d did not take the impairment: %s", self.name, pid, exc)
                    proc.kill()
                    return
                self.reapplied = active
                self.last_restart_monotonic = time.monotonic()
            log.warning("%s: engine process %d started; impairment %s", self.name, pid,
                        "re-applied (same config, seed and stream)" if active else "none to re-apply")
            return


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    """Close our ends of a finished process's pipes (a flush to a dead reader must not raise)."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
