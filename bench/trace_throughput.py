#!/usr/bin/env python3
"""The userspace engine's throughput with a trace-driven link active, as a ratio to plain
forwarding measured in the same run, in network namespaces.

    sudo .venv/bin/python bench/trace_throughput.py [--seconds 3]

Reuses bench/engine_throughput.py's namespaces and traffic (TCP with the Python sender, UDP
packets/s of 64-byte payloads) for three modes: ``plain`` (kernel forwarding), ``engine``
(engine_throughput's ``zero-delay``: every packet through the engine, none held) and ``trace``
(both directions through the engine with ``trace NAME``: every packet held until its
opportunity, at most 1 ms away). The trace has 1000 delivery
opportunities per millisecond (12 Gbit/s of 1500-byte packets), so it never limits what the
engine can forward: the figure is the cost of the trace path itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import engine_throughput as et  # noqa: E402 - the sibling bench, a script rather than a package

#: A trace that never limits: 1000 opportunities in every millisecond of a 10 ms period.
FAST_TRACE = "".join(f"{ms}\n" for ms in range(1, 11) for _ in range(1000))

ROUTER_CODE = textwrap.dedent("""
    import json, sys
    from netbed_router.trace_link import STORE
    STORE.put("fast", sys.argv[4])
""") + et.ROUTER_CODE.replace("import json, sys, time\n", "import time\n", 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    specs = {"engine": et.MODES["zero-delay"], "trace": {"trace": {"name": "fast"}}}
    results: dict[str, dict[str, float]] = {}
    try:
        et.create(et.TOPO)
        et.offloads_off()
        for mode in ("plain", "engine", "trace"):
            router = None
            if mode != "plain":
                router = et.py_in(et.NS_R, ROUTER_CODE, json.dumps(specs[mode]), et.TOPO.router_client_end.ifname,
                                  et.TOPO.router_server_end.ifname, FAST_TRACE)
                et.wait_ready(router)
            try:
                pps, loss = et.udp_pps(a.seconds)
                results[mode] = {"tcp_gbps": et.tcp_gbps(a.seconds), "udp_kpps": pps / 1e3, "udp_loss_pct": loss}
            finally:
                if router is not None:
                    et.finish(router)
    finally:
        et.delete(et.TOPO)
    plain = results["plain"]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for mode in ("engine", "trace"):
        r = results[mode]
        print(f"| {mode} / plain forwarding | TCP {r['tcp_gbps']:.2f} / {plain['tcp_gbps']:.2f} Gbit/s "
              f"= {r['tcp_gbps'] / plain['tcp_gbps']:.3f} | UDP {r['udp_kpps']:.1f} / {plain['udp_kpps']:.1f} kpps "
              f"= {r['udp_kpps'] / plain['udp_kpps']:.3f} | load {load} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
