"""Seed 000's health score (RolloutMonitor.calculateHealthScore), without pretending.

Components and the seed's weights: error rate 0.4, latency 0.3, throughput
0.2, user feedback 0.1 (configurable). A component without data is left out
and the others re-weighted; it is never counted as perfect. No component with
data at all gives no score.
"""

from __future__ import annotations

from pydantic import BaseModel

from skyline.rollout import CheckResult

DEFAULT_WEIGHTS: dict[str, float] = {
    "error_rate": 0.4,
    "latency": 0.3,
    "throughput": 0.2,
    "user_feedback": 0.1,
}


class HealthScore(BaseModel):
    score: float | None
    components: dict[str, float]  # component -> 0..100, only those with data
    weights_used: dict[str, float]  # re-normalised over the components present


def _clip(value: float) -> float:
    return max(0.0, min(100.0, value))


def components(
    checks: list[CheckResult],
    weight: float,
    error_check: str = "error_rate",
    latency_check: str = "p99_load_seconds",
) -> dict[str, float]:
    by_name = {c.name: c for c in checks}
    found: dict[str, float] = {}
    errors = by_name.get(error_check)
    if errors is not None and errors.value is not None:
        # seed: 100 - errorRate(%) * 10, so 1 % costs 10 points and 10 % is zero
        found["error_rate"] = _clip(100 - errors.value * 100 * 10)
    latency = by_name.get(latency_check)
    if latency is not None and latency.value is not None:
        # seed: 100 - (latency_ms - 100) / 10, so 100 ms is perfect and 1.1 s is zero
        found["latency"] = _clip(100 - (latency.value * 1000 - 100) / 10)
    if errors is not None and errors.samples and errors.baseline_samples and 0 < weight < 100:
        # Loads per percent of traffic, canary against baseline: a canary that
        # users abandon (or that fails to report) shows up as lost throughput.
        canary_rate = errors.samples / weight
        baseline_rate = errors.baseline_samples / (100 - weight)
        found["throughput"] = _clip(canary_rate / baseline_rate * 100)
    feedback = by_name.get("user_feedback")
    if feedback is not None and feedback.value is not None:
        found["user_feedback"] = _clip(feedback.value)
    return found


def health_score(found: dict[str, float], weights: dict[str, float] | None = None) -> HealthScore:
    weights = weights or DEFAULT_WEIGHTS
    present = {name: w for name, w in weights.items() if name in found and w > 0}
    total = sum(present.values())
    if not present or total <= 0:
        return HealthScore(score=None, components=found, weights_used={})
    used = {name: w / total for name, w in present.items()}
    score = sum(found[name] * w for name, w in used.items())
    return HealthScore(score=round(score, 2), components=found, weights_used=used)
