"""Seed 000's health score, with missing components left out rather than counted perfect."""

from __future__ import annotations

import pytest

from activities.metrics import health_check
from skyline.health import DEFAULT_WEIGHTS, components, health_score
from skyline.rollout import CheckResult


def check(name: str, value: float | None, **extra: float) -> CheckResult:
    return CheckResult(name=name, value=value, verdict="pass", **extra)


def test_seed_formulas_and_weights() -> None:
    found = components(
        [
            check("error_rate", 0.005, samples=500, baseline_samples=9500),  # 0.5 % -> 95
            check("p99_load_seconds", 0.3),  # 300 ms -> 80
            check("user_feedback", 70),
        ],
        weight=5,
    )
    assert found == pytest.approx({"error_rate": 95, "latency": 80, "throughput": 100, "user_feedback": 70})
    score = health_score(found)
    assert score.score == pytest.approx(0.4 * 95 + 0.3 * 80 + 0.2 * 100 + 0.1 * 70)
    assert score.weights_used == pytest.approx(DEFAULT_WEIGHTS)


def test_missing_components_are_left_out_and_the_rest_reweighted() -> None:
    found = components([check("error_rate", 0.02), check("p99_load_seconds", None)], weight=100)
    assert found == {"error_rate": 80}  # no latency data, no baseline at 100 %, no feedback
    score = health_score(found)
    assert score.score == 80 and score.weights_used == {"error_rate": 1.0}
    # a perfect error rate with the latency missing is 100, not "perfect latency" too
    only_latency = health_score(components([check("p99_load_seconds", 1.1)], weight=50))
    assert only_latency.score == 0 and set(only_latency.weights_used) == {"latency"}


def test_nothing_measured_gives_no_score_not_a_perfect_one() -> None:
    assert health_score({}).score is None
    assert health_score(components([check("error_rate", None)], weight=5)).score is None


def test_throughput_compares_loads_per_percent_of_traffic() -> None:
    # 5 % of traffic should bring 1/19 of the baseline's loads; half that is a 50 score
    found = components([check("error_rate", 0.0, samples=250, baseline_samples=9500)], weight=5)
    assert found["throughput"] == pytest.approx(50)


def test_custom_weights_and_the_minimum_score_check() -> None:
    score = health_score({"error_rate": 100, "latency": 0}, {"error_rate": 0.5, "latency": 0.5})
    assert score.score == 50
    assert health_check(50, 60).verdict == "fail" and "50.0 < 60" in health_check(50, 60).detail
    assert health_check(75, 60).verdict == "pass"
    assert health_check(None, 60).verdict == "inconclusive"


def test_components_are_clipped_to_0_100() -> None:
    found = components([check("user_feedback", 150), check("error_rate", 0.5)], weight=5)
    assert found == {"user_feedback": 100.0, "error_rate": 0.0}


def test_throughput_needs_both_variants_sharing_traffic() -> None:
    errors = check("error_rate", 0.0, samples=500, baseline_samples=9500)
    assert "throughput" in components([errors], weight=1)
    assert "throughput" not in components([errors], weight=100)  # no baseline traffic at 100 %
    assert "throughput" not in components([errors], weight=0)
    assert components([errors], weight=0.5)["throughput"] == pytest.approx(
        min(100.0, 500 / 0.5 / (9500 / 99.5) * 100)
    )


def test_zero_weights_leave_a_component_out() -> None:
    score = health_score({"error_rate": 90.0, "latency": 10.0}, {"error_rate": 1.0, "latency": 0.0})
    assert score.score == 90.0 and score.weights_used == {"error_rate": 1.0}
    none = health_score({"latency": 10.0}, {"error_rate": 1.0, "latency": 0.0})
    assert none.score is None and none.weights_used == {}


def test_the_score_is_rounded_to_two_decimals() -> None:
    assert health_score({"error_rate": 100 / 3}).score == 33.33
