"""Canary analysis: the PromQL Skyline asks and the judgement of the answers.

Pure functions so the workflow can judge deterministically from values an
activity fetched. Missing evidence is never a pass: no series, NaN or too few
loads make the analysis inconclusive.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from skyline.rollout import CanaryStrategy, CheckResult, Verdict

LOADS = "skyline_unit_loads_total"
LOAD_SECONDS = "skyline_unit_load_seconds_bucket"


class MetricQuery(BaseModel):
    name: str
    promql: str


def _selector(apartment: str, building: str, unit: str, version: str, extra: str = "") -> str:
    labels = f'apartment="{apartment}",building="{building}",unit="{unit}",version="{version}"'
    return "{" + labels + (f",{extra}" if extra else "") + "}"


def canary_queries(
    apartment: str, building: str, unit: str, version: str, window_seconds: float
) -> list[MetricQuery]:
    """Queries for the canary's loads, failure ratio and p99 load time over the window."""
    sel = _selector(apartment, building, unit, version)
    bad = _selector(apartment, building, unit, version, 'outcome!="loaded"')
    w = f"{int(window_seconds)}s"
    return [
        MetricQuery(name="requests", promql=f"sum(increase({LOADS}{sel}[{w}]))"),
        MetricQuery(
            name="error_rate",
            # `or vector(0)`: no failure series at all means zero failures, while
            # no load series at all still leaves the ratio empty (inconclusive).
            promql=f"(sum(rate({LOADS}{bad}[{w}])) or vector(0)) / sum(rate({LOADS}{sel}[{w}]))",
        ),
        MetricQuery(
            name="p99_load_seconds",
            promql=f"histogram_quantile(0.99, sum by (le) (rate({LOAD_SECONDS}{sel}[{w}])))",
        ),
    ]


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def judge(
    values: dict[str, float | None], errors: dict[str, str], strategy: CanaryStrategy
) -> tuple[Verdict, list[CheckResult], str]:
    """Judge one analysis run. Fail beats inconclusive beats pass."""
    checks: list[CheckResult] = []
    requests = values.get("requests")
    enough = _usable(requests) and requests is not None and requests >= strategy.min_requests
    checks.append(
        CheckResult(
            name="requests",
            value=requests if _usable(requests) else None,
            bound=strategy.min_requests,
            comparison=">=",
            verdict="pass" if enough else "inconclusive",
            detail=errors.get("requests", "" if enough else "too few loads to judge"),
        )
    )
    for name, bound in (
        ("error_rate", strategy.max_error_rate),
        ("p99_load_seconds", strategy.max_p99_seconds),
    ):
        value = values.get(name)
        verdict: Verdict
        if name in errors:
            verdict, detail = "inconclusive", errors[name]
        elif not _usable(value) or value is None:
            verdict, detail = "inconclusive", "no data"
        elif value > bound:
            verdict, detail = "fail", f"{value:.4g} > {bound:.4g}"
        else:
            verdict, detail = "pass", ""
        # Without enough loads a low error rate proves nothing, but a breach
        # on the loads we do have is still a failure worth acting on.
        if verdict == "pass" and not enough:
            verdict, detail = "inconclusive", "too few loads to judge"
        checks.append(
            CheckResult(
                name=name,
                value=value if _usable(value) else None,
                bound=bound,
                comparison="<=",
                verdict=verdict,
                detail=detail,
            )
        )
    failed = [c for c in checks if c.verdict == "fail"]
    unsure = [c for c in checks if c.verdict == "inconclusive"]
    if failed:
        return "fail", checks, "; ".join(f"{c.name} {c.detail}" for c in failed)
    if unsure:
        return "inconclusive", checks, "; ".join(f"{c.name}: {c.detail}" for c in unsure)
    return "pass", checks, "all checks within bounds"
