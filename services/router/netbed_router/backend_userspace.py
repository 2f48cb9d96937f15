"""Userspace impairment backend: iptables NFQUEUE + the netem-compatible engine.

The router's kernel has no ``sch_netem``, so forwarded packets that an impairment applies
to are diverted with iptables/ip6tables ``-j NFQUEUE`` (chain ``NETBED``, jumped to from
``FORWARD``) into queue 0 (client -> server) or queue 1 (server -> client).  One engine
process per queue (``engine_process.py``, supervised by ``engine_supervisor.py``) reads
packets over nfnetlink_queue (``nfqueue.py``), asks that direction's ``Engine``
(``engine.py``) what to do and issues verdicts; duplicates are
re-injected through raw IP sockets (locally generated packets traverse OUTPUT, not
FORWARD, so they are not queued again).

Fail-closed, on purpose: the NFQUEUE rules have no ``--queue-bypass`` and the queue has no
NFQA_CFG_F_FAIL_OPEN, so if the engine dies (or falls behind and the kernel queue fills)
the affected packets are *dropped*.  A dead engine then shows up as lost traffic, which a
test notices, instead of as a silently missing impairment, which a test would take for a
pass.  But when no impairment is configured for a direction its rule is removed (and with
no impairment at all, the jump from FORWARD too): pristine forwarding is plain kernel
forwarding and cannot be broken by this module.

Only stdlib is used; subprocesses are run with argument lists, never through a shell.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

from netbed_core.directions import DIRECTIONS

from .backend import Applied, Backend, BackendStats, DirectionReport, Runner, run_command
from .counters import MEASURED, EngineCounters
from .engine import Engine, EngineConfig
from .engine_supervisor import EngineProcess
from .interfaces import find_interfaces
from .match import normalize_match
from .nfqueue import (
    read_kernel_stats,
)
from .rules import CHAIN, Rules, disable_offloads, rule_args
from .worker import IDLE_WAKE_S, QueueRunner

log = logging.getLogger("netbed.router.userspace")

QUEUE_NUMS = {"to-server": 0, "to-client": 1}



WorkerFactory = Callable[[int, str], QueueRunner]
"""Makes the runner of one queue: (queue number, direction) -> a running ``QueueRunner``."""


# --------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------
class UserspaceBackend(Backend):
    """Impairments per direction on a router without sch_netem (the contract: ``backend.Backend``).

    Measures every ``DirectionStats`` counter but the qdisc's own (backlog_bytes, overlimits,
    requeues). ``runner`` runs ip, iptables and ethtool (an argument list each), and
    ``worker_factory`` makes the NFQUEUE workers: both are there for tests.
    """

    name = "userspace"
    MEASURED = MEASURED

    def __init__(
        self,
        client_net4: str,
        server_net4: str,
        client_net6: str | None = None,
        server_net6: str | None = None,
        *,
        chain: str = CHAIN,
        iptables: str = "iptables",
        ip6tables: str = "ip6tables",
        offloads_off: bool = True,
        runner: Runner = run_command,
        worker_factory: WorkerFactory = EngineProcess,
    ) -> None:
        """Find the client- and server-side interfaces by subnet (IPv4, else IPv6) and
        turn their offloads off.  Nothing is queued until ``apply``."""
        self.nets = {
            "client4": client_net4,
            "server4": server_net4,
            "client6": client_net6,
            "server6": server_net6,
        }
        found = find_interfaces(self.nets, _addresses(runner))
        self.client_if, self.server_if = found["client"], found["server"]
        self.offloads: dict[str, str] = {}
        if offloads_off:
            for ifname in (self.client_if, self.server_if):
                self.offloads[ifname] = disable_offloads(ifname, runner)
        self.rules = Rules(chain, iptables, ip6tables, runner)
        self._new_worker = worker_factory
        self._workers: dict[str, QueueRunner] = {}
        self._active: dict[str, dict[str, Any]] = {}
        # Directions whose packets stay queued while clear (keep_queued): a pass-through engine
        # instead of removing the rule, so a scenario's clear step is an engine swap, not an
        # iptables commit of unknown duration.
        self._kept: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._decisions_max: int | None = None

    def _worker(self, direction: str) -> QueueRunner:
        w = self._workers.get(direction)
        if w is None or not w.alive:
            if w is not None:
                w.stop()
            w = self._new_worker(QUEUE_NUMS[direction], direction)
            self._workers[direction] = w
            start = getattr(w, "decisions_start", None)
            if self._decisions_max is not None and start is not None:
                start(self._decisions_max)
        return w

    # -- the decision log (decision_log.py) -------------------------------------------------
    def decisions_start(self, max_entries: int) -> None:
        """Log every packet's decision in each direction's engine (also ones started later)."""
        with self._lock:
            self._decisions_max = max_entries
            for w in self._workers.values():
                start = getattr(w, "decisions_start", None)
                if start is not None:
                    start(max_entries)

    def decisions_write(self, directory: str, since_ns: int) -> dict[str, dict[str, Any]]:
        """Write each direction's log from engine time ``since_ns`` on to
        ``directory/decisions-<direction>.jsonl``; per direction the log's header, or why
        there is none.  Logging goes on (``decisions_stop`` ends it)."""
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for direction in DIRECTIONS:
                w = self._workers.get(direction)
                write = getattr(w, "decisions_write", None)
                if w is None or write is None:
                    out[direction] = {"entries": 0, "omitted": 0, "note": "no engine ran in this direction"}
                    continue
                out[direction] = {**write(f"{directory}/decisions-{direction}.jsonl", since_ns),
                                  "file": f"decisions-{direction}.jsonl"}
            return out

    def decisions_stop(self) -> None:
        """Stop logging in every direction."""
        with self._lock:
            self._decisions_max = None
            for w in self._workers.values():
                stop = getattr(w, "decisions_stop", None)
                if stop is not None:
                    stop()

    def _desired_rules(self) -> dict[int, list[list[str]]]:
        rules: dict[int, list[list[str]]] = {4: [], 6: []}
        for direction in DIRECTIONS:
            st = self._active.get(direction)
            if st is None:
                if direction not in self._kept:
                    continue
                st = {"match": None}  # kept: every packet of the direction, to a pass-through engine
            in_if, out_if = (
                (self.client_if, self.server_if)
                if direction == "to-server"
                else (self.server_if, self.client_if)
            )
            for family in (4, 6):
                a = rule_args(in_if, out_if, st["match"], QUEUE_NUMS[direction], family)
                if a is not None:
                    rules[family].append(a)
        return rules

    def apply(
        self, direction: str, spec: Mapping[str, Any], match: Mapping[str, Any] | None = None
    ) -> Applied:
        """Impair ``direction`` per ``spec`` (the impairment dict), for packets matching
        ``match`` only (None: all).  Takes effect for the next packet the engine reads.
        Counters restart from zero.  ``Applied.seed`` is the seed in use."""
        self.check_direction(direction)
        config = EngineConfig.from_dict(spec)
        m = normalize_match(match)
        with self._lock:
            if self._closed:
                raise RuntimeError("backend is closed")
            if config.is_noop:
                self._clear_locked(direction)
                return Applied(direction, queued=False, seed=config.seed)
            w = self._worker(direction)
            engine = Engine(config, w.held, EngineCounters(), stream=DIRECTIONS.index(direction))
            w.set_engine(engine)  # before the rules, so no packet meets the old engine
            self._active[direction] = {"spec": dict(spec), "match": m}
            try:
                self.rules.set(self._desired_rules())
            except Exception:
                self._active.pop(direction, None)
                raise
            return Applied(direction, queued=True, seed=engine.seed, details={"queue_num": QUEUE_NUMS[direction]})

    def clear(self, direction: str) -> None:
        """Remove the impairment: the rule goes first, then held packets are released."""
        self.check_direction(direction)
        with self._lock:
            self._clear_locked(direction)

    def keep_queued(self, direction: str, on: bool) -> None:
        """While ``on``, a clear ``direction`` keeps its packets queued to a pass-through engine
        (its rule stays), so switching it between clear and impaired swaps the engine's
        configuration and touches no iptables rule (unless the match changes)."""
        self.check_direction(direction)
        with self._lock:
            if self._closed:
                raise RuntimeError("backend is closed")
            w: QueueRunner | None
            if on:
                self._kept.add(direction)
                w = self._worker(direction)  # its engine is the pass-through one until an apply
            else:
                self._kept.discard(direction)
                w = self._workers.get(direction)
            arm = getattr(w, "arm", None)  # steps handed over ahead wake an idle worker (schedule)
            if arm is not None and not arm(on) and on:
                log.warning("%s: the engine did not confirm it can be woken for steps; a step handed "
                            "over less than %g ms ahead may take effect up to that much late", direction,
                            IDLE_WAKE_S * 1000)
            self.rules.set(self._desired_rules())

    def schedule(self, direction: str, spec: Mapping[str, Any] | None, match: Mapping[str, Any] | None,
                 at_ns: int) -> Applied | None:
        """Hand ``direction``'s engine process the setting ``spec`` (None: clear) to switch to
        by itself at ``at_ns`` (``time.monotonic_ns``; ``pending_switch.py``).  Only where no
        iptables rule changes: the direction is kept queued (``keep_queued``) and neither the
        current nor the new setting has a match.  None (nothing done) otherwise, or when the
        worker cannot switch at a deadline: the caller applies the step at its time instead."""
        self.check_direction(direction)
        config = EngineConfig.from_dict(spec) if spec is not None else None
        with self._lock:
            if self._closed:
                raise RuntimeError("backend is closed")
            if not self._can_schedule_locked(direction, match):
                return None
            w = self._workers[direction]
            if config is None or config.is_noop:
                old = w.engine
                engine = Engine(EngineConfig(seed=0), w.held, old.stats)  # a clear keeps the counters
                engine.stats.seed = old.seed
                self._active.pop(direction, None)
            else:
                engine = Engine(config, w.held, EngineCounters(), stream=DIRECTIONS.index(direction))
                self._active[direction] = {"spec": dict(spec or {}), "match": None}
            w.schedule_engine(engine, at_ns)  # type: ignore[attr-defined]  # checked by _can_schedule_locked
            return Applied(direction, queued=True, seed=engine.seed, details={"queue_num": QUEUE_NUMS[direction]})

    def can_schedule(self, direction: str, match: Mapping[str, Any] | None) -> bool:
        """Whether ``schedule`` would take a step on ``direction`` with ``match`` (see there)."""
        with self._lock:
            return not self._closed and self._can_schedule_locked(direction, match)

    def _can_schedule_locked(self, direction: str, match: Mapping[str, Any] | None) -> bool:
        current = self._active.get(direction)
        w = self._workers.get(direction)
        return (direction in self._kept and normalize_match(match) is None and w is not None
                and getattr(w, "schedule_engine", None) is not None
                and (current is None or current["match"] is None))

    def wait_switched(self, direction: str, timeout_s: float) -> int | None:
        """When ``direction``'s engine took the setting of ``schedule`` (monotonic ns), waiting
        up to ``timeout_s``; None if it did not."""
        w = self._workers.get(direction)
        wait = getattr(w, "wait_switched", None)
        return None if wait is None else wait(timeout_s)

    def _clear_locked(self, direction: str) -> None:
        was_active = self._active.pop(direction, None) is not None
        if was_active and direction not in self._kept:
            self.rules.set(self._desired_rules())
        w = self._workers.get(direction)
        if w is not None:
            old = w.engine
            noop = Engine(EngineConfig(seed=0), w.held, old.stats)  # keep counters readable
            noop.stats.seed = old.seed
            w.set_engine(noop)
            if w.held.heap and w.alive:
                w.flush()

    def stats(self) -> BackendStats:
        """Per direction: setting, engine counters, queue and worker state, and the kernel's
        counters of the queue (/proc/net/netfilter/nfnetlink_queue)."""
        kernel = read_kernel_stats()
        directions: dict[str, DirectionReport] = {}
        for direction in DIRECTIONS:
            w = self._workers.get(direction)
            active = self._active.get(direction)
            refresh = getattr(w, "refresh_stats", None)  # an engine process: fetch its counters
            process_alive = refresh() if refresh is not None else None
            counters = (w.engine.stats if w is not None else EngineCounters()).direction_stats()
            supervision = getattr(w, "supervision", None)
            directions[direction] = DirectionReport(
                active=active is not None,
                spec=active["spec"] if active else None,
                match=active["match"] if active else None,
                counters=counters,
                details={
                    "queue_num": QUEUE_NUMS[direction],
                    "worker_alive": bool(w and w.alive) if process_alive is None else process_alive,
                    "worker_fatal": w.fatal if w else None,
                    "kernel": kernel.get(QUEUE_NUMS[direction]) if w is not None else None,
                    "engine_process": supervision() if supervision is not None else None,
                },
            )
        return BackendStats(
            backend=self.name,
            directions=directions,
            details={
                "fail_mode": "closed",
                "interfaces": {"client": self.client_if, "server": self.server_if},
                "offloads": dict(self.offloads),
                "ipv6_rules_error": self.rules.v6_error,
            },
        )

    def close(self) -> None:
        """Remove all rules, release held packets, stop the workers.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._active.clear()
            self._kept.clear()
            try:
                self.rules.remove_all()
            finally:
                for w in self._workers.values():
                    try:
                        if w.held.heap and w.alive:
                            w.flush()
                    finally:
                        w.stop()
                self._workers.clear()


def _addresses(runner: Runner) -> list[dict[str, Any]]:
    """``ip -j addr show``, parsed (through ``runner``)."""
    argv = ["ip", "-j", "addr", "show"]
    try:
        r = runner(argv)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(argv)}: no answer in {exc.timeout} s") from exc
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {r.returncode}): {' '.join(r.stderr.split())}")
    addresses: list[dict[str, Any]] = json.loads(r.stdout or "[]")
    return addresses
