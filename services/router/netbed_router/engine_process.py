"""The impairment engine of one direction, in its own process.

``python3 -m netbed_router.engine_process --queue-num N --name to-server`` binds NFQUEUE
queue N and runs a ``QueueWorker`` (``worker.py``) on it, away from the agent: a slow or
huge agent request cannot stall forwarding, and each direction has its own GIL.  The agent
side is ``engine_supervisor.EngineProcess``.

Control is one JSON object per line on stdin, one answer per line on stdout
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``); the first line the
process writes is ``{"ok": true, "result": {"ready": true, "pid": ...}}``, once the queue is
bound.  Requests:

* ``{"op": "engine", "config": {...}, "stream": 0, "keep_counters": false, "stats_seed": 7}``:
  swap in an engine for ``EngineConfig(**config)`` (its seed already resolved by the agent,
  so a restarted process draws exactly the same stream); ``keep_counters`` keeps the
  counters (a clear), else they restart at zero (an apply); ``flush`` releases held packets
  after the swap (a clear: the held packets live here, not in the agent).
  With ``"at_ns": T`` (CLOCK_MONOTONIC ns, the clock every process of the container shares)
  the worker swaps it in by itself at T (``pending_switch.py``): the answer comes at once,
  ``{"seed": ..., "pending": true}``; ``flush`` then happens at the switch.  The control thread
  then reads no request until the worker has switched (or SWITCH_GRACE_S after the deadline):
  a request arriving at the deadline (the router's ``switched``) must not make this thread
  take the GIL just when the worker needs it (a thread preempted while holding the GIL would
  stall the worker), so requests sent meanwhile are answered after the switch.
* ``{"op": "switched", "timeout_s": S}``: wait up to S seconds for the last pending switch;
  ``{"switched_ns": T}``, the monotonic time of the first packet the new engine handled (or
  of the worker's wakeup at the deadline when idle), or ``null`` (cancelled, or not yet).
* ``{"op": "arm", "on": true}``: make the idle worker wakeable by a pending switch (before a
  scenario's first step; ``worker.QueueWorker.arm``); ``{"armed": bool}``.
* ``{"op": "flush"}``: release every held packet now.
* ``{"op": "stats"}``: the counters (``EngineCounters`` slots), ``worker_alive``, ``worker_fatal``,
  ``scheduling`` (``scheduling.Scheduling.to_dict()``: real-time or why not).
* ``{"op": "close"}``: release held packets, unbind, exit 0.
* ``{"op": "decisions_start", "max_entries": N}``: log each packet's decision from now on
  (``decision_log.py``), also across engine swaps, keeping the newest N.
* ``{"op": "decisions_write", "path": P, "since_ns": T}``: write the entries from engine time T
  (CLOCK_MONOTONIC ns) on to P (JSON lines); answers the log's header (entries, omitted).
  Without a log running: ``{"entries": 0}``.
* ``{"op": "decisions_stop"}``: stop logging (the engine is a plain ``Engine`` again).

End of input (the agent died) closes the same way: the queue is unbound, so packets the
rules still send to it are dropped (fail-closed, docs/engine.md).

Scheduling (``--scheduling realtime``, the default): the worker thread asks for SCHED_FIFO and
falls back to a nice value (``scheduling.py``); this control thread stays SCHED_OTHER.  With
real-time granted, ``RLIMIT_RTTIME`` bounds a runaway worker: at the soft limit SIGXCPU makes
this process demote the worker (``scheduling.demote``); at the hard limit the kernel kills the
process and the supervisor restarts it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

from .counters import EngineCounters
from .decision_log import DecisionLog, attach, detach
from .engine import Engine, EngineConfig
from .scheduling import MODES, RT_BUDGET_US, demote, limit_rt_time
from .worker import DEFAULT_COALESCE_US, QueueRunner, QueueWorker

log = logging.getLogger("netbed.router.engine")

_CONFIG_FIELDS = frozenset(f.name for f in fields(EngineConfig))
#: How long after a pending switch's deadline the control thread waits for it before it reads
#: requests again, seconds (the worker wakes at the deadline; more means it is stuck).
SWITCH_GRACE_S = 1.0


def config_to_wire(config: EngineConfig) -> dict[str, Any]:
    """``EngineConfig`` as a JSON-able dict (tuples become lists)."""
    return asdict(config)


def config_from_wire(data: Mapping[str, Any]) -> EngineConfig:
    """The inverse of ``config_to_wire``; unknown keys are an error, not ignored."""
    unknown = set(data) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"config: unknown keys {sorted(unknown)}")
    values = dict(data)
    if "clg" in values:
        values["clg"] = tuple(values["clg"])
    if "trace_ms" in values:
        values["trace_ms"] = tuple(values["trace_ms"])
    return EngineConfig(**values)


def counters_to_wire(counters: EngineCounters) -> dict[str, Any]:
    """Every ``EngineCounters`` slot by name."""
    return {name: getattr(counters, name) for name in EngineCounters.__slots__}


def counters_from_wire(data: Mapping[str, Any], into: EngineCounters) -> None:
    """Copy the counters of ``counters_to_wire`` into ``into``."""
    for name in EngineCounters.__slots__:
        if name in data:
            setattr(into, name, data[name])


class EngineHost:
    """The requests above, on one queue worker (separate from the I/O for tests)."""

    def __init__(self, worker: QueueRunner, name: str = "") -> None:
        self.worker = worker
        self.closed = False
        self.decisions: DecisionLog | None = None
        self.name = name
        #: The deadline of the switch just offered; ``serve`` waits for it before reading on.
        self.await_switch_until_ns: int | None = None

    def await_switch(self) -> None:
        """After offering a switch: wait (without the GIL) until the worker took it, or
        SWITCH_GRACE_S past its deadline."""
        at_ns, self.await_switch_until_ns = self.await_switch_until_ns, None
        wait = getattr(self.worker, "wait_switched", None)
        if at_ns is not None and wait is not None:
            wait(max(0.0, (at_ns - time.monotonic_ns()) / 1e9) + SWITCH_GRACE_S)

    def handle(self, req: Mapping[str, Any]) -> Any:
        op = req.get("op")
        w = self.worker
        if op == "engine":
            config = config_from_wire(req["config"])
            stats = w.engine.stats if req.get("keep_counters") else EngineCounters()
            engine = Engine(config, w.held, stats, stream=int(req.get("stream", 0)))
            if req.get("stats_seed") is not None:
                engine.stats.seed = int(req["stats_seed"])
            if self.decisions is not None:
                attach(engine, self.decisions)
            if req.get("at_ns") is not None:
                schedule = getattr(w, "schedule_engine", None)
                if schedule is None:
                    raise ValueError("at_ns: this worker cannot switch at a deadline")
                at_ns = int(req["at_ns"])
                schedule(engine, at_ns, flush=bool(req.get("flush")))
                self.await_switch_until_ns = at_ns
                return {"seed": engine.seed, "pending": True}
            w.set_engine(engine)
            if req.get("flush") and w.held.heap and w.alive:
                w.flush()  # a clear: held packets leave now (the agent cannot see them)
            return {"seed": engine.seed}
        if op == "arm":
            arm = getattr(w, "arm", None)
            return {"armed": bool(arm(bool(req.get("on", True)))) if arm is not None else False}
        if op == "switched":
            wait = getattr(w, "wait_switched", None)
            return {"switched_ns": wait(float(req.get("timeout_s", 0.0))) if wait is not None else None}
        if op == "flush":
            return {"flushed": bool(w.flush()) if w.held.heap and w.alive else True}
        if op == "stats":
            sched = getattr(w, "scheduling", None)
            return {"counters": counters_to_wire(w.engine.stats), "worker_alive": w.alive,
                    "worker_fatal": w.fatal, "scheduling": sched.to_dict() if sched is not None else None}
        if op == "decisions_start":
            self.decisions = DecisionLog(self.name, int(req.get("max_entries", 100_000)))
            attach(w.engine, self.decisions)
            return {"started": True}
        if op == "decisions_write":
            if self.decisions is None:
                return {"entries": 0, "omitted": 0, "running": False}
            return self.decisions.write(Path(str(req["path"])), int(req.get("since_ns", 0)))
        if op == "decisions_stop":
            self.decisions = None
            detach(w.engine)
            return {"stopped": True}
        raise ValueError(f"op: unknown {op!r}")

    def close(self) -> None:
        """Release held packets and unbind the queue.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        w = self.worker
        try:
            if w.held.heap and w.alive:
                w.flush()
        finally:
            w.stop()


def serve(host: EngineHost, lines: IO[str], answers: IO[str]) -> int:
    """Answer the requests read from ``lines`` on ``answers`` until close or end of input."""

    def answer(obj: Mapping[str, Any]) -> None:
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    answer({"ok": True, "result": {"ready": True, "pid": os.getpid()}})
    try:
        for line in lines:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if req.get("op") == "close":
                    host.close()
                    answer({"ok": True, "result": None})
                    return 0
                answer({"ok": True, "result": host.handle(req)})
                host.await_switch()
            except Exception as exc:  # noqa: BLE001 - reported to the agent
                answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        host.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="one direction's impairment engine (NFQUEUE queue)")
    p.add_argument("--queue-num", type=int, required=True)
    p.add_argument("--name", required=True, help="the direction, for logs and thread names")
    p.add_argument("--scheduling", choices=MODES, default="realtime",
                   help="realtime: SCHED_FIFO for the worker thread, else a nice fallback (default); "
                        "nice: the fallback only; normal: unchanged")
    p.add_argument("--gso", choices=("on", "off"), default="on",
                   help="on: GSO units whole while the impairment allows it (docs/engine.md)")
    p.add_argument("--coalesce-us", type=int, default=DEFAULT_COALESCE_US,
                   help="real-time worker: wait this long after a lone packet at a high rate (0 = off)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s router engine {a.name} pid {os.getpid()} %(levelname)s %(message)s")
    worker = QueueWorker(a.queue_num, a.name, sched_mode=a.scheduling, gso=a.gso == "on",
                         coalesce_us=a.coalesce_us)
    if worker.scheduling is not None and worker.scheduling.policy == "fifo":
        signal.signal(signal.SIGXCPU, _demote_on_sigxcpu(worker))
        limit_rt_time()
    return serve(EngineHost(worker, a.name), sys.stdin, sys.stdout)


def _demote_on_sigxcpu(worker: QueueWorker) -> Any:
    """SIGXCPU: the real-time worker ran RT_BUDGET_US without sleeping; take it out of the
    real-time class so it cannot starve the agent, and say so in the stats."""

    def handler(_sig: int, _frame: object) -> None:
        if worker.tid is None or worker.scheduling is None or worker.scheduling.policy != "fifo":
            return
        reason = f"demoted: the worker ran {RT_BUDGET_US / 1e6:g} s without sleeping (RLIMIT_RTTIME)"
        try:
            worker.scheduling = demote(worker.tid, reason)
        except OSError as exc:
            log.error("could not demote the worker thread: %s", exc)
            return
        log.error("%s", worker.scheduling.describe())

    return handler


if __name__ == "__main__":
    raise SystemExit(main())
