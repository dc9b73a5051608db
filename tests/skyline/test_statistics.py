"""The judge's statistics (skyline/confseq.py, skyline/noninferiority.py) on values worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from skyline.confseq import Bounds, bounds, trials_to_reach
from skyline.noninferiority import bound_pvalue, difference_pvalue, excess_pvalue, ratio_pvalue


@pytest.fixture(autouse=True)
def _fresh_bounds() -> Iterator[None]:
    # `bounds` is memoised: compute what is asserted here, not what an earlier test (or the
    # process a mutation-testing worker was forked from) left in the cache.
    bounds.cache_clear()
    yield


def log_mixture(p: float, x: int, n: int) -> float:
    """Robbins' Beta(1/2, 1/2) mixture martingale, written independently with lgamma."""

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return log_beta(0.5 + x, 0.5 + n - x) - log_beta(0.5, 0.5) - x * math.log(p) - (n - x) * math.log(1 - p)


@pytest.mark.parametrize(("x", "n", "alpha"), [(5, 10, 0.05), (3, 1000, 0.01), (40, 40, 0.1), (1, 2, 0.2)])
def test_bounds_are_where_the_martingale_reaches_one_over_alpha(x: int, n: int, alpha: float) -> None:
    b = bounds(x, n, alpha)
    assert b.estimate == x / n and b.n == n
    assert b.lower <= x / n <= b.upper
    for edge in (b.lower, b.upper):
        if 0 < edge < 1:
            assert log_mixture(edge, x, n) == pytest.approx(math.log(1 / alpha), abs=1e-6)
    # just inside the interval the martingale is below the threshold, just outside above it
    inside = (b.lower + b.upper) / 2
    assert log_mixture(inside, x, n) < math.log(1 / alpha)
    if b.lower > 1e-6:
        assert log_mixture(b.lower * 0.99, x, n) > math.log(1 / alpha)
    if b.upper < 1 - 1e-6:
        assert log_mixture(b.upper + (1 - b.upper) * 0.01, x, n) > math.log(1 / alpha)


def test_bounds_at_the_extremes() -> None:
    assert bounds(0, 0, 0.05) == Bounds(0.0, 1.0, None, 0)
    none_failed = bounds(0, 10, 0.05)
    assert none_failed.lower == 0.0 and none_failed.upper == pytest.approx(0.37699, abs=1e-5)
    all_failed = bounds(10, 10, 0.05)
    assert all_failed.upper == 1.0 and all_failed.lower == pytest.approx(1 - 0.37699, abs=1e-5)
    half = bounds(5, 10, 0.05)
    assert half.lower == pytest.approx(0.117563, abs=1e-5) and half.upper == pytest.approx(0.882437, abs=1e-5)


def test_a_smaller_alpha_widens_the_bounds() -> None:
    loose, strict = bounds(20, 1000, 0.2), bounds(20, 1000, 0.01)
    assert strict.lower < loose.lower and strict.upper > loose.upper


@pytest.mark.parametrize(
    ("x", "n", "alpha", "message"),
    [
        (1, 0, 0.05, "need 0 <= x <= n, got x=1, n=0"),
        (-1, 5, 0.05, "need 0 <= x <= n"),
        (6, 5, 0.05, "need 0 <= x <= n"),
        (0, -1, 0.05, "need 0 <= x <= n"),
        (1, 5, 0.0, r"alpha must be in \(0, 1\), got 0.0"),
        (1, 5, 1.0, "alpha must be in"),
    ],
)
def test_bounds_refuse_impossible_counts(x: int, n: int, alpha: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bounds(x, n, alpha)


def test_trials_to_reach_a_width() -> None:
    needed = trials_to_reach(0.01, 0.005, 0.05)
    assert needed is not None
    # the smallest such count: it reaches the width, one fewer... does not (around that count)
    assert bounds(round(0.01 * needed), needed, 0.05).upper - 0.01 <= 0.005
    assert bounds(round(0.01 * (needed - 1)), needed - 1, 0.05).upper - 0.01 > 0.005
    assert 5000 < needed < 10_000
    wider = trials_to_reach(0.01, 0.01, 0.05)
    assert wider is not None and wider < needed
    assert trials_to_reach(0.01, 0.0, 0.05) is None
    assert trials_to_reach(0.01, -0.1, 0.05) is None
    assert trials_to_reach(0.01, 1e-6, 0.05, limit=1000) is None
    assert trials_to_reach(0.5, 0.6, 0.05) == 1  # any single trial is within a width above 1/2


@pytest.mark.parametrize(("rate", "width"), [(0.01, 0.005), (0.02, 0.01), (0.001, 0.002), (0.1, 0.05)])
def test_trials_to_reach_is_the_smallest_count(rate: float, width: float) -> None:
    needed = trials_to_reach(rate, width, 0.05)
    assert needed is not None and isinstance(needed, int)
    assert bounds(round(rate * needed), needed, 0.05).upper - rate <= width
    assert all(
        bounds(round(rate * n), n, 0.05).upper - rate > width for n in range(max(1, needed - 3), needed)
    )


def test_ratio_pvalue_by_hand() -> None:
    # 3 canary failures of 4 in all; under H0 (rate 2x base) a failure is the canary's with 0.4
    assert ratio_pvalue(3, 100, 1, 300, 2.0) == pytest.approx(1 - 0.4**4)
    assert ratio_pvalue(1, 100, 1, 100, 1.0) == pytest.approx(0.75)
    assert ratio_pvalue(0, 100, 0, 100, 1.5) == 1.0  # no failures: nothing shown
    assert ratio_pvalue(0, 0, 5, 100, 1.5) == 1.0
    assert ratio_pvalue(1, 100, 5, 0, 1.5) == 1.0
    assert ratio_pvalue(0, 1000, 50, 1000, 1.5) < 1e-6


def test_excess_pvalue_by_hand() -> None:
    # P(X >= 3), X ~ Binomial(4, 0.4)
    assert excess_pvalue(3, 100, 1, 300, 2.0) == pytest.approx(4 * 0.4**3 * 0.6 + 0.4**4)
    assert excess_pvalue(2, 100, 0, 100, 1.0) == pytest.approx(0.25)
    assert excess_pvalue(0, 100, 5, 100, 1.0) == 1.0  # no canary failure shows no excess
    assert excess_pvalue(5, 0, 5, 100, 1.0) == 1.0
    assert excess_pvalue(5, 100, 5, 0, 1.0) == 1.0
    assert excess_pvalue(50, 1000, 0, 1000, 1.5) < 1e-6


def test_bound_pvalue_by_hand() -> None:
    assert bound_pvalue(0, 10, 0.1) == pytest.approx(0.9**10)
    assert bound_pvalue(1, 10, 0.1) == pytest.approx(0.9**10 + 10 * 0.1 * 0.9**9)
    assert bound_pvalue(0, 0, 0.1) == 1.0
    assert bound_pvalue(0, 1, 0.1) == pytest.approx(0.9)


def test_difference_pvalue_by_hand() -> None:
    # Agresti-Caffo: (5+1)/(98+2) on both sides, equal shares: z = 0
    assert difference_pvalue(5, 98, 5, 98, 0.0) == pytest.approx(0.5)
    se = math.sqrt(2 * 0.06 * 0.94 / 100)
    assert difference_pvalue(5, 98, 5, 98, 0.1) == pytest.approx(0.5 * math.erfc(0.1 / se / math.sqrt(2)))
    assert difference_pvalue(5, 98, 10, 98, 0.0) == pytest.approx(
        0.5 * math.erfc(0.05 / math.sqrt(0.06 * 0.94 / 100 + 0.11 * 0.89 / 100) / math.sqrt(2))
    )
    assert difference_pvalue(5, 0, 5, 98, 0.1) == 1.0
    assert difference_pvalue(5, 98, 5, 0, 0.1) == 1.0


def test_one_trial_or_one_failure_is_evidence_not_a_guard_case() -> None:
    # one failure in all: a share of it, not "nothing shown"
    assert ratio_pvalue(0, 100, 1, 100, 1.0) == pytest.approx(0.5)
    assert ratio_pvalue(0, 1, 1, 100, 1.0) == pytest.approx(100 / 101)
    assert ratio_pvalue(0, 100, 1, 1, 1.0) == pytest.approx(1 / 101)
    assert excess_pvalue(1, 100, 0, 100, 1.0) == pytest.approx(0.5)
    assert excess_pvalue(1, 1, 0, 100, 1.0) == pytest.approx(1 / 101)
    assert excess_pvalue(1, 100, 0, 1, 1.0) == pytest.approx(100 / 101)
    assert difference_pvalue(0, 1, 0, 100, 0.0) < 1.0
    assert difference_pvalue(0, 100, 0, 1, 0.0) < 1.0


def test_one_failure_already_moves_the_lower_bound_off_zero() -> None:
    one = bounds(1, 2, 0.2)
    assert 0 < one.lower < 0.5 < one.upper < 1
    # an alpha so small that no rate is excluded clamps to the edges instead of failing
    assert bounds(1, 2, 1e-15) == Bounds(1e-12, 1 - 1e-12, 0.5, 2)


def test_a_rate_of_one_reaches_a_zero_width_never() -> None:
    assert trials_to_reach(1.0, 0.0, 0.05) is None
