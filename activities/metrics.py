"""Canary analysis against Prometheus: query every check for canary and baseline, then judge."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import BaseModel
from temporalio import activity
from urllib3.util.retry import Retry

from skyline.analysis import Observation, judge_check, summarize, template_values
from skyline.checks import MetricCheck, render
from skyline.health import components, health_score
from skyline.rollout import CheckResult, Verdict


class RunAnalysisInput(BaseModel):
    apartment: str
    building: str
    unit: str
    canary_version: str
    baseline_version: str | None
    window_seconds: float
    checks: list[MetricCheck]
    alpha: float
    weight: float = 0
    health_weights: dict[str, float] | None = None
    min_health_score: float | None = None


class RunAnalysisResult(BaseModel):
    verdict: Verdict
    reason: str
    checks: list[CheckResult]
    health_score: float | None = None
    health_components: dict[str, float] = {}


class PrometheusDown(RuntimeError):
    """Unreachable, timing out or 5xx: retried by the activity's retry policy."""


def _number(raw: object) -> float | None:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


class MetricsActivities:
    def __init__(self, prometheus_url: str, timeout_seconds: float) -> None:
        # No client-side retries: Temporal's retry policy owns retrying, so an
        # outage shows up in the workflow's history instead of hiding in here.
        self.prometheus = PrometheusConnect(
            url=prometheus_url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_seconds
        )

    def _call(self, fn: str, *args: object, **kwargs: object) -> list[dict[str, object]]:
        try:
            result: list[dict[str, object]] = getattr(self.prometheus, fn)(*args, **kwargs)
            return result
        except PrometheusApiClientException as exc:
            if "Status Code 5" in str(exc):
                raise PrometheusDown(f"Prometheus failed: {exc}") from exc
            raise
        except requests.RequestException as exc:
            raise PrometheusDown(f"Prometheus unreachable: {exc}") from exc

    def _instant(self, promql: str) -> float | None:
        result = self._call("custom_query", promql)
        if not result:
            return None
        value = result[0].get("value")
        return _number(value[1]) if isinstance(value, list) and len(value) == 2 else None

    def _range(self, promql: str, window: float, step: float) -> list[float]:
        end = time.time()
        result = self._call(
            "custom_query_range", promql, start_time=_dt(end - window), end_time=_dt(end), step=f"{step:g}s"
        )
        samples: list[float] = []
        for series in result[:1]:
            values = series.get("values")
            if isinstance(values, list):
                samples.extend(v for pair in values if (v := _number(pair[1])) is not None)
        return samples

    def observe(self, check: MetricCheck, values: dict[str, str], window: float) -> Observation:
        filled = {**values, **check.args}
        try:
            if check.kind == "ratio":
                assert check.total_query is not None
                return Observation(
                    bad=self._instant(render(check.query, filled)),
                    total=self._instant(render(check.total_query, filled)),
                )
            if check.kind == "samples":
                return Observation(
                    samples=self._range(render(check.query, filled), window, check.step_seconds)
                )
            return Observation(value=self._instant(render(check.query, filled)))
        except PrometheusApiClientException as exc:
            # The server answered but refused the query: retrying will not fix it.
            return Observation(error=f"Prometheus rejected the query: {exc}")

    @activity.defn
    def run_analysis(self, inp: RunAnalysisInput) -> RunAnalysisResult:
        results: list[CheckResult] = []
        for check in inp.checks:
            canary_vals = template_values(
                inp.apartment,
                inp.building,
                inp.unit,
                inp.canary_version,
                inp.canary_version,
                inp.baseline_version,
                inp.window_seconds,
            )
            canary = self.observe(check, canary_vals, inp.window_seconds)
            baseline = None
            if inp.baseline_version and inp.baseline_version != inp.canary_version:
                base_vals = {**canary_vals, "version": inp.baseline_version}
                baseline = self.observe(check, base_vals, inp.window_seconds)
            results.append(judge_check(check, canary, baseline, inp.alpha))
        health = health_score(components(results, inp.weight), inp.health_weights)
        if inp.min_health_score is not None:
            results.append(health_check(health.score, inp.min_health_score))
        verdict, reason = summarize(results)
        return RunAnalysisResult(
            verdict=verdict,
            reason=reason,
            checks=results,
            health_score=health.score,
            health_components=health.components,
        )


def health_check(score: float | None, minimum: float) -> CheckResult:
    """The minimum health score as one more check: no score is no evidence."""
    if score is None:
        return CheckResult(
            name="health_score",
            value=None,
            bound=minimum,
            comparison=">=",
            verdict="inconclusive",
            detail="no component had data",
        )
    verdict: Verdict = "pass" if score >= minimum else "fail"
    detail = "" if verdict == "pass" else f"{score:.1f} < {minimum:g}"
    return CheckResult(
        name="health_score", value=score, bound=minimum, comparison=">=", verdict=verdict, detail=detail
    )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
