"""The binomial helpers (netbed.stats) against a directly summed binomial."""

from __future__ import annotations

import math
import random

import pytest

from netbed import stats


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed directly in log space (independent check)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    for i in range(k + 1):
        log_term = (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                    + i * math.log(p) + (n - i) * math.log1p(-p))
        total += math.exp(log_term)
    return min(1.0, total)


def test_z_value_99() -> None:
    """The two-sided 99 % normal quantile is 2.5758."""
    assert stats.z_value(0.99) == pytest.approx(2.5758293, abs=1e-6)
    assert stats.z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_wilson_known_value() -> None:
    """Wilson 99 % interval for 50/100 is 0.5 +- 0.1247 (worked by hand from the formula)."""
    lo, hi = stats.wilson_interval(50, 100)
    assert lo == pytest.approx(0.37528, abs=1e-4)
    assert hi == pytest.approx(0.62472, abs=1e-4)


def test_wilson_edges_stay_in_unit_interval() -> None:
    """0 and n successes give intervals inside [0, 1] that still have width."""
    lo, hi = stats.wilson_interval(0, 200)
    assert lo == 0.0 and 0 < hi < 0.05
    lo, hi = stats.wilson_interval(200, 200)
    assert hi == 1.0 and 0.95 < lo < 1


@pytest.mark.parametrize(("k", "n"), [(0, 20), (20, 20), (1, 10), (5, 100), (500, 10_000), (37, 59)])
def test_clopper_pearson_matches_binomial_tails(k: int, n: int) -> None:
    """Exact bounds: P(X >= k | lower) = alpha/2 and P(X <= k | upper) = alpha/2, checked
    against a directly summed binomial CDF."""
    alpha = 0.01
    lo, hi = stats.clopper_pearson_interval(k, n, 0.99)
    if k > 0:
        assert 1 - binom_cdf(k - 1, n, lo) == pytest.approx(alpha / 2, rel=1e-6)
    else:
        assert lo == 0.0
    if k < n:
        assert binom_cdf(k, n, hi) == pytest.approx(alpha / 2, rel=1e-6)
    else:
        assert hi == 1.0


def test_clopper_pearson_closed_forms() -> None:
    """k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)."""
    n = 30
    assert stats.clopper_pearson_interval(0, n)[1] == pytest.approx(1 - 0.005 ** (1 / n), rel=1e-9)
    assert stats.clopper_pearson_interval(n, n)[0] == pytest.approx(0.005 ** (1 / n), rel=1e-9)


def test_clopper_pearson_is_wider_than_wilson() -> None:
    """The exact interval is conservative: wider than Wilson's for the same counts."""
    for k, n in [(500, 10_000), (5, 100), (50, 100)]:
        cp = stats.clopper_pearson_interval(k, n)
        wi = stats.wilson_interval(k, n)
        assert cp[1] - cp[0] > wi[1] - wi[0]


def test_sample_size_gives_requested_width() -> None:
    """sample_size(p, h) is the smallest n whose Wilson half-width at p is <= h."""
    n = stats.sample_size(0.05, 0.0056)
    assert 9_900 < n < 10_200

    def half(count: int) -> float:
        lo, hi = stats.wilson_interval(round(0.05 * count), count)
        return float(hi - lo) / 2

    assert half(n) <= 0.0056 + 1e-4
    assert half(n // 2) > 0.0056


def test_sample_size_scales_inverse_square() -> None:
    """Halving the half-width needs about four times the sample."""
    ratio = stats.sample_size(0.1, 0.01) / stats.sample_size(0.1, 0.02)
    assert 3.8 < ratio < 4.2


@pytest.mark.parametrize("bad", [(-1, 10), (11, 10), (0, 0)])
def test_bad_counts_rejected(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        stats.wilson_interval(*bad)
    with pytest.raises(ValueError):
        stats.clopper_pearson_interval(*bad)


def test_rate_in_interval() -> None:
    """5 % is plausible after 520 losses in 10,000, not after 650."""
    assert stats.rate_in_interval(520, 10_000, 0.05)[0]
    assert not stats.rate_in_interval(650, 10_000, 0.05)[0]


@pytest.mark.parametrize(("n", "p"), [(3000, 0.10), (10_000, 0.10), (4000, 0.30), (400, 0.05)])
def test_rate_in_interval_is_the_count_acceptance_test(n: int, p: float) -> None:
    """p lies in the Wilson interval of k/n exactly when k lies in n p +- z sqrt(n p (1 - p))
    (the score test the Wilson interval inverts), for every k away from the two edges, so
    the namespace tests and the VM checks lost nothing when their normal-approximation
    count intervals gave way to rate_in_interval."""
    z = stats.z_value(0.99)
    half = z * math.sqrt(n * p * (1 - p))
    for k in range(n + 1):
        if abs(abs(k - n * p) - half) < 1e-6:
            continue  # on the boundary itself, floating point decides
        assert stats.rate_in_interval(k, n, p)[0] == (abs(k - n * p) <= half), k


def test_wilson_coverage_simulated() -> None:
    """Simulated coverage of the 99 % Wilson interval at p = 0.05, n = 400 is near 99 %
    (fixed seed; 2000 trials)."""
    rng = random.Random(1234)
    trials, n, p = 2000, 400, 0.05
    covered = 0
    for _ in range(trials):
        k = sum(1 for _ in range(n) if rng.random() < p)
        lo, hi = stats.wilson_interval(k, n)
        covered += lo <= p <= hi
    assert covered / trials > 0.975
