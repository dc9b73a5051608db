"""The judge at its edges: decisions exactly at their bounds and levels, odd windows, odd figures.

Where a rule is "established above", "ruled out at alpha" or "more than", these
tests put the evidence exactly on the line and a hair beyond it, so the tests
fail if the judge spends its error budget differently from what skyline/judge.py
documents (Bonferroni over the checks, a quarter of it for the rollout and for
the step window, half of that for each side of a two-variant comparison).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from skyline.confseq import bounds
from skyline.figures import Figures, StepDocument
from skyline.judge import _context, _windows, judge_look, judge_step, latency_edge, quantile, settings_of
from skyline.noninferiority import bound_pvalue, excess_pvalue
from tests.skyline.test_judge import doc, fig, scale
from tests.skyline.test_judge_reports import RATIO, checks, ratio, with_checks

ALPHA = 0.1  # AnalysisSettings' default


def figures(loads: int, errors: int, buckets: dict[str, float]) -> dict[str, Any]:
    return {"loads": loads, "errors": errors, "load_seconds": buckets}


def rolled_back(d: StepDocument, k: int = 0) -> bool:
    return judge_look(d, k).decision == "rollback"


# ----- bounds and levels -----------------------------------------------------------------------


def test_a_guard_is_breached_only_when_the_canary_is_established_strictly_above_it() -> None:
    # a first unit, one check, one look: the rollout and step windows each get a quarter of
    # alpha, and the canary's bound half of that
    bad, n = 12, 1000
    lower = bounds(bad, n, ALPHA / 4 / 2).lower

    def guarded(guard: float) -> StepDocument:
        return doc([fig(n, bad)], [None], analysis={"max_error_rate": guard})

    assert not rolled_back(guarded(lower))  # at the bound: not above it
    assert rolled_back(guarded(math.nextafter(lower, 0)))
    # a zero guard tolerates no failure at all, and a canary without failures passes it
    assert rolled_back(doc([fig(5000, 1)], [None], analysis={"max_error_rate": 0.0}))
    assert not rolled_back(doc([fig(5000, 0)], [None], analysis={"max_error_rate": 0.0}))


def test_harm_over_the_baseline_is_established_only_strictly_above_the_margin() -> None:
    # two checks (failed loads, load time): each gets half of alpha; canary and baseline
    # bounds each get half of a window's quarter
    level = ALPHA / 2 / 4 / 2
    base_upper = bounds(100, 10_000, level).upper
    canary_lower = bounds(35, 1000, level).lower
    margin = canary_lower - base_upper
    assert base_upper + margin == canary_lower  # the threshold lands exactly on the canary's bound

    def margined(absolute: float) -> StepDocument:
        analysis = {"error_margin_relative": 0.0, "error_margin_absolute": absolute}
        return doc([fig(1000, 35)], [fig(10_000, 100)], analysis=analysis)

    below = math.nextafter(canary_lower, 0) - base_upper
    assert base_upper + below < canary_lower
    assert not rolled_back(margined(margin))
    assert rolled_back(margined(below))


def test_the_p99_guard_fails_from_the_first_count_whose_bound_clears_one_percent() -> None:
    def slow(count: int, n: int, alpha: float = ALPHA) -> StepDocument:
        canary = figures(n, 0, {"0.5": float(n - count), "1": float(n), "+Inf": float(n)})
        return doc([canary], [None], analysis={"max_p99_seconds": 0.5, "alpha": alpha})

    first = next(s for s in range(2000) if bounds(s, 2000, ALPHA / 2).lower > 0.01)
    assert not rolled_back(slow(first - 1, 2000))
    assert rolled_back(slow(first, 2000))
    # at this alpha the bound of 22 slow loads in 1,000 is exactly 1 %: not more than 1 %
    alpha = 0.3519560317444311
    assert bounds(22, 1000, alpha / 2).lower == 0.01
    assert not rolled_back(slow(22, 1000, alpha))


def test_a_ratio_check_fails_only_when_established_strictly_above_its_maximum() -> None:
    lower = bounds(120, 1000, ALPHA / 2).lower
    at = judge_step(with_checks({**RATIO, "max": lower}, [ratio(120, 1000)]))
    assert at.decision != "rollback"
    assert checks(at)["api_errors"]["verdict"] != "fail"
    above = judge_step(with_checks({**RATIO, "max": math.nextafter(lower, 0)}, [ratio(120, 1000)]))
    assert above.decision == "rollback"


def test_a_ratio_check_bound_at_one_hundred_percent_needs_data_and_nothing_else() -> None:
    anything = {**RATIO, "max": 1.0}
    all_bad = judge_step(with_checks(anything, [ratio(1000, 1000)]))
    assert all_bad.decision == "promote" and checks(all_bad)["api_errors"]["verdict"] == "pass"
    no_data = judge_step(with_checks(anything, [ratio(0, 0)]))
    assert no_data.decision == "hold"
    assert no_data.reason == "api_errors: 0/0 does not yet rule out more than 100%"


def test_the_harm_bound_never_exceeds_every_load_failing() -> None:
    # a baseline failing 80 % of its loads: + 50 % would be 120 %
    report = judge_look(doc([fig(1000, 800)], [fig(1000, 800)]), 0).checks[0]
    assert (report.name, report.bound) == ("error_rate", 1.0)


# ----- evidence exactly at alpha -------------------------------------------------------------------


def test_evidence_exactly_at_alpha_does_not_rule_harm_out() -> None:
    # a first unit, one check, one window: the guard is ruled out when p < alpha
    p = bound_pvalue(1, 150, 0.05)
    exact = doc([fig(150, 1)], [None], analysis={"alpha": p, "first_unit_needs_confirmation": False})
    verdict = judge_step(exact)
    assert verdict.decision == "hold"
    # the least a hold asks for is one more load
    assert verdict.reason == (
        "error_rate: about 1 more canary loads over the rollout to rule out more than the guard 5% "
        "(0.667% now, limit 5%)"
    )
    beyond = {"alpha": math.nextafter(p, 1), "first_unit_needs_confirmation": False}
    assert judge_step(doc([fig(150, 1)], [None], analysis=beyond)).decision == "promote"


@pytest.mark.parametrize("baseline", [False, True], ids=["first unit", "with a baseline"])
@pytest.mark.parametrize("looks", [2, 3])
def test_getting_worse_is_decided_at_half_of_alpha_over_the_checks(baseline: bool, looks: int) -> None:
    """Without margins "worse" is a late half failing more often than the early half.

    The test is the conditional Poisson test of the two halves (the early half ends at the
    look half-way through: look 0 of two or three), at half of alpha split over the checks.
    """
    early = fig(5000, 50)
    step = [early, fig(10_000, 130)] if looks == 2 else [early, fig(7000, 80), fig(10_000, 130)]
    late = Figures.model_validate(step[-1]).minus(Figures.model_validate(early))
    p = excess_pvalue(late.errors, late.loads, early["errors"], early["loads"], 1.0)
    count = 2 if baseline else 1
    base = [fig(10_000, 130)] * looks if baseline else [None] * looks

    def judged(alpha: float) -> str:
        analysis = {
            "alpha": alpha,
            "error_margin_relative": 0.0,
            "error_margin_absolute": 0.0,
            "first_unit_needs_confirmation": False,
        }
        return judge_look(doc(step, base, analysis=analysis), looks - 1).reason

    assert "got worse" not in judged(2 * count * p)
    assert judged(math.nextafter(2 * count * p, 1)).startswith(
        "error_rate: the canary got worse during the step"
    )


# ----- what the judge says at its limits ---------------------------------------------------------


def test_a_rarely_failing_baseline_is_compared_through_its_absolute_margin() -> None:
    # 0.07 % failed: + 50 % is less than + 0.05 points, so the difference of the two rates is
    # tested against the absolute margin (both samples' noise in one test)
    rare = fig(200_000, 140)
    assert judge_step(doc(fig(20_000, 14), rare)).decision == "promote"
    at_margin = judge_step(doc(fig(20_000, 24), rare))
    assert at_margin.reason == (
        "error_rate: many more canary loads over the rollout to rule out harm beyond the margin "
        "(0.12% now, limit 0.12%)"
    )
    # before the last step only gross harm (+ 1 point) must be ruled out: 0.3 % is far from it
    assert judge_step(doc(fig(2000, 6), rare, last=False, weight=5)).decision == "promote"


def test_a_small_baseline_rate_is_smoothed_by_half_a_failure() -> None:
    verdict = judge_step(doc(fig(2000, 20), fig(200, 2)))
    assert verdict.reason == (
        "error_rate: about 53,250 more canary loads over the rollout to rule out harm beyond the margin "
        "(1% now, limit 1.87%)"
    )


def test_without_margins_the_canary_must_be_shown_no_worse_than_the_baseline() -> None:
    none = {"error_margin_relative": 0.0, "error_margin_absolute": 0.0}
    verdict = judge_step(doc(fig(20_000, 200), fig(20_000, 200), analysis=none))
    assert verdict.reason == (
        "error_rate: many more canary loads over the rollout to rule out harm beyond the margin "
        "(1% now, limit 1%)"
    )


def test_before_the_last_step_load_time_needs_only_gross_harm_ruled_out() -> None:
    # 8 points more loads slower than the baseline's median: beyond the 6-point margin,
    # well within the 20-point gross margin
    slower = fig(1000, 0, median_share=0.42)
    assert judge_step(doc(slower, fig(20_000, 0), last=False, weight=5)).decision == "promote"
    assert judge_step(doc(slower, fig(20_000, 0), last=True, weight=5)).decision == "hold"


def test_a_load_time_limit_never_exceeds_every_load_being_slower() -> None:
    # the baseline's median bucket edge has 85 % of its loads slower: + 20 points is capped at 100 %
    base = figures(1000, 0, {"0.5": 150.0, "1": 1000.0, "+Inf": 1000.0})
    canary = figures(5, 0, {"0.5": 0.0, "1": 5.0, "+Inf": 5.0})
    loose_errors = {"min_requests": 0, "gross_error_absolute": 1.0}
    verdict = judge_step(doc([canary], [base], last=False, analysis=loose_errors))
    assert verdict.reason == (
        "load_time: the canary's loads slower than the baseline's median (100% of 5) are at or above 100% "
        "over the rollout: harm not ruled out, not yet established; watch longer or roll back"
    )


def test_a_canary_without_loads_holds_for_lack_of_them() -> None:
    verdict = judge_step(doc([fig(0)], [fig(1000, 10)], analysis={"min_requests": 0}))
    assert verdict.decision == "hold"
    assert verdict.reason == "error_rate: no canary loads over the rollout to rule out harm beyond the margin"


def test_volume_exactly_at_the_limit_is_plausible() -> None:
    # at 22.5 % the limit is 2 x 22.5 % + 5 points = 50 % of all loads
    at = judge_step(doc(fig(10_000, 10), fig(10_000, 10), weight=22.5, last=False))
    assert "implausible" not in at.reason
    over = judge_step(doc(fig(10_010, 10), fig(9990, 10), weight=22.5, last=False))
    assert "implausible" in over.reason


# ----- windows -------------------------------------------------------------------------------------


def test_the_step_window_catches_harm_the_rollout_dilutes() -> None:
    earlier = [{"weight": 50, "canary": fig(200_000, 200), "baseline": fig(200_000, 200)}]
    verdict = judge_step(doc([fig(2000, 100)], [fig(2000, 2)], earlier=earlier))
    assert verdict.decision == "rollback"
    assert verdict.reason.startswith("error_rate: canary 5% of 2000 loads (step) is established above")


def burst(before: dict[str, Any], loads: int, errors: int) -> dict[str, Any]:
    """`before` plus `loads` more loads, `errors` of them failed, the rest as fast as before."""
    ok = before["loads"] - before["errors"]
    return {
        "loads": before["loads"] + loads,
        "errors": before["errors"] + errors,
        "load_seconds": {k: v + (loads - errors) * v / ok for k, v in before["load_seconds"].items()},
    }


def test_a_pause_in_traffic_does_not_hide_a_burst_before_it() -> None:
    # look 1 adds 300 loads, 10 % failed; look 2 adds nothing: the window since look 1
    # is empty, the one since look 0 holds the burst
    healthy = fig(100_000, 100)
    d = doc([healthy, burst(healthy, 300, 30), burst(healthy, 300, 30)], [fig(200_000, 200)] * 3)
    verdict = judge_look(d, 2)
    assert verdict.decision == "rollback"
    assert verdict.reason.startswith("error_rate: canary 10% of 300 loads (since look 0) is established")


def test_a_look_that_reports_an_error_is_no_evidence_even_with_figures() -> None:
    partial = doc([fig(20_000, 200)], [fig(20_000, 200)])
    partial.looks[0].error = "Prometheus returned partial data"
    verdict = judge_look(partial, 0)
    assert verdict.decision == "hold"
    assert verdict.reason == "metrics unavailable at the end of the bake: Prometheus returned partial data"
    # nor does it start a window: the burst is seen since look 0, the last good look
    healthy = fig(100_000, 100)
    d = doc([healthy, healthy, burst(healthy, 300, 30)], [fig(200_000, 200)] * 3)
    d.looks[1].error = "Prometheus returned partial data"
    assert judge_look(d, 2).reason.startswith("error_rate: canary 10% of 300 loads (since look 0) is")


def test_rollback_windows_are_the_rollout_the_step_and_geometric_suffixes_within_the_budget() -> None:
    """Suffix windows start 1, 2, 4, ... looks back (at most 12), the one since look j with
    1/((j+1)(j+2)) of half the budget: shares that sum to at most 1 however many looks."""

    def windows(earlier_looks: int) -> list[tuple[str, float]]:
        d = doc([fig(100)] * (earlier_looks + 1), [fig(100)] * (earlier_looks + 1))
        ctx = _context(d, earlier_looks, settings_of(d))
        assert ctx is not None
        return [(label, share) for label, _, share in _windows(ctx)]

    assert windows(0) == [("rollout", 0.25), ("step", 0.25)]
    assert windows(1) == [("rollout", 0.25), ("step", 0.25), ("since look 0", 0.25)]
    labels = [label for label, _ in windows(8)]
    assert labels == ["rollout", "step", "since look 7", "since look 6", "since look 4", "since look 0"]
    many = windows(5000)
    starts = [int(label.rsplit(" ", 1)[1]) for label, _ in many[2:]]
    assert starts == [5000 - 2**i for i in range(12)]
    for label, share in many[2:]:
        j = int(label.rsplit(" ", 1)[1])
        assert share == pytest.approx(0.5 / ((j + 1) * (j + 2)))
    assert sum(share for _, share in windows(1)) == pytest.approx(0.75)
    assert all(sum(share for _, share in windows(k)) <= 1 for k in (2, 3, 8, 100))


# ----- getting worse during the step ------------------------------------------------------------------


def test_a_canary_whose_load_time_got_worse_during_the_step_is_held() -> None:
    # half the step at the baseline's load times, then 8 points more loads slower than its median
    early, late = fig(5000, 25), fig(5000, 25, median_share=0.42)
    step = [scale(early, (i + 1) / 5) for i in range(5)]
    step += [
        {
            "loads": early["loads"] + late["loads"] * (i + 1) // 5,
            "errors": early["errors"] + late["errors"] * (i + 1) // 5,
            "load_seconds": {
                k: v + late["load_seconds"][k] * (i + 1) / 5 for k, v in early["load_seconds"].items()
            },
        }
        for i in range(5)
    ]
    verdict = judge_step(doc(step, [scale(fig(20_000, 100), (i + 1) / 10) for i in range(10)]))
    assert verdict.decision == "hold"
    assert verdict.reason == (
        "load_time: the canary got worse during the step (50% of 4975 loads, then 58% of 4975); "
        "watch longer or roll back"
    )


def test_a_failure_right_after_a_long_clean_half_is_news() -> None:
    # 10,000 loads without a failure, then the one load since then failed
    clean = fig(10_000, 0)
    verdict = judge_step(
        doc([clean, burst(clean, 1, 1)], [None, None], analysis={"first_unit_needs_confirmation": False})
    )
    assert verdict.reason == (
        "error_rate: the canary got worse during the step (0% of 10000 loads, then 100% of 1); "
        "watch longer or roll back"
    )


def test_a_single_early_load_is_compared_with_what_came_after_it() -> None:
    # a baseline with 80 % of its loads slower than its median bucket edge (a coarse histogram):
    # one fast canary load, then 20 slow ones; not yet established, plainly worse
    def canary(fast: int, slow: int) -> dict[str, Any]:
        return figures(
            fast + slow, 0, {"0.25": float(fast), "0.5": float(fast + slow), "+Inf": float(fast + slow)}
        )

    base = figures(20_000, 0, {"0.25": 4000.0, "0.5": 20_000.0, "+Inf": 20_000.0})
    d = doc([canary(1, 0), canary(1, 20)], [base, base], analysis={"min_requests": 0})
    assert judge_look(d, 1).reason == (
        "load_time: the canary got worse during the step (0% of 1 loads, then 100% of 20); "
        "watch longer or roll back"
    )


def test_a_step_whose_second_quarter_was_unwatched_is_still_judged() -> None:
    # looks 1 and 2 of 4 unavailable: no look from half-way on to split the step at
    d = doc(fig(20_000, 200), fig(20_000, 200))
    d.looks = d.looks[6:]
    for look in d.looks[1:3]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    assert judge_look(d, 3).decision == "promote"


# ----- looks ----------------------------------------------------------------------------------------


def test_a_look_is_judged_on_the_looks_up_to_it_only() -> None:
    # the bake ends at look 0; a later look (whatever it says) is no part of that decision
    d = doc([fig(20_000, 200)] * 2, [fig(20_000, 200)] * 2)
    d.looks[0].at_seconds, d.looks[1].at_seconds = 600, 660
    d.looks[1].error, d.looks[1].canary = "Prometheus unreachable", None
    alone = d.model_copy(update={"looks": d.looks[:1]})
    assert judge_look(d, 0) == judge_look(alone, 0)
    assert judge_look(d, 0).decision == "promote"


@pytest.mark.parametrize(("looks", "unwatched", "held"), [(9, 4, False), (9, 5, True), (10, 5, False)])
def test_a_step_is_held_when_more_than_half_its_looks_were_unwatched(
    looks: int, unwatched: int, held: bool
) -> None:
    d = doc(fig(20_000, 200), fig(20_000, 200), analysis={"consecutive_error_limit": 9})
    d.looks = d.looks[10 - looks :]
    for look in d.looks[2 : 2 + unwatched]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    reason = judge_look(d, looks - 1).reason
    assert ("the step was not watched" in reason) is held, reason


def test_an_unfinished_bake_reports_its_newest_look() -> None:
    d = doc(fig(20_000, 200), fig(20_000, 200))
    d.looks = d.looks[:5]
    d.looks[-1].error, d.looks[-1].canary = "Prometheus unreachable", None
    verdict = judge_step(d)
    assert verdict.reason == "the bake is not over: metrics unavailable: Prometheus unreachable"


# ----- the baseline's median edge and quantiles -------------------------------------------------------


def test_the_latency_edge_is_the_edge_nearest_the_baselines_median() -> None:
    def f(buckets: dict[str, float]) -> Figures:
        return Figures.model_validate(figures(100, 0, {**buckets, "+Inf": 100.0}))

    # edges in whole seconds: the median is at 1 s, not at a later edge
    seconds = f({"1": 50.0, "2": 80.0, "5": 100.0})
    assert latency_edge(seconds, seconds) == 1.0
    # 75 % slower than 1 s, 25 % slower than 2 s: equally near, the faster edge is kept
    tie = f({"1": 25.0, "2": 75.0, "5": 100.0})
    assert latency_edge(tie, tie) == 1.0


def test_quantiles_never_decrease_with_q() -> None:
    histograms = [
        fig(1000),
        figures(10, 0, {"0.1": 0.0, "0.25": 4.0, "1": 10.0, "+Inf": 10.0}),  # an empty first bucket
        figures(10, 0, {"0.5": 0.0, "1": 0.0, "+Inf": 10.0}),
    ]
    for h in histograms:
        f = Figures.model_validate(h)
        values = [quantile(f, q / 20) for q in range(21)]
        assert all(v is not None for v in values)
        assert values == sorted(values), values  # type: ignore[type-var]
        assert 0 <= values[0] <= f.edges()[0]  # type: ignore[operator]


def test_a_p99_bound_a_rounding_error_above_an_edge_is_judged_at_that_edge() -> None:
    # every load under 1 s, more than 1 % over 0.5 s: a bound of 0.5 s + 1e-12 is still 0.5 s
    d = doc(fig(20_000, 0), fig(20_000, 0), analysis={"max_p99_seconds": 0.5 + 1e-12})
    verdict = judge_step(d)
    assert verdict.decision == "rollback"
    assert verdict.reason.startswith(
        "p99_load_seconds: more than 1% of 2000 canary loads are slower than 0.5s"
    )


def test_a_ratio_check_is_judged_on_bad_over_total_never_on_a_value_its_reading_carries() -> None:
    reading = {"canary": {"bad": 1, "total": 10_000, "value": 0.9}}
    verdict = judge_step(with_checks(RATIO, [reading]))
    assert verdict.decision == "promote", verdict.reason


# ----- custom value checks in the report -------------------------------------------------------------


def test_every_value_check_is_reported_with_its_reading_bound_and_verdict() -> None:
    specs = [
        {**RATIO},  # reported by the ratio test, not among the guards
        {"name": "cpu", "kind": "value", "query": "x", "max": 0.8},
        {"name": "hits", "kind": "value", "query": "x", "min": 10},
        {"name": "lcp", "kind": "samples", "query": "x", "max": 2.5},
        {"name": "inp", "kind": "value", "query": "x", "max": 0.2, "dry_run": True},
    ]
    readings = {
        "cpu": {"canary": {"value": 0.5}, "baseline": {"value": 0.4}},
        "hits": {"canary": {"value": 12}},
        "inp": {"canary": {"value": 0.9}},
        "api_errors": {"canary": {"bad": 1, "total": 1000}},
    }
    analysis = {"checks": specs, "first_unit_needs_confirmation": False}
    raw = doc([fig(500), fig(1000)], [None, None], analysis=analysis).model_dump()
    raw["looks"][0]["checks"] = readings
    look = judge_look(StepDocument.model_validate(raw), 0)
    assert look.decision == "continue"  # a dry run breaching never decides
    fields = ("value", "baseline", "bound", "comparison", "verdict", "dry_run", "detail")
    reported = {c.name: tuple(getattr(c, f) for f in fields) for c in look.checks}
    assert list(reported) == ["api_errors", "cpu", "hits", "lcp", "inp", "p99_load_seconds"]
    assert reported["cpu"] == (0.5, 0.4, 0.8, "<=", "pass", False, "guard")
    assert reported["hits"] == (12, None, 10, ">=", "pass", False, "guard")
    assert reported["lcp"] == (None, None, 2.5, "<=", "inconclusive", False, "guard")
    assert reported["inp"] == (0.9, None, 0.2, "<=", "fail", True, "guard (dry run: never decides)")
    low = judge_look(with_checks(specs[2], [{"canary": {"value": 3}}]), 0)
    assert [(c.name, c.verdict) for c in low.checks] == [("hits", "fail"), ("p99_load_seconds", "pass")]
