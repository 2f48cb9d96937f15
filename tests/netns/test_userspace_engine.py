"""The userspace impairment engine on a real kernel, in network namespaces made here.

Topology (all namespaces and veths are created by the fixture and removed afterwards):

    netns C  c0 10.99.0.2/24 ---- r0 10.99.0.1/24  netns R  r1 10.99.1.1/24 ---- s0 10.99.1.2/24  netns S

R forwards; the backend runs as a subprocess inside R (``ip netns exec``) through its
JSON-lines control loop, so interface discovery, iptables/ip6tables rules, NFQUEUE and
raw-socket injection are the real ones.  Test traffic is UDP between sockets this process
creates inside C and S (``setns`` on a helper thread), nothing leaves the namespaces.

Skipped unless root with ``ip netns``, iptables and NFQUEUE support.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from netbed_core.netem import Netem
from netbed_router.engine import Engine, EngineConfig

ROOT = Path(__file__).resolve().parents[2]

CLONE_NEWNET = 0x40000000
CLIENT_NET, SERVER_NET = "10.99.0.0/24", "10.99.1.0/24"
C_ADDR, S_ADDR = "10.99.0.2", "10.99.1.2"
C6_ADDR, S6_ADDR = "fd99:0::2", "fd99:1::2"
PORT = 47000
SO_TIMESTAMPNS = 35
T = TypeVar("T")


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns unavailable: {r.stderr.strip()}"
    return None


_SKIP = _why_skip()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread that has joined netns ``ns``: sockets it creates
    live in that namespace for good and can then be used from any thread."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(f"/run/netns/{ns}", "rb") as f:
                if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            box["v"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["e"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]  # type: ignore[no-any-return]


class Topology:
    """Three namespaces C, R, S joined by two veth pairs; R routes between them."""

    def __init__(self) -> None:
        tag = f"nbt{os.getpid() % 100000}"
        self.c, self.r, self.s = f"{tag}c", f"{tag}r", f"{tag}s"
        self.created: list[str] = []

    def up(self) -> None:
        for ns in (self.c, self.r, self.s):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # veth pairs created directly inside the namespaces: nothing appears in the host netns.
        sh("ip", "-n", self.c, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", self.r)
        sh("ip", "-n", self.r, "link", "add", "r1", "type", "veth", "peer", "name", "s0", "netns", self.s)
        for ns, dev, a4, a6 in (
            (self.c, "c0", "10.99.0.2/24", "fd99:0::2/64"),
            (self.r, "r0", "10.99.0.1/24", "fd99:0::1/64"),
            (self.r, "r1", "10.99.1.1/24", "fd99:1::1/64"),
            (self.s, "s0", "10.99.1.2/24", "fd99:1::2/64"),
        ):
            sh("ip", "-n", ns, "addr", "add", a4, "dev", dev)
            sh("ip", "-n", ns, "-6", "addr", "add", a6, "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.c, "route", "add", "default", "via", "10.99.0.1")
        sh("ip", "-n", self.s, "route", "add", "default", "via", "10.99.1.1")
        sh("ip", "-n", self.c, "-6", "route", "add", "default", "via", "fd99:0::1")
        sh("ip", "-n", self.s, "-6", "route", "add", "default", "via", "fd99:1::1")
        sh("ip", "netns", "exec", self.r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", self.r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def down(self) -> None:
        # Deleting a namespace deletes its veth ends (and their peers) and its iptables.
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created.clear()


class Router:
    """The backend as a subprocess in netns R, driven through its JSON-lines loop."""

    def __init__(self, ns: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "netbed_router.backend_userspace",
                "--client-net4",
                CLIENT_NET,
                "--server-net4",
                SERVER_NET,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._read()
        assert ready["ok"], ready
        self.interfaces = ready["result"]

    def _read(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            err = self.p.stderr.read() if self.p.stderr else ""
            raise RuntimeError(f"router helper exited: {err[-2000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, **req: Any) -> Any:
        assert self.p.stdin is not None
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        ans = self._read()
        if not ans["ok"]:
            raise RuntimeError(ans["error"])
        self.last_done = ans.get("t_done")
        return ans["result"]

    def apply(self, direction: str, spec: dict[str, Any], match: dict[str, Any] | None = None) -> Any:
        return self.call(op="apply", direction=direction, spec=spec, match=match)

    def clear(self, direction: str) -> None:
        self.call(op="clear", direction=direction)

    def stats(self, direction: str) -> dict[str, Any]:
        return self.call(op="stats")["directions"][direction]  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            if self.p.poll() is None:
                self.call(op="close")
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        finally:
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()  # our own child, by handle
                self.p.wait()


def spec(**kw: Any) -> dict[str, Any]:
    """The wire dict of a pristine impairment (seed None), with `kw` replacing keys."""
    return {**Netem(seed=None).to_dict(), **kw}


UDP_MATCH = {"proto": "udp", "port": PORT}


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    t = Topology()
    try:
        t.up()
        r = sh(
            "ip",
            "netns",
            "exec",
            t.r,
            "iptables",
            "-w",
            "-A",
            "FORWARD",
            "-p",
            "udp",
            "--dport",
            "1",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "7",
            check=False,
        )
        if r.returncode != 0:
            pytest.skip(f"iptables NFQUEUE unavailable: {r.stderr.strip()}")
        sh("ip", "netns", "exec", t.r, "iptables", "-w", "-F", "FORWARD")
        yield t
    finally:
        t.down()


@pytest.fixture()
def router(topo: Topology) -> Iterator[Router]:
    r = Router(topo.r)
    try:
        yield r
    finally:
        r.close()


class Flow:
    """UDP from netns C (or S) to a receiver in the other netns; payload = seq, send time."""

    HDR = struct.Struct("!IQ")

    def __init__(self, topo: Topology, to_server: bool = True, v6: bool = False, size: int = 64) -> None:
        fam = socket.AF_INET6 if v6 else socket.AF_INET
        src_ns, dst_ns = (topo.c, topo.s) if to_server else (topo.s, topo.c)
        dst_ip = (S6_ADDR if v6 else S_ADDR) if to_server else (C6_ADDR if v6 else C_ADDR)
        self.tx = in_netns(src_ns, lambda: socket.socket(fam, socket.SOCK_DGRAM))
        self.rx = in_netns(dst_ns, lambda: socket.socket(fam, socket.SOCK_DGRAM))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        if v6:
            self.rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.rx.bind(("::" if v6 else "0.0.0.0", PORT))
        self.rx.settimeout(0.2)
        self.rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.dst = (dst_ip, PORT)
        self.size = max(size, self.HDR.size)
        self._body = bytes(i & 0xFF for i in range(self.size - self.HDR.size))
        self.received: list[tuple[int, int, int, bytes]] = []  # seq, sent ns, recv ns, payload
        self._stop = False
        self._t = threading.Thread(target=self._recv_loop, daemon=True)
        self._t.start()

    def payload(self, seq: int) -> bytes:
        """seq, CLOCK_REALTIME send time (ns), filler."""
        return self.HDR.pack(seq, time.time_ns()) + self._body

    def _recv_loop(self) -> None:
        # Kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME): latency figures must
        # not depend on when this thread gets the GIL.
        while not self._stop:
            try:
                data, anc, _, _ = self.rx.recvmsg(65535, 64)
            except (TimeoutError, OSError):
                continue
            recv_ns = time.time_ns()
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("@qq", val[:16])
                    recv_ns = sec * 1_000_000_000 + nsec
            seq, sent = self.HDR.unpack_from(data)
            self.received.append((seq, sent, recv_ns, data))

    def send(self, count: int, interval_s: float = 0.0, start: int = 0) -> None:
        """Send ``count`` datagrams, paced ``interval_s`` apart (busy-wait pacing)."""
        t_next = time.monotonic()
        for seq in range(start, start + count):
            if interval_s:
                while time.monotonic() < t_next:
                    pass
                t_next += interval_s
            self.tx.sendto(self.payload(seq), self.dst)

    def settle(self, quiet_s: float = 0.3, max_s: float = 5.0) -> None:
        """Wait until nothing has arrived for ``quiet_s``."""
        deadline = time.monotonic() + max_s
        n = -1
        while time.monotonic() < deadline:
            if len(self.received) == n:
                return
            n = len(self.received)
            time.sleep(quiet_s)

    def close(self) -> None:
        self._stop = True
        self._t.join()
        self.tx.close()
        self.rx.close()

    def one_way_ms(self) -> list[float]:
        return [(r - s) / 1e6 for _, s, r, _ in self.received]


def binomial_ci99(n: int, p: float) -> tuple[float, float]:
    """Two-sided 99% interval for a Binomial(n, p) count (normal approximation)."""
    half = 2.5758 * math.sqrt(n * p * (1 - p))
    return n * p - half, n * p + half


# ----------------------------------------------------------------------------------------
def test_passthrough_delay_median(topo: Topology, router: Router) -> None:
    flow = Flow(topo)
    try:
        flow.send(200, 0.001)
        flow.settle(0.2)
        base = statistics.median(flow.one_way_ms())
        assert len(flow.received) == 200
        router.apply(
            "to-server",
            spec(
                delay={"delay_ms": 20.0, "jitter_ms": 0.0, "correlation_pct": 0.0, "distribution": None},
                seed=1,
            ),
            UDP_MATCH,
        )
        flow.received.clear()
        flow.send(300, 0.002)
        flow.settle(0.2)
        assert len(flow.received) == 300
        added = statistics.median(flow.one_way_ms()) - base
        assert abs(added - 20.0) <= max(0.5, 0.02 * 20.0), f"added delay {added:.3f} ms, base {base:.3f} ms"
        st = router.stats("to-server")
        assert st["delayed"] == 300 and st["passed"] == 300 and st["errors"] == 0, json.dumps(st)
    finally:
        flow.close()


def test_loss_binomial_and_replay(topo: Topology, router: Router) -> None:
    n, pct, seed = 10000, 10.0, 4242
    sp = spec(loss={"model": "random", "pct": pct, "correlation_pct": 0.0}, seed=seed)
    router.apply("to-server", sp, UDP_MATCH)
    flow = Flow(topo)
    try:
        flow.send(n, 0.00002)
        flow.settle(0.3)
        got = {seq for seq, *_ in flow.received}
        lost = n - len(got)
        lo, hi = binomial_ci99(n, pct / 100)
        assert lo <= lost <= hi, f"{lost} lost of {n}, 99% CI [{lo:.0f}, {hi:.0f}]"
        st = router.stats("to-server")
        assert st["seen"] == n and st["dropped_by_cause"]["loss"] == lost, st
        # Same seed, same packet order: the offline engine predicts exactly which were lost.
        eng = Engine(EngineConfig.from_dict(sp))
        predicted = {i for i in range(n) if not eng.on_packet(i, b"", 92, 0)}
        assert predicted == set(range(n)) - got
    finally:
        flow.close()


def test_duplicate(topo: Topology, router: Router) -> None:
    n, pct = 4000, 30.0
    router.apply("to-server", spec(duplicate={"pct": pct, "correlation_pct": 0.0}, seed=7), UDP_MATCH)
    flow = Flow(topo)
    try:
        flow.send(n, 0.00005)
        flow.settle(0.3)
        seqs = [seq for seq, *_ in flow.received]
        dups = len(seqs) - len(set(seqs))
        assert len(set(seqs)) == n
        lo, hi = binomial_ci99(n, pct / 100)
        assert lo <= dups <= hi, f"{dups} duplicates of {n}, 99% CI [{lo:.0f}, {hi:.0f}]"
        assert router.stats("to-server")["duplicated"] == dups
        # A copy is byte-identical to its original.
        by_seq: dict[int, bytes] = {}
        for seq, _, _, data in flow.received:
            assert by_seq.setdefault(seq, data) == data
    finally:
        flow.close()


def test_corrupt_flips_one_bit(topo: Topology, router: Router) -> None:
    n = 300
    router.apply("to-server", spec(corrupt={"pct": 100.0, "correlation_pct": 0.0}, seed=3), UDP_MATCH)
    flow = Flow(topo, size=1000)
    SO_NO_CHECK = 11  # IPv4 UDP without checksum, so the receiver gets the corrupted bytes
    flow.tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    try:
        for seq in range(n):
            flow.tx.sendto(flow.payload(seq)[:12] + bytes(988), flow.dst)
            time.sleep(0.0002)
        flow.settle(0.2)
        assert router.stats("to-server")["corrupted"] == n
        one_bit = 0
        for _, _, _, data in flow.received:
            flips = sum(bin(b).count("1") for b in data[12:])
            one_bit += flips == 1
        # A flip in the UDP header or in the 12 stamp bytes is not visible as a payload flip.
        assert len(flow.received) >= 0.9 * n
        assert one_bit >= 0.9 * len(flow.received)
    finally:
        flow.close()


def test_directions_independent_and_ipv6(topo: Topology, router: Router) -> None:
    router.apply("to-client", spec(partition=True), UDP_MATCH)
    router.apply("to-server", spec(delay={"delay_ms": 5.0}, seed=5), UDP_MATCH)
    flows: list[Flow] = []
    try:
        up4 = Flow(topo)
        flows.append(up4)
        up6 = Flow(topo, v6=True)
        flows.append(up6)
        down = Flow(topo, to_server=False)
        flows.append(down)
        for f in (up4, up6, down):
            f.send(200, 0.0005)
        for f in (up4, up6, down):
            f.settle(0.15)
        assert len(up4.received) == 200 and len(up6.received) == 200
        assert statistics.median(up6.one_way_ms()) >= 5.0
        assert len(down.received) == 0
        assert router.stats("to-client")["dropped_by_cause"]["partition"] == 200
        assert router.stats("to-server")["dropped"] == 0
    finally:
        for f in flows:
            f.close()


def test_clear_mid_traffic_and_apply_latency(topo: Topology, router: Router) -> None:
    router.apply("to-server", spec(delay={"delay_ms": 300.0}, seed=9), UDP_MATCH)
    flow = Flow(topo)
    try:
        flow.send(100, 0.001)  # all of these are held when clear() runs
        router.clear("to-server")
        t_clear = time.time_ns()
        flow.send(100, 0.001, start=100)
        flow.settle(0.2)
        seqs = sorted(seq for seq, *_ in flow.received)
        assert seqs == list(range(200)), "clear must release held packets, not drop them"
        after = [(r - s) / 1e6 for seq, s, r, _ in flow.received if seq >= 100]
        assert statistics.median(after) < 2.0
        assert all(r < t_clear + 50e6 for seq, _, r, _ in flow.received if seq < 100)
        st = router.stats("to-server")
        assert not st["active"] and st["errors"] == 0

        # Time from apply() returning to the impairment acting: stream every 0.2 ms, then
        # partition; nothing sent more than 2 ms after apply() returned may arrive.
        flow.received.clear()
        stop = threading.Event()

        def stream() -> None:
            seq = 1000
            while not stop.is_set():
                flow.tx.sendto(flow.payload(seq), flow.dst)
                seq += 1
                time.sleep(0.0002)

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.1)
        router.apply("to-server", spec(partition=True), UDP_MATCH)
        t_applied = time.time_ns()  # after the answer: >= the helper's own return time
        time.sleep(0.1)
        stop.set()
        t.join()
        flow.settle(0.2)
        late = [(s - t_applied) / 1e6 for _, s, _, _ in flow.received if s > t_applied]
        assert not late or max(late) <= 2.0, f"sent {max(late):.3f} ms after apply() still delivered"
    finally:
        flow.close()


def test_rate_and_limit(topo: Topology, router: Router) -> None:
    # 1000-byte datagrams (1028 B IP) at 8 Mbit/s: (1028 + 14) * 8 / 8e6 s = 1.042 ms each.
    router.apply(
        "to-server",
        spec(
            rate={
                "bits_per_s": 8_000_000,
                "packet_overhead_bytes": 0,
                "cell_size_bytes": 0,
                "cell_overhead_bytes": 0,
            },
            limit_packets=50,
            seed=11,
        ),
        UDP_MATCH,
    )
    flow = Flow(topo, size=1000)
    try:
        flow.send(200)  # a burst far faster than the rate
        flow.settle(0.3)
        st = router.stats("to-server")
        assert st["dropped_by_cause"]["limit"] >= 100, st
        assert st["queue_depth_max"] == 50
        arrivals = sorted(r for *_, r, _ in [(x[0], x[1], x[2], x[3]) for x in flow.received])
        gaps = [(b - a) / 1e6 for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert abs(statistics.median(gaps) - 1.042) < 0.1, statistics.median(gaps)
    finally:
        flow.close()
