from __future__ import annotations

import math

from skyline.analysis import canary_queries, judge
from skyline.rollout import CanaryStrategy

STRATEGY = CanaryStrategy(max_error_rate=0.01, max_p99_seconds=1.0, min_requests=50)


def test_all_within_bounds_passes() -> None:
    verdict, checks, _ = judge({"requests": 500, "error_rate": 0.002, "p99_load_seconds": 0.3}, {}, STRATEGY)
    assert verdict == "pass"
    assert [c.verdict for c in checks] == ["pass", "pass", "pass"]


def test_error_rate_breach_fails_and_says_why() -> None:
    verdict, checks, reason = judge(
        {"requests": 500, "error_rate": 0.05, "p99_load_seconds": 0.3}, {}, STRATEGY
    )
    assert verdict == "fail"
    assert "error_rate" in reason and "0.05 > 0.01" in reason
    assert next(c for c in checks if c.name == "error_rate").verdict == "fail"


def test_p99_breach_fails() -> None:
    verdict, _, reason = judge({"requests": 500, "error_rate": 0.0, "p99_load_seconds": 2.5}, {}, STRATEGY)
    assert verdict == "fail" and "p99_load_seconds" in reason


def test_no_data_is_inconclusive_never_pass() -> None:
    verdict, checks, reason = judge(
        {"requests": None, "error_rate": None, "p99_load_seconds": None}, {}, STRATEGY
    )
    assert verdict == "inconclusive"
    assert all(c.verdict == "inconclusive" for c in checks)
    assert "no data" in reason or "too few" in reason


def test_nan_is_inconclusive() -> None:
    verdict, checks, _ = judge(
        {"requests": 500, "error_rate": 0.0, "p99_load_seconds": math.nan}, {}, STRATEGY
    )
    assert verdict == "inconclusive"
    assert next(c for c in checks if c.name == "p99_load_seconds").value is None


def test_too_few_samples_is_inconclusive_even_when_values_look_good() -> None:
    verdict, _, reason = judge({"requests": 10, "error_rate": 0.0, "p99_load_seconds": 0.1}, {}, STRATEGY)
    assert verdict == "inconclusive" and "too few loads" in reason


def test_breach_on_few_samples_still_fails() -> None:
    verdict, _, _ = judge({"requests": 10, "error_rate": 0.5, "p99_load_seconds": 0.1}, {}, STRATEGY)
    assert verdict == "fail"


def test_prometheus_errors_are_inconclusive() -> None:
    errors = {"error_rate": "metrics unavailable: connection refused"}
    verdict, checks, reason = judge({"requests": 500, "p99_load_seconds": 0.1}, errors, STRATEGY)
    assert verdict == "inconclusive" and "connection refused" in reason
    assert next(c for c in checks if c.name == "error_rate").detail.startswith("metrics unavailable")


def test_queries_select_the_canary_version_and_window() -> None:
    queries = {q.name: q.promql for q in canary_queries("shop", "header", "header", "1.2.0", 30)}
    assert set(queries) == {"requests", "error_rate", "p99_load_seconds"}
    for promql in queries.values():
        assert 'version="1.2.0"' in promql and 'building="header"' in promql and "[30s]" in promql
    assert 'outcome!="loaded"' in queries["error_rate"]
    assert queries["p99_load_seconds"].startswith("histogram_quantile(0.99")
