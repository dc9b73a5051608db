"""The sequential judge, rule by rule (skyline/judge.py, skyline/confseq.py, skyline/noninferiority.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from skyline.confseq import bounds
from skyline.figures import Figures, StepDocument
from skyline.judge import judge_look, judge_step
from skyline.noninferiority import ratio_pvalue

EDGES = (0.1, 0.25, 0.5, 1.0, 2.5)
# These tests (and test_judge_edges/_reports, which build on `doc`) pin the failed-load and
# median checks rule by rule, with the error budget split between those two; the tail
# checks, on by default, have their own tests (test_judge_tails.py) and are off here
# unless a test's analysis turns them on.
TAILS_OFF: dict[str, Any] = {"tail_quantiles": []}


def fig(loads: int, errors: int = 0, median_share: float = 0.5) -> dict[str, Any]:
    """Figures whose successful loads split around 0.25 s by `median_share` (share at or below it)."""
    ok = loads - errors
    below = round(ok * median_share)
    hist = {
        "0.1": below * 0.4,
        "0.25": below,
        "0.5": below + (ok - below) * 0.8,
        "1": ok,
        "2.5": ok,
        "+Inf": ok,
    }
    return {"loads": loads, "errors": errors, "load_seconds": {k: float(v) for k, v in hist.items()}}


def scale(f: dict[str, Any], k: float) -> dict[str, Any]:
    return {
        "loads": round(f["loads"] * k),
        "errors": round(f["errors"] * k),
        "load_seconds": {b: round(v * k) for b, v in f["load_seconds"].items()},
    }


def doc(
    canary: list[dict[str, Any]] | dict[str, Any],
    baseline: Sequence[dict[str, Any] | None] | dict[str, Any] | None = None,
    *,
    last: bool = True,
    weight: float = 50,
    earlier: list[dict[str, Any]] | None = None,
    reference: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    bake: float = 600,
) -> StepDocument:
    """A step whose looks are cumulative fractions of the final figures (or explicit lists)."""
    base_list: list[dict[str, Any] | None]
    if isinstance(canary, dict):
        n = 10
        final_base = baseline if isinstance(baseline, dict) else None
        canary = [scale(canary, (i + 1) / n) for i in range(n)]
        base_list = [None if final_base is None else scale(final_base, (i + 1) / n) for i in range(n)]
    else:
        base_list = list(baseline) if isinstance(baseline, Sequence) else [None] * len(canary)
    looks = [
        {"at_seconds": bake * (i + 1) / len(canary), "canary": c, "baseline": b}
        for i, (c, b) in enumerate(zip(canary, base_list, strict=True))
    ]
    return StepDocument.model_validate(
        {
            "analysis": {**TAILS_OFF, **(analysis or {})},
            "step": {"index": len(earlier or []), "weight": weight, "bake_seconds": bake, "last": last},
            "earlier": earlier or [],
            "looks": looks,
            "reference": reference,
        }
    )


# ----- the bounds -------------------------------------------------------------------------


def test_bounds_cover_the_estimate_and_shrink_with_evidence() -> None:
    small, large = bounds(10, 1000, 0.05), bounds(100, 10_000, 0.05)
    assert small.lower < 0.01 < small.upper
    assert large.lower < 0.01 < large.upper
    assert large.upper - large.lower < small.upper - small.lower


def test_bounds_are_monotonic_in_failures() -> None:
    lowers = [bounds(x, 300, 0.01).lower for x in range(0, 20)]
    assert lowers == sorted(lowers) and lowers[0] == 0.0


def test_bounds_are_anytime_valid_in_simulation() -> None:
    """Looking after every load of 2,000, a true rate of 1 % escapes the bounds in < alpha of runs."""
    import numpy as np

    rng = np.random.default_rng(7)
    alpha, misses, runs = 0.1, 0, 300
    for _ in range(runs):
        x = np.cumsum(rng.random(2000) < 0.01)
        for n in range(10, 2001, 10):  # 200 looks
            b = bounds(int(x[n - 1]), n, alpha)
            if not b.lower <= 0.01 <= b.upper:
                misses += 1
                break
    assert misses / runs < alpha


def test_ratio_test_is_calibrated_at_the_margin() -> None:
    # canary exactly at 1.5x the base: the non-inferiority test must not call it fine
    assert ratio_pvalue(150, 10_000, 100, 10_000, 1.5) > 0.4
    assert ratio_pvalue(100, 10_000, 100, 10_000, 1.5) < 0.01


# ----- decisions --------------------------------------------------------------------------


def test_identical_canary_with_enough_evidence_is_promoted_at_the_end_only() -> None:
    d = doc(fig(20_000, 200), fig(20_000, 200))
    verdict = judge_step(d)
    assert verdict.decision == "promote" and verdict.decided_at_look == 9
    assert all(judge_look(d, k).decision == "continue" for k in range(9))


def test_overwhelming_failure_with_few_loads_rolls_back_at_once() -> None:
    # 40 of 40 failed: far fewer than min_requests, still decisive
    d = doc([fig(40, 40)], [fig(4000, 4)])
    verdict = judge_step(d)
    assert verdict.decision == "rollback" and verdict.decided_at_look == 0
    assert "error_rate" in verdict.reason


def test_more_failures_never_make_a_verdict_milder() -> None:
    order = {"promote": 0, "hold": 1, "rollback": 2}
    seen = [order[judge_step(doc([fig(300, e)], [fig(30_000, 30)])).decision] for e in range(0, 15)]
    assert seen == sorted(seen)
    assert seen[-1] == 2


def test_no_baseline_traffic_is_never_a_pass_by_default() -> None:
    """Zero, missing and a first unit: no comparison base means the guards judge, and a human confirms."""
    for base in (None, fig(0)):
        verdict = judge_step(doc(fig(5000, 5), base))
        assert verdict.decision == "hold" and verdict.basis == "none"
        assert "first unit" in verdict.reason
    opted_out = judge_step(doc(fig(5000, 5), None, analysis={"first_unit_needs_confirmation": False}))
    assert opted_out.decision == "promote"
    # the guards can still fail a first unit
    assert judge_step(doc(fig(5000, 1000), None)).decision == "rollback"


def test_the_100_percent_step_is_compared_with_the_earlier_steps_baseline() -> None:
    earlier = [{"weight": 50, "canary": fig(20_000, 200), "baseline": fig(20_000, 200)}]
    good = judge_step(doc(fig(40_000, 400), None, weight=100, earlier=earlier))
    assert good.decision == "promote" and good.basis == "earlier steps"
    bad = judge_step(doc(fig(40_000, 1200), None, weight=100, earlier=earlier))
    assert bad.decision == "rollback" and bad.basis == "earlier steps"


def test_the_reference_is_the_base_when_there_is_nothing_else() -> None:
    verdict = judge_step(doc(fig(20_000, 200), None, weight=100, reference=fig(50_000, 500)))
    assert verdict.basis == "reference" and verdict.decision == "promote"


def test_load_time_is_judged_against_the_baseline_not_an_absolute_bound() -> None:
    # the baseline is slow (p99 well above 1 s): an identical canary is fine
    slow_base = fig(20_000, 200, median_share=0.3)
    assert judge_step(doc(fig(20_000, 200, median_share=0.3), slow_base)).decision == "promote"
    # twice as slow but under 1 s: far fewer loads under the baseline's median bucket
    assert judge_step(doc(fig(20_000, 20, median_share=0.2), fig(20_000, 20, median_share=0.5))).decision == (
        "rollback"
    )


def test_thin_evidence_holds_with_what_is_missing() -> None:
    verdict = judge_step(doc(fig(30, 0), fig(3000, 3)))
    assert verdict.decision == "hold" and verdict.decided_at_look is None
    assert "need 50" in verdict.reason
    middling = judge_step(doc(fig(2000, 20), fig(2000, 20)))
    assert middling.decision == "hold"
    assert "more canary loads" in middling.reason


def test_next_weight_needs_only_gross_harm_ruled_out() -> None:
    d = doc(fig(1000, 10), fig(19_000, 190), last=False, weight=5)
    assert judge_step(d).decision == "promote"
    assert judge_step(doc(fig(1000, 10), fig(19_000, 190), last=True, weight=5)).decision == "hold"


def test_late_onset_is_caught_not_diluted() -> None:
    healthy = [scale(fig(10_000, 50), (i + 1) / 10) for i in range(5)]
    turned = [
        {
            "loads": healthy[-1]["loads"] + 1000 * (i + 1),
            "errors": healthy[-1]["errors"] + 40 * (i + 1),
            "load_seconds": {k: v + 480 * (i + 1) for k, v in healthy[-1]["load_seconds"].items()},
        }
        for i in range(5)
    ]
    base = [scale(fig(20_000, 100), (i + 1) / 10) for i in range(10)]
    verdict = judge_step(doc(healthy + turned, base))
    assert verdict.decision == "rollback"
    assert verdict.decided_at_look is not None and verdict.decided_at_look >= 5
    assert "since look" in verdict.reason or "step" in verdict.reason


def test_prometheus_errors_hold_rather_than_pass() -> None:
    good = doc(fig(20_000, 200), fig(20_000, 200))
    broken = good.model_copy(deep=True)
    for look in broken.looks[:9]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    verdict = judge_step(broken)
    assert verdict.decision == "hold" and "unavailable" in verdict.reason
    at_end = good.model_copy(deep=True)
    at_end.looks[-1].error, at_end.looks[-1].canary = "Prometheus unreachable", None
    assert judge_step(at_end).decision == "hold"


def test_nan_figures_are_refused_not_judged() -> None:
    with pytest.raises(ValueError):
        Figures.model_validate({"loads": math.nan, "errors": 0})
    with pytest.raises(ValueError):
        Figures.model_validate({"loads": 10, "errors": 0, "load_seconds": {"0.5": math.nan}})


def test_implausible_canary_volume_holds() -> None:
    # at 5 % the canary has as many loads as the baseline: forged or duplicated beacons
    verdict = judge_step(doc(fig(20_000, 20), fig(20_000, 20), weight=5, last=False))
    assert verdict.decision == "hold" and "implausible" in verdict.reason


def test_custom_ratio_check_gets_the_sequential_test() -> None:
    analysis = {
        "checks": [
            {
                "name": "api_errors",
                "kind": "ratio",
                "query": "x",
                "total_query": "y",
                "max": 0.05,
                "tolerance": 0.5,
            }
        ]
    }
    base = fig(1000)
    raw = doc([base], [base], analysis=analysis).model_dump()
    raw["looks"][0]["checks"] = {
        "api_errors": {"canary": {"bad": 300, "total": 1000}, "baseline": {"bad": 10, "total": 1000}}
    }
    d = StepDocument.model_validate(raw)
    assert judge_step(d).decision == "rollback"


def test_a_relative_ratio_check_without_baseline_figures_never_passes() -> None:
    analysis = {
        "checks": [
            {"name": "api_errors", "kind": "ratio", "query": "x", "total_query": "y", "tolerance": 0.5}
        ],
        "min_requests": 0,
    }
    raw = doc([fig(1000)], [None], analysis=analysis).model_dump()
    raw["looks"][0]["checks"] = {"api_errors": {"canary": {"bad": 0, "total": 1000}}}
    verdict = judge_step(StepDocument.model_validate(raw))
    assert verdict.decision == "hold" and "no baseline figures" in verdict.reason


def test_a_p99_guard_rollback_marks_its_check_failed() -> None:
    slow = fig(5000, 0, median_share=0.0)  # every load slower than 0.25 s
    slow["load_seconds"] = {"0.1": 0.0, "0.25": 0.0, "0.5": 0.0, "1": 0.0, "2.5": 5000.0, "+Inf": 5000.0}
    verdict = judge_step(doc([slow], [slow], analysis={"max_p99_seconds": 1.0}))  # as slow as its baseline
    assert verdict.decision == "rollback" and verdict.reason.startswith("p99_load_seconds")
    assert {c.name: c.verdict for c in verdict.checks}["p99_load_seconds"] == "fail"
