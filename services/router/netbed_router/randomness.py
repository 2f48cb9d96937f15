"""netem's random sources: correlated uniform numbers and the delay distributions.

Each function mirrors its namesake in linux net/sched/sch_netem.c (get_crandom,
tabledist) or iproute2's distribution tables, computed analytically instead of
read from a table.
"""

from __future__ import annotations

import random
from statistics import NormalDist

#: iproute2's distribution tables hold s16 values in units of sigma/NETEM_DIST_SCALE.
NETEM_DIST_SCALE = 8192
DIST_MAX = 32767 / NETEM_DIST_SCALE
DIST_MIN = -32768 / NETEM_DIST_SCALE

_NORMAL = NormalDist()

_U64 = (1 << 64) - 1
#: SplitMix64's increment (2^64 / golden ratio), also used to space the streams apart.
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(x: int) -> int:
    """SplitMix64's output function (Steele, Lea, Flood 2014) of the u64 state ``x + gamma``."""
    z = (x + _GOLDEN_GAMMA) & _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def stream_seed(seed: int, stream: int) -> int:
    """The seed of random stream ``stream`` (the direction index: 0 to-server, 1 to-client)
    drawn from a user's ``seed``: ``splitmix64((seed mod 2^64) + stream * 0x9E3779B97F4A7C15)``.

    Each direction gets its own stream from one seed, so the two directions of a ``seed N``
    impairment do not lose the same sequence numbers, and seed + direction still replays."""
    return splitmix64(((seed & _U64) + stream * _GOLDEN_GAMMA) & _U64)


class CRandom:
    """netem's correlated random generator (``get_crandom``) over a shared u32 source.

    ``rho`` is the correlation as a u32 (0 = independent draws).
    """

    __slots__ = ("rho", "last", "_bits")

    def __init__(self, rho: int, rng: random.Random) -> None:
        self.rho = rho
        self._bits = rng.getrandbits
        self.last = rng.getrandbits(32)  # netem: init_crandom seeds 'last' at random

    def next(self) -> int:
        value = self._bits(32)
        if self.rho == 0:
            return value
        rho = self.rho + 1
        answer = (value * ((1 << 32) - rho) + self.last * rho) >> 32
        self.last = answer
        return answer


def dist_value(dist: str | None, rnd: int) -> float:
    """The standardized value (units of sigma) of netem's table ``dist`` at u32 ``rnd``.

    Analytic versions of iproute2's netem/{normal,pareto,paretonormal}.c: the table is the
    inverse CDF sampled uniformly, values clamped to the s16 range (±4 sigma).
    """
    u = (rnd + 0.5) / 4294967296.0
    if dist == "normal":
        z = _NORMAL.inv_cdf(u)
    elif dist == "pareto":
        z = min(DIST_MAX, ((1.0 - u) ** (-1.0 / 3.0) - 1.5) * (4.0 / 3.0))
    elif dist == "paretonormal":
        par = min(DIST_MAX, ((1.0 - u) ** (-1.0 / 3.0) - 1.5) * (4.0 / 3.0))
        z = (_NORMAL.inv_cdf(u) + 3.0 * par) / 4.0
    else:
        raise ValueError(f"unknown distribution {dist!r}")
    return max(DIST_MIN, min(DIST_MAX, z))


def tabledist(mu: int, sigma: int, state: CRandom | None, rng: random.Random, dist: str | None) -> int:
    """netem ``tabledist``: a delay in ns with mean ``mu`` and spread ``sigma`` (ns)."""
    if sigma == 0:
        return mu
    rnd = state.next() if state is not None else rng.getrandbits(32)
    if dist is None:
        return (rnd % (2 * sigma)) + mu - sigma
    return mu + int(round(sigma * dist_value(dist, rnd)))
