"""The A/B test report: which variant is better, by how much, and what evidence is missing.

Pure: computed from a rollout's status (its A/B step's looks), no I/O, so the
workflow can build it at any point (it issues no commands) and the API can
build it for a test still running. B is the new unit, A the baseline it is
tested against.

Method, the judge's own (skyline/judge.py, docs/judgement.md): failed loads,
and successful loads slower than A's median bucket edge (`latency_edge`), are
Bernoulli streams per variant. Each variant's rate gets an anytime-valid
confidence sequence (skyline/confseq.py), so the interval stays valid however
often the test was looked at and whenever it stopped (a human's promote, an
early rollback). The difference B - A is bounded by a union bound over the
two sequences, and the checks share `alpha` by Bonferroni. Lower is better for
both checks: an interval wholly below zero says B is better, wholly above says
A is better, otherwise the difference is not established.
"""

from __future__ import annotations

import math
from typing import Literal

from skyline.ab_model import EXPERIMENT_OVER, ABReport, Better, Comparison, Ending, Variant
from skyline.confseq import bounds, trials_to_reach
from skyline.figures import Figures, Look
from skyline.judge import latency_edge, quantile
from skyline.rollout import RolloutStatus, StepLooks
from skyline.strategies import AnalysisSettings

__all__ = ["ABReport", "Comparison", "Variant", "build_ab_report", "comparison_line", "render_ab_report"]


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _points(x: float) -> str:
    return f"{100 * x:+.2g} points"


def _ab_step(status: RolloutStatus) -> StepLooks | None:
    for step in reversed(status.looks):
        if step.final() is not None:
            return step
    return status.looks[-1] if status.looks else None


def _ending(status: RolloutStatus) -> tuple[Ending, str]:
    step = _ab_step(status)
    completed = step is not None and step.reason == EXPERIMENT_OVER
    done: Ending = "complete" if completed else "stopped"
    if status.state == "rolled_back":
        req = next((h for h in reversed(status.history) if h.action == "rollback"), None)
        if req is not None and req.actor != "skyline":
            return done, f"A kept: rolled back by {req.actor} ({req.reason or 'no reason given'})"
        return "rolled back", f"rolled back early: {status.reason or 'harm established'}"
    if status.state == "succeeded":
        req = next((h for h in reversed(status.history) if h.action in ("promote full", "promote")), None)
        return done, f"B kept: promoted by {req.actor if req is not None else 'skyline'}"
    if status.state == "failed":
        return "stopped", f"failed: {status.reason or 'unknown'}"
    if completed:
        return "complete", "complete: waiting for a human to keep B (promote) or A (roll back)"
    return "running", "running"


def _settings(status: RolloutStatus) -> AnalysisSettings:
    try:
        return AnalysisSettings.model_validate(status.analysis or {})
    except ValueError:
        return AnalysisSettings()


def _compare(
    name: Literal["error_rate", "load_time"],
    measure: str,
    a: tuple[int, int],
    b: tuple[int, int],
    alpha: float,
    margin: float,
) -> Comparison:
    (x_a, n_a), (x_b, n_b) = a, b
    confidence = 1 - alpha
    if n_a == 0 or n_b == 0:
        who = " and ".join(v for v, n in (("A", n_a), ("B", n_b)) if n == 0)
        return Comparison(
            name=name,
            measure=measure,
            a_rate=x_a / n_a if n_a else None,
            a_n=n_a,
            b_rate=x_b / n_b if n_b else None,
            b_n=n_b,
            confidence=confidence,
            verdict="difference not established",
            missing=f"{name}: no loads of {who} to compare",
        )
    ba, bb = bounds(x_a, n_a, alpha / 2), bounds(x_b, n_b, alpha / 2)
    rate_a, rate_b = x_a / n_a, x_b / n_b
    lower, upper = bb.lower - ba.upper, bb.upper - ba.lower
    better: Better | None = "B" if upper < 0 else "A" if lower > 0 else None
    verdict = f"{better} is better" if better else "difference not established"
    missing = None
    if better is None:
        missing = _missing(name, rate_a, n_a, rate_b, n_b, alpha, margin)
    return Comparison(
        name=name,
        measure=measure,
        a_rate=rate_a,
        a_n=n_a,
        b_rate=rate_b,
        b_n=n_b,
        difference=rate_b - rate_a,
        lower=lower,
        upper=upper,
        confidence=confidence,
        better=better,
        verdict=verdict,
        missing=missing,
    )


def _missing(name: str, rate_a: float, n_a: int, rate_b: float, n_b: int, alpha: float, margin: float) -> str:
    """About how many more loads per variant would establish the difference, or rule out the margin."""
    observed = abs(rate_b - rate_a)
    target = max(observed, margin)
    # The interval of B - A is about the sum of the two variants' half-widths.
    need_a = trials_to_reach(rate_a, target / 2, alpha / 2)
    need_b = trials_to_reach(rate_b, target / 2, alpha / 2)
    aim = (
        f"establish the observed difference ({_points(rate_b - rate_a)})"
        if observed >= margin
        else f"tell apart a difference of {100 * margin:.2g} points (the judge's margin)"
    )
    if need_a is None or need_b is None:
        return f"{name}: far more loads than a test can gather to {aim}"
    more_a, more_b = max(0, need_a - n_a), max(0, need_b - n_b)
    if more_a == 0 and more_b == 0:
        return f"{name}: the difference is smaller than the evidence can resolve; more loads would {aim}"
    return f"{name}: about {more_b:,} more loads of B and {more_a:,} of A to {aim}"


def build_ab_report(status: RolloutStatus) -> ABReport:
    """The report of an A/B test from its status (pure; any state, any ending)."""
    ending, outcome = _ending(status)
    settings = _settings(status)
    step = _ab_step(status)
    final: Look | None = step.final() if step is not None else None
    canary = final.canary if final is not None and final.canary is not None else Figures()
    base = final.baseline if final is not None and final.baseline is not None else Figures()
    split = step.weight if step is not None else status.weight
    a = Variant(
        label="A",
        unit=status.baseline_unit,
        loads=base.loads,
        errors=base.errors,
        p50_seconds=quantile(base, 0.5),
        p99_seconds=quantile(base, 0.99),
    )
    b = Variant(
        label="B",
        unit=f"{status.unit_id}@{status.version}",
        loads=canary.loads,
        errors=canary.errors,
        p50_seconds=quantile(canary, 0.5),
        p99_seconds=quantile(canary, 0.99),
    )
    common = {
        "unit_id": status.unit_id,
        "a": a,
        "b": b,
        "split": split,
        "ending": ending,
        "outcome": outcome,
        "looks": len(step.looks) if step is not None else 0,
        "observed_seconds": final.at_seconds if final is not None else 0,
    }
    if final is None:
        why = "no look at the metrics was taken" if not step or not step.looks else "metrics were unavailable"
        return ABReport(
            **common,
            summary=f"no winner: {why}, so there is nothing to compare",
            missing=[f"{why}: both variants need loads reported by browsers"],
        )
    alpha = settings.alpha / 2  # two checks, Bonferroni
    comparisons = [
        _compare(
            "error_rate",
            "failed loads / loads",
            (base.errors, base.loads),
            (canary.errors, canary.loads),
            alpha,
            settings.error_margin_absolute
            if base.loads == 0
            else max(
                base.errors / base.loads * settings.error_margin_relative, settings.error_margin_absolute
            ),
        )
    ]
    edge = latency_edge(base, canary) if base.loads else None
    if edge is not None:
        comparisons.append(
            _compare(
                "load_time",
                f"loads slower than {edge:g}s (A's median bucket)",
                (base.slower_than(edge), base.successes),
                (canary.slower_than(edge), canary.successes),
                alpha,
                settings.latency_margin,
            )
        )
    else:
        comparisons.append(
            Comparison(
                name="load_time",
                measure="loads slower than A's median bucket",
                a_n=base.successes,
                b_n=canary.successes,
                confidence=1 - alpha,
                verdict="difference not established",
                missing="load_time: A needs at least 20 successful loads in histogram buckets B shares "
                "to have a median to compare with",
            )
        )
    winners = {c.better for c in comparisons if c.better is not None}
    winner: Better | None = None
    if len(winners) == 1:
        winner = winners.pop()
        loser = "A" if winner == "B" else "B"
        on = " and ".join(c.name for c in comparisons if c.better == winner)
        undecided = [c.name for c in comparisons if c.better is None]
        summary = f"{winner} is better than {loser} on {on}"
        if undecided:
            summary += f"; {', '.join(undecided)}: difference not established"
    elif winners:
        summary = "no single winner: " + "; ".join(f"{c.name}: {c.verdict}" for c in comparisons)
    else:
        summary = "no winner: difference not established on any check"
    return ABReport(
        **common,
        comparisons=comparisons,
        winner=winner,
        summary=summary,
        missing=[c.missing for c in comparisons if c.missing],
    )


def _rate(rate: float | None, n: int) -> str:
    return "n/a" if rate is None else f"{_pct(rate)} of {n:,}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}s"


def comparison_line(c: Comparison) -> str:
    line = f"- {c.name} ({c.measure}): B {_rate(c.b_rate, c.b_n)} vs A {_rate(c.a_rate, c.a_n)}"
    if c.difference is not None and c.lower is not None and c.upper is not None:
        line += (
            f"; B - A {_points(c.difference)}, {100 * c.confidence:.3g}% interval "
            f"[{_points(c.lower)}, {_points(c.upper)}]"
        )
    return f"{line}: {c.verdict}"


def render_ab_report(report: ABReport) -> str:
    """The report as text (the status' `report`, the CLI, the Temporal UI)."""
    lines = [
        f"A/B test of {report.unit_id}: B={report.b.unit.split('@')[-1] if report.b.unit else '?'} "
        f"at {report.split:g}% against A={report.a.unit or 'none'}; {report.outcome}",
        f"Winner: {report.winner or 'none'} ({report.summary})",
        f"Evidence: {report.looks} looks over {report.observed_seconds:g}s; "
        f"B {report.b.loads:,} loads ({report.b.errors:,} failed), "
        f"A {report.a.loads:,} loads ({report.a.errors:,} failed)",
    ]
    lines.extend(comparison_line(c) for c in report.comparisons)
    if report.a.p99_seconds is not None or report.b.p99_seconds is not None:
        lines.append(
            f"- load time (informational): median B {_seconds(report.b.p50_seconds)} vs "
            f"A {_seconds(report.a.p50_seconds)}, p99 B {_seconds(report.b.p99_seconds)} vs "
            f"A {_seconds(report.a.p99_seconds)}"
        )
    if report.missing:
        lines.append("Missing evidence: " + "; ".join(report.missing))
    if report.ending in ("complete", "running"):
        lines.append("No automatic promotion: promote (full) to keep B, or roll back to keep A.")
    return "\n".join(lines)
