"""Binomial statistics for fidelity and conformance tests: confidence intervals, sample sizes.

A rate test counts events (lost datagrams, duplicates) among `n` independent trials and
asks whether the configured probability is plausible given what was seen.  The answer is a
two-sided confidence interval for the true proportion; the test passes when the configured
rate lies inside it.  At 99 % confidence a correct implementation fails such a test about
once in a hundred runs, so keep the number of rate tests small.

* :func:`wilson_interval`  -- Wilson score interval: closed form, good coverage even for
  proportions near 0 or 1 and for small `n` (unlike the textbook Wald interval).
* :func:`clopper_pearson_interval` -- the "exact" interval, from the binomial CDF itself
  (inverted through the regularized incomplete beta function); conservative: its coverage
  is at least the nominal level for every `p` and `n`.
* :func:`sample_size` -- how many trials make the Wilson interval no wider than a given
  half-width, for an expected proportion; use it to size a test from the precision it
  needs instead of guessing a count.

The Wilson interval is the inversion of the binomial score test, so "is the configured
rate `p` inside the Wilson interval of `k` events in `n`" is the same question as "is `k`
inside the acceptance interval ``n p +- z sqrt(n p (1 - p))``": :func:`rate_in_interval`
answers both, and no test needs its own normal-approximation helper.

Standard library only (``statistics.NormalDist`` for normal quantiles): the kernel checks in
the VM (vm/kernel_fidelity.py) import it as copied, and ``netbed.stats`` re-exports it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.99


def _check(successes: int, n: int, confidence: float) -> None:
    if n <= 0:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n={n}, got {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def z_value(confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The two-sided standard-normal quantile for `confidence` (2.5758 for 0.99)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval (lower, upper) for a proportion, as fractions in [0, 1].

    successes: events seen in `n` independent trials; confidence: two-sided level.
    """
    _check(successes, n, confidence)
    z = z_value(confidence)
    p_hat = successes / n
    z2n = z * z / n
    centre = (p_hat + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p_hat * (1 - p_hat) / n + z2n / (4 * n)) / (1 + z2n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1]."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection (I_x is increasing in x)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14:
            break
    return (lo + hi) / 2


def clopper_pearson_interval(successes: int, n: int,
                             confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval (lower, upper) for a proportion, fractions in [0, 1].

    lower = Beta(alpha/2; k, n-k+1) quantile, upper = Beta(1-alpha/2; k+1, n-k) quantile,
    with the conventions lower = 0 for k = 0 and upper = 1 for k = n.
    """
    _check(successes, n, confidence)
    alpha = 1 - confidence
    k = successes
    lower = 0.0 if k == 0 else _beta_quantile(alpha / 2, k, n - k + 1)
    upper = 1.0 if k == n else _beta_quantile(1 - alpha / 2, k + 1, n - k)
    return lower, upper


def sample_size(p: float, half_width: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Smallest n whose Wilson interval around an observed proportion `p` has a
    half-width (upper - lower) / 2 of at most `half_width` (a fraction, e.g. 0.005).

    Starts from the normal approximation n = z^2 p (1 - p) / h^2 and adjusts to the exact
    Wilson width, which is slightly narrower for small `p`.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not 0 < half_width < 0.5:
        raise ValueError(f"half_width must be in (0, 0.5), got {half_width}")
    z = z_value(confidence)

    def width(n: int) -> float:
        # Wilson half-width at p_hat = p (continuous in p, so no rounding of k).
        z2n = z * z / n
        return z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)

    n = max(1, math.ceil(z * z * max(p * (1 - p), 1e-12) / half_width**2))
    while n > 1 and width(n - 1) <= half_width:
        n -= 1
    while width(n) > half_width:
        n += 1
    return n


def rate_in_interval(events: int, n: int, expected: float,
                     confidence: float = DEFAULT_CONFIDENCE) -> tuple[bool, tuple[float, float]]:
    """Whether `expected` lies in the Wilson interval of `events`/`n`, and the interval."""
    lo, hi = wilson_interval(events, n, confidence)
    return lo <= expected <= hi, (lo, hi)
