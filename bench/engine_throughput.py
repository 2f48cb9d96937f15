#!/usr/bin/env python3
"""Throughput and latency of the userspace impairment engine, in network namespaces.

    sudo .venv/bin/python bench/engine_throughput.py [--seconds 3] [--modes plain,passthrough,zero-delay]

Builds the three namespaces of netbed_testkit.topology (client, router, server; veth pairs;
the router forwards), then for
each mode measures, client -> server:

* TCP throughput: one Python sender/receiver pair (separate processes, 256 KiB writes);
  iperf3 is used in addition when installed;
* UDP packets/s of 64-byte payloads (one Python sender process blasting, receiver
  counting) and the loss that came with it;
* one-way latency of paced 64-byte UDP probes (1 kHz), sender timestamp vs. the
  receiver's kernel timestamp (SO_TIMESTAMPNS, same clock), p50/p99 and the part added
  over plain forwarding.

Modes: ``plain`` = kernel forwarding, no rules; ``passthrough`` = NFQUEUE rules on both
directions and an engine that changes nothing; ``zero-delay`` = an active impairment that
runs every packet through the decision path without holding it (random loss with a
negligible probability, 1e-7 %).  The engine runs in its own process inside the router
namespace, as in the router container.  Nothing leaves the namespaces; they are deleted at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from typing import Any

from netbed_testkit.namespaces import run
from netbed_testkit.topology import Topology, create, delete

TOPO = Topology.for_process("nbb")
NS_C, NS_R, NS_S = TOPO.namespaces
S_ADDR = TOPO.server_end.ipv4


def offloads_off() -> None:
    """Per-wire-packet impairment needs offloads off (the backend does this too on its
    interfaces; here all four ends, so that plain forwarding is measured the same way)."""
    for pair in TOPO.links:
        for end in pair:
            run("ip", "netns", "exec", end.namespace, "ethtool", "-K", end.ifname, "gro", "off", "gso", "off",
                "tso", "off", check=False)


# The router side: rules + one QueueWorker per direction, in its own process in NS_R.
ROUTER_CODE = textwrap.dedent("""
    import json, sys, time
    from netbed_router.rules import Rules, rule_args
    from netbed_router.worker import QueueWorker
    from netbed_router.engine import Engine, EngineConfig
    from netbed_router.counters import EngineCounters
    spec = json.loads(sys.argv[1])
    client_if, server_if = sys.argv[2], sys.argv[3]
    workers = {}
    for name, q in (("to-server", 0), ("to-client", 1)):
        w = QueueWorker(q, name)
        w.set_engine(Engine(EngineConfig.from_dict(spec), w.held, EngineCounters()))
        workers[name] = w
    rules = Rules(chain="NBBENCH")
    rules.set({4: [rule_args(client_if, server_if, None, 0, 4), rule_args(server_if, client_if, None, 1, 4)],
               6: []})
    print("ready", flush=True)
    sys.stdin.read()
    rules.remove_all()
    out = {n: w.engine.stats.snapshot() for n, w in workers.items()}
    for w in workers.values():
        w.stop()
    print(json.dumps(out), flush=True)
""")

TCP_RX = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 47100)); s.listen(1); print("ready", flush=True)
    c, _ = s.accept(); buf = bytearray(1 << 20); n = 0; t0 = None
    while True:
        k = c.recv_into(buf)
        if not k: break
        if t0 is None: t0 = time.monotonic()
        n += k
    print(n, time.monotonic() - t0, flush=True)
""")

TCP_TX = textwrap.dedent("""
    import socket, sys, time
    c = socket.create_connection((sys.argv[1], 47100)); data = bytes(256 * 1024)
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        c.sendall(data)
    c.close()
""")

UDP_RX = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind(("0.0.0.0", 47101)); s.settimeout(1.0); print("ready", flush=True)
    n = 0; t0 = t1 = None; buf = bytearray(2048)
    while True:
        try:
            s.recv_into(buf)
        except TimeoutError:
            if t0 is not None: break
            continue
        t1 = time.monotonic()
        if t0 is None: t0 = t1
        n += 1
    print(n, (t1 - t0) if t0 else 0.0, flush=True)
""")

UDP_TX = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); dst = (sys.argv[1], 47101)
    data = bytes(64); n = 0; end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        for _ in range(200):
            try:
                s.sendto(data, dst); n += 1
            except (BlockingIOError, OSError):
                pass
    print(n, flush=True)
""")

LAT_RX = textwrap.dedent("""
    import socket, struct, sys, time
    from netbed_testkit.traffic import SO_TIMESTAMPNS, kernel_timestamp_ns
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind(("0.0.0.0", 47102)); s.settimeout(1.0); print("ready", flush=True)
    out = []
    while True:
        try:
            data, anc, _, _ = s.recvmsg(2048, 64)
        except TimeoutError:
            if out: break
            continue
        out.append((kernel_timestamp_ns(anc) - struct.unpack_from("!Q", data)[0]) / 1e3)
    print(" ".join(f"{x:.1f}" for x in out), flush=True)
""")

LAT_TX = textwrap.dedent("""
    import socket, struct, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); dst = (sys.argv[1], 47102)
    pad = bytes(56)
    for _ in range(int(sys.argv[2])):
        s.sendto(struct.pack("!Q", time.time_ns()) + pad, dst)
        time.sleep(0.001)
""")


def py_in(ns: str, code: str, *args: str) -> subprocess.Popen[str]:
    """``code`` run by this interpreter (its installed netbed packages) inside ``ns``."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"helper failed: {line} {p.stderr.read() if p.stderr else ''}")


def finish(p: subprocess.Popen[str], timeout: float = 30) -> str:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"helper exited {p.returncode}: {err[-1500:]}")
    return out


def tcp_gbps(seconds: float) -> float:
    rx = py_in(NS_S, TCP_RX)
    wait_ready(rx)
    tx = py_in(NS_C, TCP_TX, S_ADDR, str(seconds))
    finish(tx, seconds + 30)
    n, dt = finish(rx).split()
    return int(n) * 8 / float(dt) / 1e9


def iperf3_gbps(seconds: float) -> float | None:
    if shutil.which("iperf3") is None:
        return None
    srv = subprocess.Popen(
        ["ip", "netns", "exec", NS_S, "iperf3", "-s", "-1", "-p", "47110"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    try:
        r = run(
            "ip",
            "netns",
            "exec",
            NS_C,
            "iperf3",
            "-c",
            S_ADDR,
            "-p",
            "47110",
            "-t",
            str(int(seconds)),
            "-J",
            check=False,
        )
        if r.returncode != 0:
            return None
        return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def udp_pps(seconds: float) -> tuple[float, float]:
    rx = py_in(NS_S, UDP_RX)
    wait_ready(rx)
    tx = py_in(NS_C, UDP_TX, S_ADDR, str(seconds))
    sent = int(finish(tx, seconds + 30))
    n, dt = finish(rx).split()
    got = int(n)
    return got / max(float(dt), 1e-9), 100.0 * (sent - got) / max(sent, 1)


def latency_us(count: int) -> list[float]:
    rx = py_in(NS_S, LAT_RX)
    wait_ready(rx)
    tx = py_in(NS_C, LAT_TX, S_ADDR, str(count))
    finish(tx, count / 100 + 30)
    return [float(x) for x in finish(rx).split()]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


MODES: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "passthrough": {"limit_packets": 1000},
    "zero-delay": {"loss": {"model": "random", "pct": 1e-7, "correlation_pct": 0.0}, "seed": 1},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--modes", default=",".join(MODES))
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if shutil.which("iperf3") is None:
        print("note: iperf3 not installed; TCP measured with the Python sender/receiver only")
    if shutil.which("ethtool") is None:
        print("note: ethtool not installed; veth offloads left at their defaults (TSO/GSO on)")
    results: dict[str, dict[str, Any]] = {}
    try:
        create(TOPO)
        if shutil.which("ethtool"):
            offloads_off()
        for mode in a.modes.split(","):
            spec = MODES[mode]
            router = None
            if spec is not None:
                router = py_in(NS_R, ROUTER_CODE, json.dumps(spec), TOPO.router_client_end.ifname,
                               TOPO.router_server_end.ifname)
                wait_ready(router)
            try:
                r: dict[str, Any] = {"tcp_gbps": tcp_gbps(a.seconds), "iperf3_gbps": iperf3_gbps(a.seconds)}
                r["udp_pps"], r["udp_loss_pct"] = udp_pps(a.seconds)
                lat = latency_us(a.probes)
                r["lat_p50_us"], r["lat_p99_us"] = pct(lat, 0.5), pct(lat, 0.99)
                r["lat_n"] = len(lat)
            finally:
                if router is not None:
                    out = finish(router)
                    r["engine"] = json.loads(out.strip().splitlines()[-1])
            results[mode] = r
            print(f"{mode}: done", flush=True)
    finally:
        delete(TOPO)
    base = results.get("plain")
    print()
    print(
        f"{'mode':<12} {'TCP Gbit/s':>10} {'iperf3':>8} {'UDP kpps':>9} {'UDP loss%':>9} "
        f"{'p50 µs':>8} {'p99 µs':>8} {'+p50 µs':>8} {'+p99 µs':>8} {'engine errors':>13}"
    )
    for mode, r in results.items():
        ip3 = f"{r['iperf3_gbps']:.2f}" if r["iperf3_gbps"] is not None else "-"
        add50 = r["lat_p50_us"] - base["lat_p50_us"] if base else float("nan")
        add99 = r["lat_p99_us"] - base["lat_p99_us"] if base else float("nan")
        errs = sum(d["errors"] for d in r["engine"].values()) if "engine" in r else 0
        print(
            f"{mode:<12} {r['tcp_gbps']:>10.2f} {ip3:>8} {r['udp_pps'] / 1e3:>9.1f} "
            f"{r['udp_loss_pct']:>9.2f} "
            f"{r['lat_p50_us']:>8.1f} {r['lat_p99_us']:>8.1f} {add50:>8.1f} {add99:>8.1f} {errs:>13}"
        )
    print()
    print("targets: TCP >= 1 Gbit/s, UDP >= 100 kpps, added latency p50 <= 100 µs, p99 <= 1000 µs")
    print(f"cpus: {os.cpu_count()}  (sender, receiver, forwarding and engine share them)")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "engine"} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
