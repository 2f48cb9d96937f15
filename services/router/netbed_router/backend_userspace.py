"""Userspace impairment backend: iptables NFQUEUE + the netem-compatible engine.

The router's kernel has no ``sch_netem``, so forwarded packets that an impairment applies
to are diverted with iptables/ip6tables ``-j NFQUEUE`` (chain ``NETBED``, jumped to from
``FORWARD``) into queue 0 (client -> server) or queue 1 (server -> client).  One worker
thread per queue reads packets over nfnetlink_queue (``nfqueue.py``), asks that
direction's ``Engine`` (``engine.py``) what to do and issues verdicts; duplicates are
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

import argparse
import errno
import json
import logging
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .engine import NF_ACCEPT, Engine, EngineConfig, HeldQueue
from .interfaces import find_interfaces, read_addresses
from .match import PROTOCOLS, normalize_match
from .nfqueue import (
    MAX_COPY_RANGE,
    NFQNL_MSG_PACKET,
    NLMSG_ERROR,
    NfQueue,
    parse_packet,
    read_kernel_stats,
)
from .stats import DirectionStats

log = logging.getLogger("netbed.router.userspace")

DIRECTIONS = ("to-server", "to-client")
QUEUE_NUMS = {"to-server": 0, "to-client": 1}
CHAIN = "NETBED"
#: Kernel-side queue length (packets awaiting our verdict, held ones included).  The
#: engine's own ``limit_packets`` applies first; this is the memory safety net.
KERNEL_QUEUE_MAXLEN = 32768
#: How often an idle worker wakes up to notice stop/flush requests (s).
IDLE_WAKE_S = 0.05
#: Packets read without blocking before verdicts are sent in one datagram.
DRAIN_BATCH = 64
#: Largest verdict datagram (bytes); netlink refuses messages above the socket sndbuf.
MAX_SEND_BYTES = 256 * 1024

_ACCEPT_BE = NF_ACCEPT.to_bytes(4, "big")
_MSG_HDR = struct.Struct("=IH")  # nlmsghdr length, type
_ERRNO = struct.Struct("=i")  # nlmsgerr.error (negative errno)


# --------------------------------------------------------------------------------------
# Interfaces and rules
# --------------------------------------------------------------------------------------
def disable_offloads(ifname: str) -> str:
    """``ethtool -K IF gro off gso off tso off`` so impairments act per wire packet.

    Returns "ok" or why it did not work (missing ethtool, unsupported feature...).
    """
    ethtool = shutil.which("ethtool")
    if ethtool is None:
        return "ethtool not installed"
    r = subprocess.run(
        [ethtool, "-K", ifname, "gro", "off", "gso", "off", "tso", "off"], capture_output=True, text=True
    )
    return "ok" if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


def rule_args(
    in_if: str, out_if: str, match: Mapping[str, Any] | None, queue_num: int, family: int
) -> list[str] | None:
    """iptables arguments (after ``-A CHAIN``) for one direction, or None if ``match``
    cannot apply to this address family (icmp on IPv6, icmpv6 on IPv4)."""
    args = ["-i", in_if, "-o", out_if]
    if match is not None:
        proto = match["proto"]
        if proto == "icmp":
            if family == 6:
                return None
            args += ["-p", "icmp"]
        elif proto == "icmpv6":
            if family == 4:
                return None
            args += ["-p", "ipv6-icmp"]
        else:
            args += ["-p", str(PROTOCOLS.get(proto, proto))]
        if match["port"] is not None:
            # Source or destination port: both halves of a flow match.
            args += ["-m", "multiport", "--ports", str(match["port"])]
    # No --queue-bypass: fail-closed (see module docstring).
    return args + ["-j", "NFQUEUE", "--queue-num", str(queue_num)]


class Rules:
    """The NETBED chain in the filter table, for IPv4 and IPv6, rewritten atomically."""

    def __init__(self, chain: str = CHAIN, iptables: str = "iptables", ip6tables: str = "ip6tables") -> None:
        self.chain = chain
        self.tools = {4: iptables, 6: ip6tables}
        self.installed: dict[int, list[list[str]]] = {4: [], 6: []}
        self.jump = {4: False, 6: False}
        self.v6_error: str | None = None

    def _run(
        self, family: int, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        tool = self.tools[family]
        cmd = [tool + "-restore", "--noflush", "-w"] if stdin is not None else [tool, "-w", *args]
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
        return r

    def set(self, rules: dict[int, list[list[str]]]) -> None:
        """Make the chain hold exactly ``rules[family]`` (each an arg list after -A CHAIN);
        jump to it from FORWARD only while it is non-empty."""
        for family in (4, 6):
            want = rules.get(family, [])
            try:
                if want != self.installed[family]:
                    # ":CHAIN - [0:0]" with --noflush creates or flushes just this chain;
                    # the whole replacement is one atomic table commit.
                    lines = ["*filter", f":{self.chain} - [0:0]"]
                    lines += [" ".join([f"-A {self.chain}", *a]) for a in want]
                    lines.append("COMMIT")
                    self._run(family, stdin="\n".join(lines) + "\n")
                    self.installed[family] = [list(a) for a in want]
                if want and not self.jump[family]:
                    if self._run(family, "-C", "FORWARD", "-j", self.chain, check=False).returncode != 0:
                        self._run(family, "-I", "FORWARD", "1", "-j", self.chain)
                    self.jump[family] = True
                elif not want and self.jump[family]:
                    self._remove_jump(family)
            except (RuntimeError, FileNotFoundError) as exc:
                if family == 4:
                    raise
                # IPv6 rules are best effort (a router without ip6tables still impairs v4).
                self.v6_error = str(exc)
                log.warning("ip6tables: %s", exc)

    def _remove_jump(self, family: int) -> None:
        for _ in range(8):
            if self._run(family, "-D", "FORWARD", "-j", self.chain, check=False).returncode != 0:
                break
        self.jump[family] = False

    def remove_all(self) -> None:
        """Remove the jump and the chain (best effort, both families)."""
        for family in (4, 6):
            try:
                self._remove_jump(family)
                self._run(family, "-F", self.chain, check=False)
                self._run(family, "-X", self.chain, check=False)
            except FileNotFoundError:
                pass
            self.installed[family] = []


# --------------------------------------------------------------------------------------
# One queue's worker
# --------------------------------------------------------------------------------------
class QueueWorker:
    """Runs one NFQUEUE queue through an ``Engine`` in a daemon thread.

    ``set_engine`` swaps the engine atomically (held packets stay held, like
    ``tc qdisc change``); the next packet read uses the new engine.
    """

    def __init__(
        self, queue_num: int, name: str, *, batch_verdicts: bool = True, busy_poll_s: float = 0.0
    ) -> None:
        """busy_poll_s: keep polling (100% of a CPU) for this long after each packet before
        sleeping in recv; 0 = always sleep."""
        self.name = name
        self.busy_poll_s = busy_poll_s
        self.q = NfQueue(
            queue_num, copy_range=MAX_COPY_RANGE, max_len=KERNEL_QUEUE_MAXLEN, recv_timeout_s=IDLE_WAKE_S
        )
        self.held = HeldQueue()
        self.engine = Engine(EngineConfig(seed=0), self.held, DirectionStats())
        self.batch_verdicts = batch_verdicts
        self._raw4: socket.socket | None = None
        self._raw6: socket.socket | None = None
        self._stop = False
        self._flush_requested = False
        self._flushed = threading.Event()
        self.fatal: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"nfq-{name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def set_engine(self, engine: Engine) -> None:
        self.engine = engine

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Release every held packet now (from the worker thread); True when done."""
        self._flushed.clear()
        self._flush_requested = True
        return self._flushed.wait(timeout_s)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)
        for s in (self._raw4, self._raw6):
            if s is not None:
                s.close()
        self.q.close()

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never die silently
            if not self._stop:
                self.fatal = repr(exc)
                self.engine.stats.errors += 1
                self.engine.stats.last_error = self.fatal
                log.exception("%s: engine thread died", self.name)

    def _loop(self) -> None:
        q = self.q
        sock = q.sock
        fd = q.fileno()
        buf = bytearray(1 << 18)
        mv = memoryview(buf)
        recv_into = sock.recv_into
        heap = self.held.heap
        accept_ids: list[int] = []
        dontwait = socket.MSG_DONTWAIT
        spin_ns = int(self.busy_poll_s * 1e9)
        last_pkt = 0
        while not self._stop:
            eng = self.engine
            try:
                if self._flush_requested:
                    self._flush_requested = False
                    eng.flush_all()
                    self._send(eng, accept_ids)
                    self._flushed.set()
                if q.pending:
                    for msg in q.pending:
                        mbuf = bytearray(msg)
                        self._handle(eng, mbuf, memoryview(mbuf), len(mbuf), accept_ids)
                    q.pending.clear()
                    self._send(eng, accept_ids)
                if heap:
                    eng.release(time.monotonic_ns())
                    if eng.out or eng.inject:
                        self._send(eng, accept_ids)
                    wake = eng.next_wakeup_ns()
                    if wake is not None:
                        wait = wake - time.monotonic_ns()
                        if wait <= 0:
                            # Due already: release it now.  Falling through to the
                            # blocking recv would hold it until the next packet came.
                            continue
                        r, _, _ = select.select([fd], [], [], min(wait / 1e9, IDLE_WAKE_S))
                        if not r:
                            continue
                if spin_ns and time.monotonic_ns() - last_pkt < spin_ns:
                    # Busy-poll while traffic flows: waking a sleeping thread costs
                    # milliseconds now and then on a loaded/virtual CPU (see docs/engine.md).
                    try:
                        n = recv_into(buf, 0, dontwait)
                    except (BlockingIOError, InterruptedError):
                        continue
                else:
                    try:
                        n = recv_into(buf)
                    except (BlockingIOError, InterruptedError, TimeoutError):
                        continue
                last_pkt = time.monotonic_ns()
                # Re-read after blocking: an apply() that happened meanwhile must act on
                # this packet already.
                eng = self.engine
                self._handle(eng, buf, mv, n, accept_ids)
                for _ in range(DRAIN_BATCH):
                    try:
                        n = recv_into(buf, 0, dontwait)
                    except (BlockingIOError, InterruptedError):
                        break
                    self._handle(eng, buf, mv, n, accept_ids)
                self._send(eng, accept_ids)
            except OSError as exc:
                if self._stop or exc.errno == errno.EBADF:
                    break
                if exc.errno == errno.ENOBUFS:  # we fell behind; the kernel dropped packets
                    eng.stats.errors += 1
                    eng.stats.last_error = "ENOBUFS: netlink receive buffer overrun"
                    continue
                self._count_error(eng, exc)
            except Exception as exc:  # noqa: BLE001 - logged and counted; the loop must survive
                self._count_error(eng, exc)

    def _count_error(self, eng: Engine, exc: BaseException) -> None:
        eng.stats.errors += 1
        eng.stats.last_error = repr(exc)
        log.exception("%s: engine error", self.name)
        time.sleep(0.001)  # a persistent error must not spin a CPU

    def _handle(self, eng: Engine, buf: bytearray, mv: memoryview, n: int, accept_ids: list[int]) -> None:
        """Process every netlink message in buf[:n]."""
        off = 0
        on_packet = eng.on_packet
        mono = time.monotonic_ns
        unpack_hdr = _MSG_HDR.unpack_from
        while off + 16 <= n:
            mlen, mtype = unpack_hdr(buf, off)
            if mlen < 16:
                break
            if mtype == NFQNL_MSG_PACKET:
                pid, poff, plen, cap, _ = parse_packet(buf, off, mlen)
                if pid >= 0:
                    try:
                        if on_packet(pid, mv[poff : poff + plen], cap or plen, mono()):
                            accept_ids.append(pid)
                    except Exception as exc:  # noqa: BLE001 - logged and counted below
                        # The packet must still get a verdict or it stays queued forever.
                        eng.out.append((pid, 0, None))
                        eng.stats.dropped_error += 1
                        self._count_error(eng, exc)
            elif mtype == NLMSG_ERROR:
                err = -_ERRNO.unpack_from(buf, off + 16)[0]
                if err:
                    eng.stats.errors += 1
                    eng.stats.last_error = f"kernel rejected a verdict: {errno.errorcode.get(err, err)}"
            off += (mlen + 3) & ~3

    def _send(self, eng: Engine, accept_ids: list[int]) -> None:
        """Send pending verdicts (one datagram per MAX_SEND_BYTES) and duplicate copies."""
        q = self.q
        msgs: list[bytes] = []
        if eng.out:
            vm = q.verdict_msg
            msgs.extend(vm(pid, verdict, payload) for pid, verdict, payload in eng.out)
            eng.out.clear()
        if accept_ids:
            if self.batch_verdicts and not self.held.heap:
                # Nothing is held back, so "accept every id up to the last" is exact.
                msgs.append(q.batch_msg(accept_ids[-1]))
            else:
                prefix = q._verdict_prefix + _ACCEPT_BE
                msgs.extend(prefix + pid.to_bytes(4, "big") for pid in accept_ids)
            accept_ids.clear()
        if msgs:
            data = b"".join(msgs)
            if len(data) <= MAX_SEND_BYTES:
                q.send(data)
            else:
                chunk: list[bytes] = []
                size = 0
                for m in msgs:
                    if size + len(m) > MAX_SEND_BYTES and chunk:
                        q.send(b"".join(chunk))
                        chunk, size = [], 0
                    chunk.append(m)
                    size += len(m)
                if chunk:
                    q.send(b"".join(chunk))
        if eng.inject:
            for payload in eng.inject:
                self._inject(eng, payload)
            eng.inject.clear()

    def _inject(self, eng: Engine, payload: bytes | bytearray) -> None:
        """Send a duplicate copy as-is through a raw socket (IP header included)."""
        try:
            if payload[0] >> 4 == 4:
                if self._raw4 is None:
                    self._raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._raw4.sendto(payload, (socket.inet_ntop(socket.AF_INET, bytes(payload[16:20])), 0))
            else:
                if self._raw6 is None:
                    # IPPROTO_RAW on an IPv6 raw socket implies a caller-built header.
                    self._raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._raw6.sendto(payload, (socket.inet_ntop(socket.AF_INET6, bytes(payload[24:40])), 0))
        except OSError as exc:
            eng.stats.dropped_error += 1
            eng.stats.passed -= 1
            eng.stats.last_error = f"duplicate injection failed: {exc}"


# --------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------
class UserspaceBackend:
    """Impairments per direction on a router without sch_netem.

    ``apply(direction, spec, match)`` / ``clear(direction)`` / ``stats()`` / ``close()``;
    direction is ``"to-server"`` (client -> server) or ``"to-client"``.
    """

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
    ) -> None:
        """Find the client- and server-side interfaces by subnet (IPv4, else IPv6) and
        turn their offloads off.  Nothing is queued until ``apply``."""
        self.nets = {
            "client4": client_net4,
            "server4": server_net4,
            "client6": client_net6,
            "server6": server_net6,
        }
        found = find_interfaces(self.nets, read_addresses())
        self.client_if, self.server_if = found["client"], found["server"]
        self.offloads: dict[str, str] = {}
        if offloads_off:
            for ifname in (self.client_if, self.server_if):
                self.offloads[ifname] = disable_offloads(ifname)
        self.rules = Rules(chain, iptables, ip6tables)
        self._workers: dict[str, QueueWorker] = {}
        self._active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _check_direction(direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {', '.join(DIRECTIONS)}, got {direction!r}")

    def _worker(self, direction: str) -> QueueWorker:
        w = self._workers.get(direction)
        if w is None or not w.alive:
            if w is not None:
                w.stop()
            w = QueueWorker(QUEUE_NUMS[direction], direction)
            self._workers[direction] = w
        return w

    def _desired_rules(self) -> dict[int, list[list[str]]]:
        rules: dict[int, list[list[str]]] = {4: [], 6: []}
        for direction in DIRECTIONS:
            st = self._active.get(direction)
            if st is None:
                continue
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
    ) -> dict[str, Any]:
        """Impair ``direction`` per ``spec`` (the impairment dict), for packets matching
        ``match`` only (None: all).  Takes effect for the next packet the engine reads.
        Counters restart from zero.  Returns ``{"seed": ...}`` (the seed in use)."""
        self._check_direction(direction)
        config = EngineConfig.from_dict(spec)
        m = normalize_match(match)
        with self._lock:
            if self._closed:
                raise RuntimeError("backend is closed")
            if config.is_noop:
                self._clear_locked(direction)
                return {"seed": config.seed, "queued": False}
            w = self._worker(direction)
            engine = Engine(config, w.held, DirectionStats())
            w.set_engine(engine)  # before the rules, so no packet meets the old engine
            self._active[direction] = {"spec": dict(spec), "match": m}
            try:
                self.rules.set(self._desired_rules())
            except Exception:
                self._active.pop(direction, None)
                raise
            return {"seed": engine.seed, "queued": True}

    def clear(self, direction: str) -> None:
        """Remove the impairment: the rule goes first, then held packets are released."""
        self._check_direction(direction)
        with self._lock:
            self._clear_locked(direction)

    def _clear_locked(self, direction: str) -> None:
        was_active = self._active.pop(direction, None) is not None
        if was_active:
            self.rules.set(self._desired_rules())
        w = self._workers.get(direction)
        if w is not None:
            old = w.engine
            noop = Engine(EngineConfig(seed=0), w.held, old.stats)  # keep counters readable
            noop.stats.seed = old.seed
            w.set_engine(noop)
            if w.held.heap and w.alive:
                w.flush()

    def stats(self) -> dict[str, Any]:
        """Counters per direction (see stats.DirectionStats) plus state and kernel counters."""
        kernel = read_kernel_stats()
        out: dict[str, Any] = {
            "backend": "userspace",
            "fail_mode": "closed",
            "interfaces": {"client": self.client_if, "server": self.server_if},
            "offloads": dict(self.offloads),
            "ipv6_rules_error": self.rules.v6_error,
            "directions": {},
        }
        for direction in DIRECTIONS:
            w = self._workers.get(direction)
            active = self._active.get(direction)
            d: dict[str, Any] = {
                "active": active is not None,
                "spec": active["spec"] if active else None,
                "match": active["match"] if active else None,
                "queue_num": QUEUE_NUMS[direction],
                "worker_alive": bool(w and w.alive),
                "worker_fatal": w.fatal if w else None,
            }
            if w is not None:
                d.update(w.engine.stats.snapshot())
                d["kernel"] = kernel.get(QUEUE_NUMS[direction])
            else:
                d.update(DirectionStats().snapshot())
                d["kernel"] = None
            out["directions"][direction] = d
        return out

    def close(self) -> None:
        """Remove all rules, release held packets, stop the workers.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._active.clear()
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

    def __enter__(self) -> UserspaceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# A JSON-lines control loop (tests, benchmarks, manual use inside a router netns)
# --------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m netbed_router.backend_userspace --client-net4 ... --server-net4 ...``

    Reads one JSON object per stdin line: ``{"op": "apply", "direction": ..., "spec": ...,
    "match": ...}``, ``{"op": "clear", "direction": ...}``, ``{"op": "stats"}``,
    ``{"op": "close"}``; answers one JSON line each: ``{"ok": true, "result": ...,
    "t_done": monotonic seconds}`` or ``{"ok": false, "error": ...}``.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--client-net4", default=os.environ.get("NETBED_CLIENT_NET4"))
    p.add_argument("--server-net4", default=os.environ.get("NETBED_SERVER_NET4"))
    p.add_argument("--client-net6", default=os.environ.get("NETBED_CLIENT_NET6"))
    p.add_argument("--server-net6", default=os.environ.get("NETBED_SERVER_NET6"))
    p.add_argument("--keep-offloads", action="store_true", help="do not run ethtool -K")
    a = p.parse_args(argv)
    if not (a.client_net4 and a.server_net4):
        p.error("--client-net4 and --server-net4 (or NETBED_CLIENT_NET4/NETBED_SERVER_NET4) are required")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    backend = UserspaceBackend(
        a.client_net4, a.server_net4, a.client_net6, a.server_net6, offloads_off=not a.keep_offloads
    )
    print(
        json.dumps(
            {
                "ok": True,
                "result": {"ready": True, "client_if": backend.client_if, "server_if": backend.server_if},
            }
        ),
        flush=True,
    )
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                op = req.get("op")
                result: Any = None
                if op == "apply":
                    result = backend.apply(req["direction"], req["spec"], req.get("match"))
                elif op == "clear":
                    backend.clear(req["direction"])
                elif op == "stats":
                    result = backend.stats()
                elif op == "close":
                    backend.close()
                    print(json.dumps({"ok": True, "result": None, "t_done": time.monotonic()}), flush=True)
                    break
                else:
                    raise ValueError(f"op: unknown {op!r}")
                print(json.dumps({"ok": True, "result": result, "t_done": time.monotonic()}), flush=True)
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
