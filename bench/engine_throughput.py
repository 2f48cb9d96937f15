#!/usr/bin/env python3
"""Throughput and latency of the userspace impairment engine, in network namespaces.

    sudo .venv/bin/python bench/engine_throughput.py [--seconds 3] [--load 2]
        [--modes zero-delay,delay-1ms,delay-20ms] [--scheduling realtime,nice,normal]

Builds the three namespaces of netbed_testkit.topology (client, router, server; veth pairs;
the router forwards), then for each mode measures, client -> server:

* TCP throughput: one Python sender/receiver pair (separate processes, 256 KiB writes);
  iperf3 is used in addition when installed;
* UDP packets/s of 64-byte payloads (one Python sender process blasting, receiver
  counting) and the loss that came with it;
* one-way latency of paced 64-byte UDP probes (1 kHz), sender timestamp vs. the
  receiver's kernel timestamp (SO_TIMESTAMPNS, same clock), p50/p99 and the part added
  over plain forwarding (less the delay the mode configures).

Modes: ``plain`` = kernel forwarding, no rules (always measured first); ``passthrough`` =
NFQUEUE rules on both directions and an engine that changes nothing; ``zero-delay`` = an
active impairment that runs every packet through the decision path without holding it
(random loss with a negligible probability, 1e-7 %); ``delay-1ms`` / ``delay-20ms`` = a fixed
delay (GSO units whole, docs/engine.md).  The engine runs as in the router container: one
supervised engine process per direction (engine_supervisor.EngineProcess), in the router
namespace.  ``--scheduling`` lists the engine variants: ``realtime`` (SCHED_FIFO, else the
fallback), ``nice`` (the fallback alone), ``normal``; a ``-nogso`` suffix keeps GSO units
segmented, ``-nocoalesce`` turns wakeup coalescing off.

``--load N`` measures every mode and variant twice: as the machine is, and beside N CPU-bound
neighbour processes (``while True: pass``, nice 0) that the bench starts before and kills (by
PID) after that measurement.  Every row is reported as a ratio to plain forwarding measured at
the same load in the same run, with the 1-minute load average at its start.  Nothing leaves
the namespaces; they are deleted at the end.
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


# The router side, as in the router container: rules, and one supervised engine process per
# direction (engine_supervisor.EngineProcess), driven from this process like the agent does.
ROUTER_CODE = textwrap.dedent("""
    import json, sys
    from netbed_router.rules import Rules, rule_args
    from netbed_router.engine_supervisor import EngineProcess
    from netbed_router.engine import Engine, EngineConfig
    from netbed_router.counters import EngineCounters
    spec = json.loads(sys.argv[1])
    client_if, server_if, variant = sys.argv[2], sys.argv[3], sys.argv[4]
    procs = {}
    for name, q in (("to-server", 0), ("to-client", 1)):
        tags = variant.split("-")
        p = EngineProcess(q, name, scheduling=tags[0], gso="nogso" not in tags,
                          coalesce_us=0 if "nocoalesce" in tags else None)
        p.set_engine(Engine(EngineConfig.from_dict(spec), p.held, EngineCounters(), stream=q))
        procs[name] = p
    rules = Rules(chain="NBBENCH")
    rules.set({4: [rule_args(client_if, server_if, None, 0, 4), rule_args(server_if, client_if, None, 1, 4)],
               6: []})
    print("ready", flush=True)
    sys.stdin.read()
    rules.remove_all()
    out = {}
    for n, p in procs.items():
        p.refresh_stats()
        out[n] = {**p.engine.stats.snapshot(), "scheduling": p.scheduling}
        p.stop()
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
    # Decides every packet (random loss with a negligible probability), holds none.
    "zero-delay": {"loss": {"model": "random", "pct": 1e-7, "correlation_pct": 0.0}, "seed": 1},
    "delay-1ms": {"delay": {"delay_ms": 1.0}},
    "delay-20ms": {"delay": {"delay_ms": 20.0}},
}
#: The delay a mode adds on purpose (µs), for "added delay" against it.
MODE_DELAY_US = {"delay-1ms": 1000.0, "delay-20ms": 20000.0}

BUSY_NEIGHBOUR = "while True:\n    pass\n"


def start_neighbours(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` CPU-bound processes at nice 0 (a stand-in for a neighbouring build)."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_NEIGHBOUR]) for _ in range(n)]


def stop_neighbours(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill the neighbours this bench started, by their PID."""
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def measure(mode: str, spec: dict[str, Any] | None, scheduling: str, a: argparse.Namespace) -> dict[str, Any]:
    """TCP, UDP and latency of one mode, with the engine (if any) running meanwhile."""
    router = None
    if spec is not None:
        router = py_in(NS_R, ROUTER_CODE, json.dumps(spec), TOPO.router_client_end.ifname,
                       TOPO.router_server_end.ifname, scheduling)
        wait_ready(router)
    r: dict[str, Any] = {"loadavg_1min": os.getloadavg()[0]}
    try:
        r["tcp_gbps"] = tcp_gbps(a.seconds)
        r["iperf3_gbps"] = iperf3_gbps(a.seconds)
        r["udp_pps"], r["udp_loss_pct"] = udp_pps(a.seconds)
        lat = latency_us(a.probes)
        r["lat_p50_us"], r["lat_p99_us"] = pct(lat, 0.5), pct(lat, 0.99)
        r["lat_n"] = len(lat)
    finally:
        if router is not None:
            out = finish(router)
            r["engine"] = json.loads(out.strip().splitlines()[-1])
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--modes", default="plain,zero-delay,delay-1ms,delay-20ms",
                    help=f"comma-separated, of {','.join(MODES)}; plain is always measured first")
    ap.add_argument("--load", type=int, default=0,
                    help="also measure every mode beside N CPU-bound neighbour processes")
    ap.add_argument("--scheduling", default="realtime,normal",
                    help="engine variants to measure: realtime (SCHED_FIFO, else the fallback), nice (the "
                         "fallback alone: nice -10, what a Docker router gets here), normal "
                         "(SCHED_OTHER); suffixes: -nogso keeps GSO units segmented (no NFQA_CFG_F_GSO), "
                         "-nocoalesce turns the real-time worker's wakeup coalescing off")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    modes = ["plain"] + [m for m in a.modes.split(",") if m != "plain"]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"unknown modes {unknown}; known: {', '.join(MODES)}", file=sys.stderr)
        return 2
    if a.load < 0:
        print(f"--load must be >= 0, got {a.load}", file=sys.stderr)
        return 2
    for variant in a.scheduling.split(","):
        base, *tags = variant.split("-")
        if base not in ("realtime", "nice", "normal") or not set(tags) <= {"nogso", "nocoalesce"}:
            print(f"--scheduling: unknown variant {variant!r}; expected realtime, nice or normal, "
                  "optionally with -nogso and/or -nocoalesce", file=sys.stderr)
            return 2
    if shutil.which("iperf3") is None:
        print("note: iperf3 not installed; TCP measured with the Python sender/receiver only")
    if shutil.which("ethtool") is None:
        print("note: ethtool not installed; veth offloads left at their defaults (TSO/GSO on)")
    loads = [0, a.load] if a.load else [0]
    results: list[dict[str, Any]] = []
    try:
        create(TOPO)
        if shutil.which("ethtool"):
            offloads_off()
        for mode in modes:
            for scheduling in (["-"] if MODES[mode] is None else a.scheduling.split(",")):
                for load in loads:
                    neighbours = start_neighbours(load)
                    try:
                        r = measure(mode, MODES[mode], scheduling, a)
                    finally:
                        stop_neighbours(neighbours)
                    r.update(mode=mode, scheduling=scheduling, load=load)
                    results.append(r)
                    print(f"{mode} scheduling={scheduling} load={load}: done "
                          f"(load average {r['loadavg_1min']:.2f})", flush=True)
    finally:
        delete(TOPO)
    report(results)
    return 0


def report(results: list[dict[str, Any]]) -> None:
    """The table: each row against plain forwarding measured at the same load in this run."""
    plain = {r["load"]: r for r in results if r["mode"] == "plain"}
    print()
    print(f"{'mode':<11} {'sched':<8} {'load':>4} {'lavg':>5} {'TCP Gb/s':>8} {'/plain':>6} {'UDP kpps':>8} "
          f"{'/plain':>6} {'loss%':>5} {'p50 µs':>8} {'p99 µs':>8} {'+p50 µs':>8} {'+p99 µs':>8} {'errs':>4}"
          "  scheduling")
    for r in results:
        base = plain[r["load"]]
        wanted = MODE_DELAY_US.get(r["mode"], 0.0)
        r["tcp_ratio"] = r["tcp_gbps"] / base["tcp_gbps"]
        r["udp_ratio"] = r["udp_pps"] / base["udp_pps"]
        # Added latency: over plain forwarding at the same percentile, less the delay asked for.
        r["added_p50_us"] = r["lat_p50_us"] - base["lat_p50_us"] - wanted
        r["added_p99_us"] = r["lat_p99_us"] - base["lat_p99_us"] - wanted
        engine = r.get("engine", {})
        errs = sum(d["errors"] for d in engine.values())
        sched = {(d.get("scheduling") or {}).get("description", "-") for d in engine.values()} or {"-"}
        print(f"{r['mode']:<11} {r['scheduling']:<8} {r['load']:>4} {r['loadavg_1min']:>5.2f} {r['tcp_gbps']:>8.2f} "
              f"{r['tcp_ratio']:>6.3f} {r['udp_pps'] / 1e3:>8.1f} {r['udp_ratio']:>6.3f} {r['udp_loss_pct']:>5.1f} "
              f"{r['lat_p50_us']:>8.1f} {r['lat_p99_us']:>8.1f} {r['added_p50_us']:>8.1f} {r['added_p99_us']:>8.1f} "
              f"{errs:>4}  {'; '.join(sorted(sched))}")
    print()
    print("added p50/p99: over plain forwarding at the same load and percentile, less the configured delay")
    print(f"cpus: {os.cpu_count()}  (sender, receiver, forwarding, engine and neighbours share them)")
    print(json.dumps([{k: v for k, v in r.items() if k != "engine"} for r in results]))


if __name__ == "__main__":
    raise SystemExit(main())
