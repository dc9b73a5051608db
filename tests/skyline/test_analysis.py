"""The judge: absolute and relative bounds, statistics, and missing evidence."""

from __future__ import annotations

import math

import pytest

from skyline.analysis import Observation, judge_check, summarize
from skyline.checks import MetricCheck, default_checks

ERRORS, P99 = default_checks(max_error_rate=0.01, max_p99_seconds=1.0, min_requests=50)
ALPHA = 0.05


def test_error_ratio_within_bound_passes() -> None:
    result = judge_check(ERRORS, Observation(bad=2, total=1000), None, ALPHA)
    assert result.verdict == "pass" and result.value == pytest.approx(0.002)


def test_clear_breach_fails_with_a_significant_binomial_test() -> None:
    result = judge_check(ERRORS, Observation(bad=200, total=1000), None, ALPHA)
    assert result.verdict == "fail"
    assert result.p_value is not None and result.p_value < 1e-6
    assert "0.2 > 0.01" in result.detail


def test_noise_above_the_bound_is_inconclusive_not_a_rollback() -> None:
    # 1 failure in 60 loads is 1.7 % > 1 %, but entirely plausible at a true 1 %.
    result = judge_check(ERRORS, Observation(bad=1, total=60), None, ALPHA)
    assert result.verdict == "inconclusive"
    assert "not significant" in result.detail


def test_too_few_samples_is_inconclusive_even_when_perfect() -> None:
    result = judge_check(ERRORS, Observation(bad=0, total=10), None, ALPHA)
    assert result.verdict == "inconclusive" and "need 50" in result.detail


@pytest.mark.parametrize("obs", [Observation(), Observation(bad=math.nan, total=math.nan)])
def test_empty_and_nan_results_are_inconclusive(obs: Observation) -> None:
    assert judge_check(ERRORS, obs, None, ALPHA).verdict == "inconclusive"
    assert judge_check(P99, Observation(value=math.nan), None, ALPHA).verdict == "inconclusive"
    assert judge_check(P99, Observation(value=None), None, ALPHA).detail == "no data"


def test_prometheus_errors_are_errors() -> None:
    result = judge_check(ERRORS, Observation(error="Prometheus unreachable: refused"), None, ALPHA)
    assert result.verdict == "error" and "unreachable" in result.detail


def test_fisher_flags_a_canary_significantly_worse_than_baseline_under_the_bound() -> None:
    # 0.8 % against 0.1 %: under the 1 % bound, but eight times the baseline.
    canary, baseline = Observation(bad=80, total=10_000), Observation(bad=10, total=10_000)
    result = judge_check(ERRORS, canary, baseline, ALPHA)
    assert result.verdict == "fail" and "Fisher" in result.detail
    assert result.baseline == pytest.approx(0.001)
    # the same difference on few loads is not evidence
    small = judge_check(ERRORS, Observation(bad=1, total=120), Observation(bad=0, total=120), ALPHA)
    assert small.verdict == "pass" and small.p_value is not None and small.p_value > ALPHA


def test_value_bounds_absolute_and_relative() -> None:
    assert judge_check(P99, Observation(value=0.4), None, ALPHA).verdict == "pass"
    assert judge_check(P99, Observation(value=1.4), None, ALPHA).verdict == "fail"
    relative = MetricCheck(name="lcp", query="x", tolerance=0.2)
    assert judge_check(relative, Observation(value=1.1), Observation(value=1.0), ALPHA).verdict == "pass"
    slow = judge_check(relative, Observation(value=1.3), Observation(value=1.0), ALPHA)
    assert slow.verdict == "fail" and slow.baseline == 1.0
    floor = MetricCheck(name="success", query="x", min=0.99)
    assert judge_check(floor, Observation(value=0.98), None, ALPHA).verdict == "fail"


def test_mann_whitney_on_samples() -> None:
    check = MetricCheck(name="load_p50", kind="samples", query="x", tolerance=0.1, min_samples=8)
    baseline = Observation(samples=[0.20, 0.21, 0.19, 0.22, 0.20, 0.21, 0.20, 0.19, 0.22, 0.21])
    slower = Observation(samples=[0.40, 0.42, 0.39, 0.41, 0.43, 0.40, 0.38, 0.41, 0.42, 0.40])
    same = Observation(samples=[0.21, 0.20, 0.22, 0.19, 0.20, 0.21, 0.20, 0.22, 0.19, 0.21])
    result = judge_check(check, slower, baseline, ALPHA)
    assert result.verdict == "fail" and "Mann-Whitney" in result.detail
    assert judge_check(check, same, baseline, ALPHA).verdict == "pass"
    few = judge_check(check, Observation(samples=[0.4, 0.5]), baseline, ALPHA)
    assert few.verdict == "inconclusive" and "only 2 samples" in few.detail


def test_summary_order_and_dry_run() -> None:
    dry = MetricCheck(name="exp", query="x", max=1, dry_run=True)
    failing_dry = judge_check(dry, Observation(value=5), None, ALPHA)
    passing = judge_check(P99, Observation(value=0.1), None, ALPHA)
    assert failing_dry.verdict == "fail" and failing_dry.dry_run
    assert summarize([failing_dry, passing]) == ("pass", "all checks within bounds")
    unsure = judge_check(ERRORS, Observation(bad=0, total=3), None, ALPHA)
    error = judge_check(P99, Observation(error="down"), None, ALPHA)
    fail = judge_check(P99, Observation(value=9), None, ALPHA)
    assert summarize([unsure, passing])[0] == "inconclusive"
    assert summarize([unsure, error])[0] == "error"
    assert summarize([unsure, error, fail])[0] == "fail"
