"""Anytime-valid confidence bounds for a proportion (failed loads, slow loads).

The method is Robbins' beta-binomial mixture martingale (H. Robbins,
"Statistical methods related to the law of the iterated logarithm", Ann. Math.
Statist. 41, 1970; as a confidence sequence in S. R. Howard, A. Ramdas,
J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49, 2021, section 3.3 / eq. (16)). For Bernoulli
observations with unknown mean p, and a Beta(a, b) mixing distribution,

    M_n(p) = B(a + x, b + n - x) / B(a, b) / (p^x (1 - p)^(n - x))

is a nonnegative martingale with M_0 = 1 under p, so by Ville's inequality
P(exists n: M_n(p) >= 1/alpha) <= alpha. The set {p : M_n(p) < 1/alpha} is a
confidence sequence: it covers the true p at *every* look with probability at
least 1 - alpha, however often the judge looks and whenever it stops. That is
what lets Skyline look every interval without inflating false rollbacks.

It needs nothing but counts, so evidence may be pooled across looks and steps
(the loads of a rollout are one stream of Bernoulli trials per variant), and
two variants are compared by a union bound over their two sequences.

scipy is used for the log-beta function and the root finding; no maintained
package ships this bound for Python 3.11 without a C++ build (confseq needs
Boost), and the formula above is a few lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy.optimize import brentq
from scipy.special import betaln

# Jeffreys' Beta(1/2, 1/2): mass near 0 and 1, so rare failure ratios (0.1 %)
# and overwhelming ones (40 of 40) both get tight bounds.
PRIOR_A = 0.5
PRIOR_B = 0.5
_EPS = 1e-12


@dataclass(frozen=True)
class Bounds:
    """An anytime-valid interval for a proportion."""

    lower: float
    upper: float
    estimate: float | None  # x / n, None without observations
    n: int


def _log_martingale(p: float, x: int, n: int) -> float:
    return float(
        betaln(PRIOR_A + x, PRIOR_B + n - x)
        - betaln(PRIOR_A, PRIOR_B)
        - x * math.log(p)
        - (n - x) * math.log1p(-p)
    )


def _bounds(x: int, n: int, alpha: float) -> Bounds:
    """Anytime-valid (1 - alpha) bounds for p from x successes in n trials."""
    if n < 0 or not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n == 0:
        return Bounds(0.0, 1.0, None, 0)
    threshold = math.log(1 / alpha)
    estimate = x / n

    def excess(p: float) -> float:
        return _log_martingale(p, x, n) - threshold

    lower = 0.0
    if x > 0:
        lo = _EPS
        lower = lo if excess(lo) < 0 else float(brentq(excess, lo, min(estimate, 1 - _EPS), xtol=1e-12))
    upper = 1.0
    if x < n:
        hi = 1 - _EPS
        upper = hi if excess(hi) < 0 else float(brentq(excess, max(estimate, _EPS), hi, xtol=1e-12))
    return Bounds(lower, upper, estimate, n)


# Memoised apart from its definition so that mutation testing (docs/mutation.md) can
# mutate the body: mutmut leaves decorated functions alone.
bounds = lru_cache(maxsize=65536)(_bounds)


def trials_to_reach(x_rate: float, width: float, alpha: float, limit: int = 10_000_000) -> int | None:
    """About how many trials at rate `x_rate` bring the upper bound within `width` of it.

    Used to tell a person what evidence is missing ("about 1,800 more loads").
    None when even `limit` trials would not do it.
    """
    if width <= 0:
        return None
    lo, hi = 1, 1
    while True:
        x = round(x_rate * hi)
        if bounds(x, hi, alpha).upper - x_rate <= width:
            break
        if hi >= limit:
            return None
        lo, hi = hi, min(limit, hi * 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds(round(x_rate * mid), mid, alpha).upper - x_rate <= width:
            hi = mid
        else:
            lo = mid + 1
    return hi
