"""Step-timing error of router-executed scenarios on a running testbed: p50 and p99.

    .venv/bin/python bench/scenario_timing.py [--steps 200] [--interval-ms 50] [--instance NAME]

Runs a scenario alternating ``clear`` and ``delay 10ms`` (to-server) every ``--interval-ms``
under UDP sequence traffic, and reports from the router's timeline, per step:
- woke: how late the router's scenario thread started applying (began - scheduled; 0 for a
  step the engine switched by itself, whose ``began`` is its deadline);
- effective: how late the step had taken effect (effective - scheduled), the step-timing error;
- by engine: how many steps were handed to the userspace engine ahead of time and switched by
  its worker (``switched_by: engine``), and how far ahead they were handed (p50);
and from the receiver, for the clear -> delay edges two consecutive datagrams bracket to 1 ms:
the distance of the edge from its scheduled time. The backend is whatever the router runs (``netbed
status``); this machine has no sch_netem, so here it is the userspace engine. Prints the
machine's load average, since several sessions may share the cores. Needs `make up`.
"""

from __future__ import annotations

import argparse
import os
import sys

from netbed.measure import SEQUENCE_RCVBUF_BYTES, arrivals_from, udp_pair
from netbed.testbed import Testbed

RATE_PPS = 2000


def percentile(sorted_ms: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_ms), round(pct / 100 * len(sorted_ms) + 0.5)))
    return sorted_ms[rank - 1]


def edges_ms(arrivals: list, rows: list[dict]) -> list[float]:  # type: ignore[type-arg]
    """Receiver-seen edge minus scheduled time, ms, for edges bracketed to 1 ms."""
    by_send = sorted(arrivals, key=lambda a: a.send_ns)
    out = []
    for row in rows[1:]:
        delayed_after = row["action"].endswith("ms")
        if not delayed_after:
            continue  # a clear releases held packets at once: their delays cannot date that edge
        window = [a for a in by_send if abs(a.send_ns - row["scheduled_wall_ns"]) < 20_000_000]
        flips = [i for i in range(1, len(window))
                 if (window[i].one_way_ms > 5.0) == delayed_after and (window[i - 1].one_way_ms > 5.0) != delayed_after]
        if len(flips) == 1 and window[flips[0]].send_ns - window[flips[0] - 1].send_ns <= 1_000_000:
            i = flips[0]
            out.append(((window[i].send_ns + window[i - 1].send_ns) / 2 - row["scheduled_wall_ns"]) / 1e6)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--instance", default=None)
    opts = parser.parse_args()
    tb = Testbed(opts.instance)
    try:
        router, client, server = tb.router, tb.client, tb.server
        backend = router.impair_status()["backend"]
        steps = [{"netem": "clear", "duration": f"{opts.interval_ms}ms", "direction": "to-server"},
                 {"netem": "delay 10ms", "duration": f"{opts.interval_ms}ms", "direction": "to-server"}]
        seconds = opts.steps * opts.interval_ms / 1000 + 1.0
        pair = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
        job = pair.rx.start_recv_sequence(duration_s=seconds + 10, idle_s=2.0)
        sender = client.start("send_sequence", fd=pair.tx.fd, count=int(seconds * RATE_PPS), size=64,
                              rate_pps=RATE_PPS, address=list(pair.address), timeout=seconds + 10)
        with router.scenario(steps, repeat=opts.steps // 2, name="bench") as sc:
            rows = sc.wait()["timeline"]
        sender.wait(timeout=seconds + 15)
        arrivals = arrivals_from(job.wait(timeout=seconds + 15)["arrivals"])
        router.reset()
    finally:
        tb.close_connections()
    woke = sorted((r["began_ns"] - r["scheduled_ns"]) / 1e6 for r in rows)
    late = sorted(r["late_ms"] for r in rows)
    seen = sorted(abs(e) for e in edges_ms(arrivals, rows))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    ahead = sorted((r["scheduled_ns"] - r["handed_ns"]) / 1e6 for r in rows if r.get("handed_ns") is not None)
    by_engine = sum(1 for r in rows if r.get("switched_by") == "engine")
    print(f"| backend {backend}, {len(rows)} steps every {opts.interval_ms:g} ms | "
          f"woke p50 {percentile(woke, 50):.2f} ms p99 {percentile(woke, 99):.2f} ms | "
          f"effective p50 {percentile(late, 50):.2f} ms p99 {percentile(late, 99):.2f} ms | "
          f"by engine {by_engine} of {len(rows)}"
          + (f", handed p50 {percentile(ahead, 50):.1f} ms ahead | " if ahead else " | ")
          + (f"receiver |edge| p50 {percentile(seen, 50):.2f} ms p99 {percentile(seen, 99):.2f} ms "
             f"({len(seen)} edges resolved) | " if seen else "receiver: no edge resolved | ")
          + f"load {load} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
