"""Writes the synthetic link traces shipped beside this script (Mahimahi's format: one line per
delivery opportunity of one 1500-byte packet, its millisecond timestamp; the trace loops).

    python3 harness/netbed/traces/generate.py      # rewrites the .trace files here

- ``constant-12mbit.trace``: 12 Mbit/s (one opportunity per ms), 1 s, looping.
- ``step-12-3-24-6mbit.trace``: 1 s each at 12, 3, 24 and 6 Mbit/s (three rate changes), 4 s.
- ``cellular-30s.trace``: a cellular-like link, 30 s. Model (stated, not measured): the rate
  changes every 100 ms; its logarithm is an AR(1) process around log(8 Mbit/s),
  ``x[k+1] = mu + 0.85 (x[k] - mu) + N(0, 0.45)``, clamped to 1-30 Mbit/s, so the capacity
  swings across that range within a second or two, as the issue describing cellular links
  asks; random.Random(8) makes it reproducible.

Within a segment of rate R the opportunities are spread evenly: the number up to millisecond m
is floor(cumulative R·t / 12000 bit), each stamped with the millisecond in which it falls
(1-based, so the last timestamp is the trace's length).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).parent
PACKET_BITS = 1500 * 8


def opportunities(rates_bits_per_s: Sequence[float], segment_ms: int) -> list[int]:
    """Timestamps (ms, 1-based) for consecutive segments of ``segment_ms`` at the given rates."""
    out: list[int] = []
    total = 0.0
    emitted = 0
    for k, rate in enumerate(rates_bits_per_s):
        for ms in range(segment_ms):
            total += rate / 1000 / PACKET_BITS
            now = k * segment_ms + ms + 1
            while emitted < math.floor(total + 1e-9):
                out.append(now)
                emitted += 1
    if not out or out[-1] != len(rates_bits_per_s) * segment_ms:
        out.append(len(rates_bits_per_s) * segment_ms)  # the trace's length, as its last stamp
    return out


def cellular(seconds: int = 30, seed: int = 8) -> list[float]:
    rng = random.Random(seed)
    mu = math.log(8e6)
    x = mu
    rates = []
    for _ in range(seconds * 10):
        rates.append(min(30e6, max(1e6, math.exp(x))))
        x = mu + 0.85 * (x - mu) + rng.gauss(0.0, 0.45)
    return rates


def traces() -> dict[str, list[int]]:
    """Every shipped trace by name."""
    return {
        "constant-12mbit": opportunities([12e6], 1000),
        "step-12-3-24-6mbit": opportunities([12e6, 3e6, 24e6, 6e6], 1000),
        "cellular-30s": opportunities(cellular(), 100),
    }


def main() -> None:
    for name, stamps in traces().items():
        (HERE / f"{name}.trace").write_text("".join(f"{t}\n" for t in stamps), encoding="ascii")


if __name__ == "__main__":
    main()
