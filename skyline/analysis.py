"""Canary judgement: absolute bounds, relative bounds against the baseline, statistics.

Never promote on missing evidence, never roll back on noise:
- no data, NaN or too few samples is inconclusive, never a pass;
- a failure ratio above its bound fails only when a one-sided binomial test
  says the true ratio exceeds it (otherwise: inconclusive, keep watching);
- against the baseline, counts use Fisher's exact test and samples use
  Mann-Whitney U (as Kayenta does), both one-sided "canary is worse".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from scipy import stats

from skyline.checks import BUILTIN_ARGS, LOADS, MetricCheck, default_checks, render
from skyline.rollout import CheckResult, Verdict


@dataclass
class Observation:
    """What Prometheus returned for one check and one variant."""

    value: float | None = None
    bad: float | None = None
    total: float | None = None
    samples: list[float] = field(default_factory=list)
    error: str | None = None


def usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def template_values(
    apartment: str, building: str, unit: str, version: str, canary: str, baseline: str | None, window: float
) -> dict[str, str]:
    return {
        "apartment": apartment,
        "building": building,
        "unit": unit,
        "version": version,
        "canary_version": canary,
        "baseline_version": baseline or "",
        "window": f"{int(window)}s",
    }


def _ratio(check: MetricCheck, c: Observation, b: Observation | None, alpha: float) -> CheckResult:
    total = round(c.total) if usable(c.total) and c.total is not None else 0
    bad = min(total, round(c.bad)) if usable(c.bad) and c.bad is not None else 0
    need = max(check.min_samples, 1)
    base = CheckResult(name=check.name, value=None, bound=check.max, samples=total, verdict="pass")
    if total < need:
        return base.model_copy(
            update={"verdict": "inconclusive", "detail": f"only {total} events, need {need:g}"}
        )
    ratio = bad / total
    result = base.model_copy(update={"value": ratio})
    if b is not None and usable(b.total) and b.total:
        result = result.model_copy(update={"baseline_samples": float(round(b.total))})
    if check.max is not None and ratio > check.max:
        p = float(stats.binomtest(bad, total, check.max, alternative="greater").pvalue)
        if p < alpha:
            return result.model_copy(
                update={"verdict": "fail", "p_value": p, "detail": f"{ratio:.4g} > {check.max:g} (p={p:.2g})"}
            )
        return result.model_copy(
            update={
                "verdict": "inconclusive",
                "p_value": p,
                "detail": f"{ratio:.4g} > {check.max:g} but not significant with {total} events",
            }
        )
    if check.tolerance is not None and b is not None and usable(b.total) and b.total:
        b_total = round(b.total)
        b_bad = min(b_total, round(b.bad)) if usable(b.bad) and b.bad is not None else 0
        if b_total >= need:
            b_ratio = b_bad / b_total
            p = float(
                stats.fisher_exact(
                    [[bad, total - bad], [b_bad, b_total - b_bad]], alternative="greater"
                ).pvalue
            )
            result = result.model_copy(update={"baseline": b_ratio, "p_value": p})
            if p < alpha and ratio > b_ratio * (1 + check.tolerance):
                return result.model_copy(
                    update={
                        "verdict": "fail",
                        "detail": f"{ratio:.4g} vs baseline {b_ratio:.4g} (Fisher p={p:.2g})",
                    }
                )
    return result


def _value(check: MetricCheck, c: Observation, b: Observation | None) -> CheckResult:
    result = CheckResult(
        name=check.name,
        value=c.value if usable(c.value) else None,
        bound=check.max if check.max is not None else check.min,
        comparison="<=" if check.max is not None else ">=",
        verdict="pass",
    )
    if not usable(c.value) or c.value is None:
        return result.model_copy(update={"verdict": "inconclusive", "detail": "no data"})
    v = c.value
    if check.max is not None and v > check.max:
        return result.model_copy(update={"verdict": "fail", "detail": f"{v:.4g} > {check.max:g}"})
    if check.min is not None and v < check.min:
        return result.model_copy(update={"verdict": "fail", "detail": f"{v:.4g} < {check.min:g}"})
    if check.tolerance is not None and b is not None and usable(b.value) and b.value is not None:
        result = result.model_copy(update={"baseline": b.value})
        if v > b.value * (1 + check.tolerance):
            return result.model_copy(
                update={
                    "verdict": "fail",
                    "detail": f"{v:.4g} > baseline {b.value:.4g} x {1 + check.tolerance:g}",
                }
            )
    return result


def _samples(check: MetricCheck, c: Observation, b: Observation | None, alpha: float) -> CheckResult:
    values = [x for x in c.samples if usable(x)]
    need = max(check.min_samples, 1)
    result = CheckResult(name=check.name, value=None, bound=check.max, samples=len(values), verdict="pass")
    if len(values) < need:
        return result.model_copy(
            update={"verdict": "inconclusive", "detail": f"only {len(values)} samples, need {need:g}"}
        )
    median = statistics.median(values)
    result = result.model_copy(update={"value": median})
    if check.max is not None and median > check.max:
        return result.model_copy(update={"verdict": "fail", "detail": f"median {median:.4g} > {check.max:g}"})
    if check.min is not None and median < check.min:
        return result.model_copy(update={"verdict": "fail", "detail": f"median {median:.4g} < {check.min:g}"})
    base = [x for x in (b.samples if b else []) if usable(x)]
    if check.tolerance is not None and len(base) >= need:
        b_median = statistics.median(base)
        p = float(stats.mannwhitneyu(values, base, alternative="greater").pvalue)
        result = result.model_copy(update={"baseline": b_median, "p_value": p})
        if p < alpha and median > b_median * (1 + check.tolerance):
            return result.model_copy(
                update={
                    "verdict": "fail",
                    "detail": f"median {median:.4g} vs baseline {b_median:.4g} (Mann-Whitney p={p:.2g})",
                }
            )
    return result


def judge_check(
    check: MetricCheck, canary: Observation, baseline: Observation | None, alpha: float
) -> CheckResult:
    if canary.error:
        result = CheckResult(name=check.name, value=None, verdict="error", detail=canary.error)
    elif check.kind == "ratio":
        result = _ratio(check, canary, baseline, alpha)
    elif check.kind == "samples":
        result = _samples(check, canary, baseline, alpha)
    else:
        result = _value(check, canary, baseline)
    return result.model_copy(update={"dry_run": check.dry_run})


def summarize(results: list[CheckResult]) -> tuple[Verdict, str]:
    """Fail beats error beats inconclusive beats pass; dry-run checks never decide."""
    deciding = [r for r in results if not r.dry_run]
    for verdict in ("fail", "error", "inconclusive"):
        hits = [r for r in deciding if r.verdict == verdict]
        if hits:
            return verdict, "; ".join(f"{r.name}: {r.detail}" for r in hits)
    return "pass", "all checks within bounds"


def canary_queries(
    apartment: str, building: str, unit: str, version: str, window_seconds: float
) -> list[tuple[str, str]]:
    """(name, PromQL) of the default checks for one variant; used by tools and tests."""
    values = template_values(apartment, building, unit, version, version, None, window_seconds)
    out = [
        (
            "requests",
            render(
                f'sum(increase({LOADS}{{apartment="{{apartment}}",building="{{building}}",unit="{{unit}}",version="{{version}}"}}[{{window}}]))',
                values,
            ),
        )
    ]
    for check in default_checks(0.01, 1.0, 0):
        out.append((check.name, render(check.query, values)))
    return out


__all__ = ["BUILTIN_ARGS", "Observation", "canary_queries", "judge_check", "summarize", "template_values"]
