"""Memory the userspace engine needs to hold 10,000 packets in a delay queue.

    python3 bench/engine_memory.py [--packets 10000] [--size 1500]

Runs the engine's decision core offline (no network): a 60 s delay holds every
packet; tracemalloc measures what the engine allocates for them.  With delay
alone the engine keeps only the packet id and time (the kernel holds the
packet itself in its NFQUEUE queue: about one skb, truesize ~2-4 KiB for a
1500-byte packet, per held packet); with duplicate/corrupt/ecn it must copy
payloads, which is measured too.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc

from netbed_core.netem import parse
from netbed_router.engine import Engine, EngineConfig


def held_bytes(netem: str, packets: int, size: int) -> tuple[int, int]:
    """(bytes allocated while holding `packets`, packets held)."""
    packet = bytes(20) + bytes(size - 20)
    tracemalloc.start()
    engine = Engine(EngineConfig.from_netem(parse(netem)))
    base = tracemalloc.get_traced_memory()[0]
    for i in range(packets):
        engine.on_packet(i, memoryview(packet), size, 1_000_000 + i * 1000)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used, len(engine.held)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1500, help="IP packet size, bytes")
    opts = parser.parse_args()
    print("| impairment | packets held | engine memory | per packet |\n|---|---|---|---|")
    for netem in ("delay 60s limit 20000", "delay 60s duplicate 1% limit 20000"):
        used, held = held_bytes(netem, opts.packets, opts.size)
        print(f"| `{netem}` | {held} | {used / 2**20:.1f} MiB | {used / max(held, 1):.0f} B |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
