"""Fixed-sample non-inferiority tests, used once per step at the end of its bake.

Promotion is decided at one moment (the end of the bake), so it needs no
anytime-valid correction; rollbacks, decided at every look, use
skyline/confseq.py instead.

- Failed loads: the conditional test for the ratio of two Poisson rates
  (J. Przyborowski, H. Wilenski, "Homogeneity of results in testing samples
  from Poisson series", Biometrika 31, 1940; as a non-inferiority test in
  Chow, Shao, Wang, "Sample Size Calculations in Clinical Research", 2008, 4.2).
  Given x = x_c + x_b failures, x_c ~ Binomial(x, pi0) under
  H0: rate_c = ratio x rate_b, with pi0 = ratio n_c / (ratio n_c + n_b).
- Slow loads (a share near one half, not rare): the Wald test of a difference
  of proportions with a margin, on Agresti-Caffo adjusted counts (A. Agresti,
  B. Caffo, "Simple and effective confidence intervals for proportions and
  differences of proportions", Am. Statist. 54, 2000).
"""

from __future__ import annotations

import math

from scipy import stats


def ratio_pvalue(x_c: int, n_c: int, x_b: int, n_b: int, ratio: float) -> float:
    """p-value of H0: canary rate >= ratio x base rate (small: the canary is not worse by that much)."""
    if n_c <= 0 or n_b <= 0:
        return 1.0
    failures = x_c + x_b
    if failures == 0:
        return 1.0
    pi0 = ratio * n_c / (ratio * n_c + n_b)
    return float(stats.binom.cdf(x_c, failures, pi0))


def excess_pvalue(x_c: int, n_c: int, x_b: int, n_b: int, ratio: float) -> float:
    """p-value of H0: canary rate <= ratio x base rate (small: the canary is worse by more than that)."""
    failures = x_c + x_b
    if n_c <= 0 or n_b <= 0 or x_c == 0:
        return 1.0
    pi0 = ratio * n_c / (ratio * n_c + n_b)
    return float(stats.binom.sf(x_c - 1, failures, pi0))


def bound_pvalue(x: int, n: int, bound: float) -> float:
    """p-value of H0: rate >= bound, one sample (exact binomial)."""
    if n <= 0:
        return 1.0
    return float(stats.binom.cdf(x, n, bound))


def difference_pvalue(x_c: int, n_c: int, x_b: int, n_b: int, margin: float) -> float:
    """p-value of H0: canary share - base share >= margin."""
    if n_c <= 0 or n_b <= 0:
        return 1.0
    qc = (x_c + 1) / (n_c + 2)
    qb = (x_b + 1) / (n_b + 2)
    se = math.sqrt(qc * (1 - qc) / (n_c + 2) + qb * (1 - qb) / (n_b + 2))
    return float(stats.norm.cdf((qc - qb - margin) / se))
