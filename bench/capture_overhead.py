#!/usr/bin/env python3
"""What per-test capture and the engine's decision log cost, each as a ratio measured in one run.

    .venv/bin/python bench/capture_overhead.py [--rounds 2] [--tests ...]      # needs the testbed
    sudo .venv/bin/python bench/capture_overhead.py --engine-only               # engine part only

1. Suite wall time: the same pytest run (default: a representative subset of the integration
   suite, ``SUBSET`` below: 22 tests of ports, raw sockets and markers, every one using the
   testbed) with ``--netbed-capture=off``, ``failed`` (the default: the session's capture
   runs throughout, a failing test's span is fetched; here every test passes) and ``all``
   (every test's span snapshotted, fetched and kept: the most expensive mode), rotated
   ``--rounds`` times so that machine load hits each alike; the ratios of the medians to
   off.  Kept captures go to a temporary folder, deleted at the end.
2. Engine, decision log on vs off: packets per second through ``Engine.on_packet`` (pure,
   synthetic packets, loss 1 % so every packet takes the decision path), alternated; and,
   as root, UDP packets/s and TCP throughput through the real NFQUEUE engine in network
   namespaces (``bench/engine_throughput.py``'s topology and traffic).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ["tests/integration/test_ports.py", "tests/integration/test_raw.py", "tests/integration/test_markers.py"]


def suite_seconds(instance: str, mode: str, tests: list[str], capture_dir: str) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netbed-instance", instance,
            f"--netbed-capture={mode}", f"--netbed-capture-dir={capture_dir}", *tests]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"pytest --netbed-capture={mode} could not run:\n{proc.stdout[-3000:]}")
    if proc.returncode == 1:
        # A test that fails under load (timing) still ran: the wall time counts; say which.
        summary = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
        print(f"    (capture={mode}: {'; '.join(summary)})", flush=True)
    return seconds


MODES = ("off", "failed", "all")


def suite_ratio(instance: str, tests: list[str], rounds: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="netbed-capture-bench-") as tmp:
        for r in range(rounds):
            for mode in MODES[r % 3:] + MODES[:r % 3]:
                times[mode].append(suite_seconds(instance, mode, tests, tmp))
                print(f"  round {r + 1} capture={mode}: {times[mode][-1]:.1f} s", flush=True)
        kept = sum(1 for _ in Path(tmp).glob("run-*/*.pcapng"))
    med = {m: statistics.median(v) for m, v in times.items()}
    return {"tests": tests, "rounds": rounds, "seconds": times, "median_s": med,
            "ratio_failed": med["failed"] / med["off"], "ratio_all": med["all"] / med["off"],
            "captures_kept_per_all_run": kept // rounds}


# --------------------------------------------------------------------------------------
# engine, pure
# --------------------------------------------------------------------------------------
def engine_pps(log_on: bool, packets: int) -> float:
    sys.path[:0] = [str(ROOT / "services" / "router"), str(ROOT / "harness")]
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_engine_decisions import ipv4_udp

    from netbed_core.netem import parse
    from netbed_router.decision_log import DecisionLog, attach
    from netbed_router.engine import Engine, EngineConfig

    eng = Engine(EngineConfig.from_dict(parse("loss 1% seed 1").to_dict()))
    if log_on:
        attach(eng, DecisionLog("to-server"))
    pkts = [ipv4_udp(64, seq=i) for i in range(1000)]
    t0 = time.perf_counter()
    for i in range(packets):
        p = pkts[i % 1000]
        eng.on_packet(i, p, len(p), i * 1000)
        if len(eng.out) > 1000:
            eng.out.clear()
    return packets / (time.perf_counter() - t0)


def alternate(measure: Any, rounds: int) -> dict[str, Any]:
    got: dict[str, list[float]] = {"off": [], "on": []}
    for r in range(rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            got[mode].append(measure(mode == "on"))
    off, on = statistics.median(got["off"]), statistics.median(got["on"])
    return {"off": got["off"], "on": got["on"], "median_off": off, "median_on": on, "ratio_on_to_off": on / off}


# --------------------------------------------------------------------------------------
# engine, NFQUEUE in network namespaces (root)
# --------------------------------------------------------------------------------------
ROUTER_CODE = textwrap.dedent("""
    import json, sys
    from netbed_router.rules import Rules, rule_args
    from netbed_router.worker import QueueWorker
    from netbed_router.engine import Engine, EngineConfig
    from netbed_router.counters import EngineCounters
    from netbed_router.decision_log import DecisionLog, attach
    spec = json.loads(sys.argv[1]); client_if, server_if = sys.argv[2], sys.argv[3]; log_on = sys.argv[4] == "on"
    workers = {}
    for name, q in (("to-server", 0), ("to-client", 1)):
        w = QueueWorker(q, name)
        e = Engine(EngineConfig.from_dict(spec), w.held, EngineCounters())
        if log_on:
            attach(e, DecisionLog(name))
        w.set_engine(e)
        workers[name] = w
    rules = Rules(chain="NBCAPB")
    rules.set({4: [rule_args(client_if, server_if, None, 0, 4), rule_args(server_if, client_if, None, 1, 4)], 6: []})
    print("ready", flush=True)
    sys.stdin.read()
    rules.remove_all()
    for w in workers.values():
        w.stop()
    print(json.dumps({"ok": True}), flush=True)
""")


def nfqueue_ratio(seconds: float, rounds: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("engine_throughput", ROOT / "bench" / "engine_throughput.py")
    assert spec is not None and spec.loader is not None
    eth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eth)
    impairment = json.dumps(eth.MODES["zero-delay"])
    udp: dict[str, list[float]] = {"off": [], "on": []}
    tcp: dict[str, list[float]] = {"off": [], "on": []}
    eth.create(eth.TOPO)
    try:
        eth.offloads_off()
        for r in range(rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                router = eth.py_in(eth.NS_R, ROUTER_CODE, impairment, eth.TOPO.router_client_end.ifname,
                                   eth.TOPO.router_server_end.ifname, mode)
                eth.wait_ready(router)
                try:
                    udp[mode].append(eth.udp_pps(seconds)[0])
                    tcp[mode].append(eth.tcp_gbps(seconds))
                finally:
                    eth.finish(router)
                print(f"  round {r + 1} decision log {mode}: {udp[mode][-1] / 1e3:.1f} kpps UDP, "
                      f"{tcp[mode][-1]:.2f} Gbit/s TCP", flush=True)
    finally:
        eth.delete(eth.TOPO)
    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in (("udp_pps", udp), ("tcp_gbps", tcp))}
    return {"udp_pps": udp, "tcp_gbps": tcp, "medians": med,
            "udp_ratio_on_to_off": med["udp_pps"]["on"] / med["udp_pps"]["off"],
            "tcp_ratio_on_to_off": med["tcp_gbps"]["on"] / med["tcp_gbps"]["off"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instance", default=os.environ.get("NETBED_INSTANCE", "netbed"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tests", nargs="*", default=SUBSET)
    ap.add_argument("--seconds", type=float, default=3.0, help="per NFQUEUE throughput measurement")
    ap.add_argument("--packets", type=int, default=200_000, help="per pure engine measurement")
    ap.add_argument("--engine-only", action="store_true", help="skip the suite wall-time part")
    a = ap.parse_args()
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    if not a.engine_only:
        print(f"suite: {' '.join(a.tests)}, capture off / failed / all, {a.rounds} rounds", flush=True)
        out["suite"] = suite_ratio(a.instance, a.tests, a.rounds)
    print("engine (pure): decision log off vs on", flush=True)
    out["engine_pure_pps"] = alternate(lambda on: engine_pps(on, a.packets), max(a.rounds, 3))
    if os.geteuid() == 0:
        print("engine (NFQUEUE, network namespaces): decision log off vs on", flush=True)
        out["engine_nfqueue"] = nfqueue_ratio(a.seconds, a.rounds)
    else:
        print("engine (NFQUEUE): skipped, needs root (network namespaces)")
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    if "suite" in out:
        s = out["suite"]
        m = s["median_s"]
        print(f"\nsuite wall time / off ({m['off']:.1f} s): capture=failed {s['ratio_failed']:.3f} "
              f"({m['failed']:.1f} s), capture=all {s['ratio_all']:.3f} ({m['all']:.1f} s); medians of {s['rounds']}")
    p = out["engine_pure_pps"]
    print(f"engine on_packet, decision log on / off: {p['ratio_on_to_off']:.3f} "
          f"({p['median_on'] / 1e3:.0f} / {p['median_off'] / 1e3:.0f} kpps)")
    if "engine_nfqueue" in out:
        n = out["engine_nfqueue"]
        print(f"NFQUEUE engine, decision log on / off: UDP {n['udp_ratio_on_to_off']:.3f}, "
              f"TCP {n['tcp_ratio_on_to_off']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
