"""Round trip of `host.run(["true"])` on a running testbed: p50 and p99 over N runs.

    .venv/bin/python bench/process_roundtrip.py [--runs 200] [--host client] [--instance NAME]

Measures what a test pays per short command: harness -> agent (JSON over TCP on
127.0.0.1) -> fork/exec in its own process group -> wait -> reply.  Needs `make up`.
Issue #7's target: p50 <= 20 ms.  Prints one Markdown table row set with the machine's
load average, since five sessions may share the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from netbed.testbed import Testbed

TARGET_P50_MS = 20.0


def percentile(sorted_ms: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_ms), round(pct / 100 * len(sorted_ms) + 0.5)))
    return sorted_ms[rank - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--host", default="client", choices=("client", "router", "server"))
    parser.add_argument("--instance", default=None)
    opts = parser.parse_args()
    tb = Testbed(opts.instance)
    host = tb.host(opts.host)
    try:
        for _ in range(5):  # warm the connection and the agent's code paths
            host.run(["true"], timeout=10, check=True)
        samples_ms = []
        for _ in range(opts.runs):
            start = time.perf_counter()
            host.run(["true"], timeout=10, check=True)
            samples_ms.append((time.perf_counter() - start) * 1000)
    finally:
        tb.close_connections()
    samples_ms.sort()
    p50, p99 = percentile(samples_ms, 50), percentile(samples_ms, 99)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"| host.run(['true']) on {opts.host}, {opts.runs} runs | p50 {p50:.2f} ms | p99 {p99:.2f} ms | "
          f"mean {statistics.fmean(samples_ms):.2f} ms | max {samples_ms[-1]:.2f} ms | load {load} |")
    if p50 > TARGET_P50_MS:
        print(f"bench: p50 {p50:.2f} ms is above the target {TARGET_P50_MS:g} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
