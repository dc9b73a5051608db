"""What the judge tells people: the reason of every decision and the per-check report.

The status, `skyline judge replay` and the pause reason show these words and
numbers to release managers, who act on them ("about 584 more canary loads").
"""

from __future__ import annotations

from typing import Any

import pytest

from skyline.confseq import bounds
from skyline.figures import Figures, StepDocument
from skyline.judge import judge_look, judge_step, quantile
from tests.skyline.test_judge import doc, fig, scale

P99_NOTE = "informational; load time is judged against the baseline by load_time"


def checks(verdict: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict.as_json()["checks"]}


# ----- promotion ---------------------------------------------------------------------------


def test_a_promotion_reports_every_check_against_the_baseline() -> None:
    verdict = judge_step(doc(fig(20_000, 200), fig(20_000, 200)))
    out = verdict.as_json()
    assert out["decision"] == "promote" and out["decided_at_look"] == 9 and out["basis"] == "concurrent"
    assert out["reason"] == "no harm beyond the margin, ruled out against the baseline (concurrent)"
    by_name = checks(verdict)
    assert list(by_name) == ["error_rate", "load_time", "p99_load_seconds"]
    errors = by_name["error_rate"]
    assert errors["value"] == 0.01 and errors["baseline"] == 0.01
    assert errors["bound"] == pytest.approx(0.015)  # baseline + 50 %
    assert errors["samples"] == 20_000 and errors["baseline_samples"] == 20_000
    assert errors["verdict"] == "pass"
    assert errors["lower"] == pytest.approx(0.0074164, rel=1e-4)
    assert errors["upper"] == pytest.approx(0.0131170, rel=1e-4)
    assert errors["detail"] == "canary 1% of 20000 vs baseline 1% (concurrent)"
    latency = by_name["load_time"]
    assert latency["value"] == 0.5 and latency["baseline"] == 0.5
    assert latency["bound"] == pytest.approx(0.56)  # + 6 points
    assert latency["samples"] == 19_800 and latency["baseline_samples"] == 19_800
    assert latency["lower"] < 0.5 < latency["upper"] and latency["verdict"] == "pass"
    assert latency["detail"] == (
        "canary 50% of 19800 slower than 0.25s (the baseline's median bucket) vs baseline 50% (concurrent)"
    )
    p99 = by_name["p99_load_seconds"]
    assert p99 == {
        "name": "p99_load_seconds",
        "value": pytest.approx(0.95),
        "baseline": pytest.approx(0.95),
        "samples": 19_800,
        "verdict": "pass",
        "dry_run": True,
        "detail": P99_NOTE,
    }


def test_a_step_before_the_last_needs_only_gross_harm_ruled_out() -> None:
    verdict = judge_step(doc(fig(1000, 10), fig(19_000, 190), last=False, weight=5))
    assert verdict.reason == "no harm seen and gross harm ruled out against the baseline (concurrent)"
    assert verdict.decided_at_look == 9


def test_a_first_unit_is_held_for_a_human_and_reported_without_a_baseline() -> None:
    held = judge_step(doc(fig(5000, 5), None))
    assert held.decision == "hold" and held.basis == "none"
    assert held.reason == (
        "first unit of this building: no baseline to compare with, judged on absolute guards only; "
        "promote to confirm it"
    )
    errors = checks(held)["error_rate"]
    assert errors["bound"] == 0.05 and errors["verdict"] == "inconclusive"
    assert "baseline" not in errors and "baseline_samples" not in errors
    assert errors["detail"] == "canary 0.1% of 5000"
    assert checks(held)["p99_load_seconds"]["verdict"] == "pass"  # informational, never held
    confirmed = judge_step(doc(fig(5000, 5), None, analysis={"first_unit_needs_confirmation": False}))
    assert confirmed.reason == "no baseline: absolute guards hold"
    assert checks(confirmed)["error_rate"]["verdict"] == "pass"
    # not the last step: no human is asked, the guards decide
    early = judge_step(doc(fig(5000, 5), None, last=False, weight=5))
    assert early.decision == "promote" and early.reason == "no baseline: absolute guards hold"


def test_a_first_unit_guard_is_max_error_rate_when_set() -> None:
    # 3 % failed: under the 5 % fallback, over a 1 % guard
    assert judge_step(doc(fig(5000, 150), None)).decision == "hold"
    guarded = judge_step(doc(fig(5000, 150), None, analysis={"max_error_rate": 0.01}))
    assert guarded.decision == "rollback"
    assert guarded.reason.startswith("error_rate: canary 3% of ")
    assert guarded.reason.endswith(" loads (rollout) is established above the guard 1%")


# ----- rollback ----------------------------------------------------------------------------


def test_a_rollback_names_the_check_the_window_and_the_margin() -> None:
    verdict = judge_step(doc([fig(40, 40)], [fig(4000, 4)]))
    assert verdict.reason == (
        "error_rate: canary 100% of 40 loads (rollout) is established above 0.744%, "
        "the margin over the baseline"
    )
    by_name = checks(verdict)
    assert by_name["error_rate"]["verdict"] == "fail"
    assert by_name["load_time"]["verdict"] == "pass"
    assert by_name["load_time"]["detail"].startswith("no canary loads slower than 0.25s")
    assert by_name["load_time"]["value"] is None and by_name["load_time"]["samples"] == 0
    assert by_name["p99_load_seconds"]["verdict"] == "inconclusive"  # no successful canary load


def test_a_slower_canary_is_rolled_back_on_load_time() -> None:
    verdict = judge_step(doc(fig(20_000, 20, median_share=0.2), fig(20_000, 20, median_share=0.5)))
    assert verdict.decision == "rollback" and verdict.decided_at_look == 0
    assert verdict.reason == (
        "load_time: canary 80% of 1998 loads (rollout) is established above 60.8%, "
        "the margin over the baseline"
    )
    assert checks(verdict)["load_time"]["verdict"] == "fail"
    assert checks(verdict)["error_rate"]["verdict"] == "pass"


def test_a_guard_fails_a_canary_even_within_the_margin_of_its_baseline() -> None:
    # baseline 10 % failed, canary 12 %: within the relative margin, above a 5 % guard
    verdict = judge_step(doc(fig(20_000, 2400), fig(20_000, 2000), analysis={"max_error_rate": 0.05}))
    assert verdict.decision == "rollback"
    assert verdict.reason.endswith("is established above the guard 5%")
    assert judge_step(doc(fig(20_000, 2400), fig(20_000, 2000))).decision != "rollback"


def test_the_p99_guard() -> None:
    over = judge_step(doc(fig(20_000, 0), fig(20_000, 0), analysis={"max_p99_seconds": 0.5}))
    assert over.decision == "rollback" and over.decided_at_look == 0
    assert (
        over.reason == "p99_load_seconds: more than 1% of 2000 canary loads are slower than 0.5s (guard 0.5s)"
    )
    assert checks(over)["p99_load_seconds"]["bound"] == 0.5
    # the guard is the bucket edge at or above the bound: 0.3 s is judged at 0.5 s
    assert judge_step(doc(fig(20_000, 0), fig(20_000, 0), analysis={"max_p99_seconds": 0.3})).reason == (
        "p99_load_seconds: more than 1% of 2000 canary loads are slower than 0.5s (guard 0.3s)"
    )
    # every load under 1 s: a 1 s guard holds, and so does a bound past the last bucket
    assert judge_step(doc(fig(20_000, 0), fig(20_000, 0), analysis={"max_p99_seconds": 1.0})).decision == (
        "promote"
    )
    assert judge_step(doc(fig(20_000, 0), fig(20_000, 0), analysis={"max_p99_seconds": 9.0})).decision == (
        "promote"
    )


def test_late_onset_says_the_canary_got_worse_during_the_step() -> None:
    # 0.5 % failed for half the step, then 1.5 %: not yet established, but clearly worse
    healthy = [scale(fig(10_000, 50), (i + 1) / 10) for i in range(5)]
    turned = [
        {
            "loads": healthy[-1]["loads"] + 1000 * (i + 1),
            "errors": healthy[-1]["errors"] + 15 * (i + 1),
            "load_seconds": {k: v + 985 * (i + 1) for k, v in healthy[-1]["load_seconds"].items()},
        }
        for i in range(5)
    ]
    base = [scale(fig(20_000, 100), (i + 1) / 10) for i in range(10)]
    verdict = judge_step(doc(healthy + turned, base))
    assert verdict.decision == "hold"
    assert verdict.reason == (
        "error_rate: the canary got worse during the step (0.5% of 5000 loads, then 1.5% of 5000); "
        "watch longer or roll back"
    )


# ----- holds -------------------------------------------------------------------------------


def test_holds_say_what_is_missing() -> None:
    thin = judge_step(doc(fig(30, 0), fig(3000, 3)))
    assert thin.reason == "only 30 canary loads in this step, need 50 (send traffic, or set min_requests)"
    assert {name: c["verdict"] for name, c in checks(thin).items()} == {
        "error_rate": "inconclusive",
        "load_time": "inconclusive",
        "p99_load_seconds": "pass",
    }
    middling = judge_step(doc(fig(2000, 20), fig(2000, 20)))
    assert middling.reason == (
        "error_rate: about 584 more canary loads over the rollout to rule out harm beyond the margin "
        "(1% now, limit 1.54%)"
    )
    worse = judge_step(doc(fig(2000, 40), fig(2000, 20)))
    assert worse.reason == (
        "error_rate: the canary's failed loads (2% of 2000) are at or above 1.54% over the rollout: "
        "harm not ruled out, not yet established; watch longer or roll back"
    )


def test_implausible_volume_is_named() -> None:
    verdict = judge_step(doc(fig(20_000, 20), fig(20_000, 20), weight=5, last=False))
    assert verdict.reason == (
        "canary volume is implausible: 50% of loads at a 5% traffic share "
        "(forged or duplicated beacons?); not evidence either way"
    )
    # at 25 % a share of 50 % is within 2 x weight + 5 points (55 %)
    quarter = judge_step(doc(fig(20_000, 20), fig(20_000, 20), weight=25, last=False))
    assert "implausible" not in quarter.reason
    # below 100 loads in all the share says nothing
    few = judge_step(doc(fig(60, 0), fig(30, 0), weight=5, last=False, analysis={"min_requests": 1}))
    assert "implausible" not in few.reason


def test_unavailable_metrics() -> None:
    good = doc(fig(20_000, 200), fig(20_000, 200))
    broken = good.model_copy(deep=True)
    for look in broken.looks[:6]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    assert judge_look(broken, 0).decision == "continue"
    assert judge_look(broken, 0).reason == "metrics unavailable: Prometheus unreachable"
    assert judge_look(broken, 3).decision == "continue"  # 4 in a row: the limit
    assert judge_look(broken, 4).decision == "hold"
    assert judge_look(broken, 4).reason == "metrics unavailable at 5 looks in a row: Prometheus unreachable"
    assert judge_look(broken, 4).basis == "none"
    # later looks work again, but most of the step was not watched
    verdict = judge_step(broken)
    assert verdict.decision == "hold"
    assert verdict.reason == "metrics unavailable at 5 looks in a row: Prometheus unreachable"
    limit = broken.model_copy(deep=True)
    limit.analysis = {"consecutive_error_limit": 9}
    assert judge_step(limit).reason == "metrics were unavailable at 6 of 10 looks; the step was not watched"
    # without an error message, a look with no canary figures says so
    empty = good.model_copy(deep=True)
    empty.looks[-1].canary = None
    assert judge_look(empty, 9).reason == "metrics unavailable at the end of the bake: no canary figures"


def test_a_step_with_no_looks_or_an_unfinished_bake_is_held() -> None:
    empty = doc(fig(20_000, 200), fig(20_000, 200)).model_copy(update={"looks": []})
    nothing = judge_step(empty)
    assert (nothing.decision, nothing.decided_at_look, nothing.reason, nothing.basis) == (
        "hold",
        None,
        "no looks: nothing to judge",
        "none",
    )
    unfinished = doc(fig(20_000, 200), fig(20_000, 200))
    unfinished.looks = unfinished.looks[:5]
    verdict = judge_step(unfinished)
    assert verdict.decision == "hold" and verdict.decided_at_look is None
    assert verdict.reason == "the bake is not over: no harm established; baking"
    assert verdict.basis == "concurrent"
    assert [c.name for c in verdict.checks][:2] == ["error_rate", "load_time"]


# ----- custom checks -----------------------------------------------------------------------


def with_checks(check: dict[str, Any], readings: list[dict[str, Any] | None], **step: Any) -> StepDocument:
    n = len(readings)
    analysis = {"checks": [check], "first_unit_needs_confirmation": False}
    base = doc([scale(fig(1000), (i + 1) / n) for i in range(n)], [None] * n, analysis=analysis, **step)
    raw = base.model_dump()
    for look, reading in zip(raw["looks"], readings, strict=True):
        look["checks"] = {check["name"]: reading} if reading is not None else {}
    return StepDocument.model_validate(raw)


VALUE = {"name": "cpu", "kind": "value", "query": "x", "max": 0.8}


def value(v: float) -> dict[str, Any]:
    return {"canary": {"value": v}}


def test_a_value_check_fails_after_more_than_failure_limit_breaches_in_a_row() -> None:
    once = with_checks({**VALUE}, [value(0.5), value(0.9), value(0.5)])
    assert judge_look(once, 1).decision == "rollback"
    assert judge_look(once, 1).reason == "cpu: 0.9 > 0.8 at 1 looks in a row"
    tolerant = {**VALUE}
    two = with_checks(tolerant, [value(0.9), value(0.9), value(0.5), value(0.9), value(0.95)])
    two.analysis = {"checks": [tolerant], "failure_limit": 1, "first_unit_needs_confirmation": False}
    assert judge_look(two, 0).decision == "continue"
    assert judge_look(two, 1).reason == "cpu: 0.9 > 0.8 at 2 looks in a row"
    assert judge_look(two, 3).decision == "continue"  # the streak was broken at look 2
    assert judge_look(two, 4).reason == "cpu: 0.95 > 0.8 at 2 looks in a row"


def test_value_checks_with_a_minimum_missing_readings_and_dry_runs() -> None:
    low = {"name": "hits", "kind": "value", "query": "x", "min": 10}
    below = with_checks(low, [value(3)])
    assert judge_look(below, 0).reason == "hits: 3 < 10 at 1 looks in a row"
    assert judge_look(with_checks(low, [value(12)]), 0).decision != "rollback"
    assert judge_look(with_checks(low, [value(float("nan"))]), 0).decision != "rollback"
    assert judge_look(with_checks(low, [None]), 0).decision != "rollback"
    dry = with_checks({**VALUE, "dry_run": True}, [value(5.0)])
    assert judge_look(dry, 0).decision != "rollback"


RATIO = {"name": "api_errors", "kind": "ratio", "query": "x", "total_query": "y", "max": 0.05}


def ratio(bad: float, total: float, base: tuple[float, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"canary": {"bad": bad, "total": total}}
    if base is not None:
        out["baseline"] = {"bad": base[0], "total": base[1]}
    return out


def test_a_ratio_check_against_its_maximum() -> None:
    failing = judge_step(with_checks(RATIO, [ratio(300, 1000)]))
    assert failing.decision == "rollback"
    assert failing.reason == "api_errors: 30% of 1000 established above 5%"
    report = checks(failing)["api_errors"]
    assert report["verdict"] == "fail" and report["value"] == 0.3 and report["bound"] == 0.05
    assert report["samples"] == 1000 and report["lower"] < 0.3 < report["upper"]
    fine = judge_step(with_checks(RATIO, [ratio(1, 10_000)]))
    assert fine.decision == "promote" and checks(fine)["api_errors"]["verdict"] == "pass"
    unsure = judge_step(with_checks(RATIO, [ratio(4, 100)]))
    assert unsure.decision == "hold"
    assert unsure.reason == "api_errors: 4/100 does not yet rule out more than 5%"
    assert checks(unsure)["api_errors"]["verdict"] == "inconclusive"


def test_a_ratio_check_against_its_baseline() -> None:
    check = {**RATIO, "max": None, "tolerance": 0.5}
    worse = judge_step(with_checks(check, [ratio(300, 1000, (10, 1000))]))
    assert worse.decision == "rollback"
    assert worse.reason.startswith("api_errors: 30% of 1000 established above")
    better = judge_step(with_checks(check, [ratio(20, 100_000, (100, 100_000))]))
    assert better.decision == "promote", better.reason
    same = judge_step(with_checks(check, [ratio(100, 100_000, (100, 100_000))]))
    assert same.decision == "hold"  # half the margin is not yet ruled out
    assert same.reason == "api_errors: 100/100000 does not yet rule out more than 0.0951%"
    # the tighter of max and the baseline's margin applies
    both = {**RATIO, "tolerance": 10.0}
    assert judge_step(with_checks(both, [ratio(100, 1000, (90, 1000))])).decision == "rollback"


def test_a_ratio_check_without_data_holds() -> None:
    missing = judge_step(with_checks(RATIO, [None]))
    assert missing.decision == "hold" and missing.reason == "api_errors: no data"
    empty = judge_step(with_checks(RATIO, [ratio(0, 0)]))
    assert empty.reason == "api_errors: 0/0 does not yet rule out more than 5%"
    assert checks(empty)["api_errors"]["value"] is None
    more_bad_than_total = judge_step(with_checks(RATIO, [ratio(2000, 1000)]))
    assert more_bad_than_total.reason == "api_errors: 100% of 1000 established above 5%"


# ----- quantile ----------------------------------------------------------------------------


def test_quantile_interpolates_within_buckets_like_prometheus() -> None:
    f = Figures.model_validate(fig(1000))  # 200 <= 0.1 s, 500 <= 0.25 s, 900 <= 0.5 s, all <= 1 s
    assert quantile(f, 0.5) == pytest.approx(0.25)
    assert quantile(f, 0.1) == pytest.approx(0.05)  # half of the first bucket, from 0
    assert quantile(f, 0.35) == pytest.approx(0.175)  # half way through (0.1, 0.25]
    assert quantile(f, 0.99) == pytest.approx(0.95)
    assert quantile(Figures(), 0.5) is None
    assert quantile(Figures.model_validate({"loads": 10, "errors": 10}), 0.5) is None
    # every load slower than the last finite edge: the last edge
    slow = Figures.model_validate({"loads": 10, "errors": 0, "load_seconds": {"0.5": 0, "1": 0, "+Inf": 10}})
    assert quantile(slow, 0.5) == 1.0
    # an empty bucket before the rank is reached
    step = Figures.model_validate({"loads": 10, "errors": 0, "load_seconds": {"1": 10, "2": 10, "+Inf": 10}})
    assert quantile(step, 1.0) == 1.0


# ----- the comparison base -----------------------------------------------------------------


def test_the_base_is_any_concurrent_baseline_traffic_then_earlier_steps_then_the_reference() -> None:
    one_load = judge_look(doc([fig(5000, 5)], [fig(1, 0)]), 0)
    assert one_load.basis == "concurrent"
    empty_reference = judge_look(doc([fig(5000, 5)], [None], reference=fig(0)), 0)
    assert empty_reference.basis == "none"
    one_reference = judge_look(doc([fig(5000, 5)], [None], reference=fig(1, 0)), 0)
    assert one_reference.basis == "reference"
    earlier = [{"weight": 50, "canary": fig(1000, 10), "baseline": fig(1, 0)}]
    pooled = judge_look(doc([fig(5000, 50)], [None], weight=100, earlier=earlier, reference=fig(3000, 30)), 0)
    assert pooled.basis == "earlier steps"
    # at 100 % the earlier steps' baseline is pooled with the reference
    errors = next(c for c in pooled.checks if c.name == "error_rate")
    assert errors.baseline_samples == 3001 and errors.baseline == pytest.approx(30 / 3001)


# ----- implausible volume ------------------------------------------------------------------


def test_implausible_volume_starts_above_twice_the_weight_plus_five_points() -> None:
    def share(canary: int, baseline: int, weight: float) -> str:
        verdict = judge_step(doc(fig(canary, 0), fig(baseline, 0), weight=weight, last=False))
        return verdict.reason

    # at 5 %: the limit is 15 % of all loads
    assert "implausible" in share(1600, 8400, 5)  # 16 %
    assert "implausible" not in share(1400, 8600, 5)  # 14 %
    # at 100 % there is no baseline traffic to compare volumes with
    assert "implausible" not in share(20_000, 1, 100)
    # exactly 100 loads in all is enough to judge volume
    few = judge_step(doc([fig(90, 0)], [fig(10, 0)], weight=5, last=False, analysis={"min_requests": 1}))
    assert "implausible" in few.reason


def test_a_baseline_slower_than_every_bucket_has_no_latency_comparison() -> None:
    # every baseline load in the +Inf bucket: no edge splits it, so load time is not judged
    slow = {"loads": 1000, "errors": 0, "load_seconds": {"0.5": 0.0, "1": 0.0, "+Inf": 1000.0}}
    verdict = judge_step(doc(fig(20_000, 200), scale(slow, 20)))
    assert list(checks(verdict)) == ["error_rate", "p99_load_seconds"]
    # fewer than 20 successful baseline loads: no median to compare with either
    thin = judge_look(doc([fig(5000, 5)], [fig(19, 0)]), 0)
    assert [c.name for c in thin.checks] == ["error_rate", "p99_load_seconds"]
    enough = judge_look(doc([fig(5000, 5)], [fig(20, 0)]), 0)
    assert [c.name for c in enough.checks] == ["error_rate", "load_time", "p99_load_seconds"]


def test_a_canary_that_breaks_in_the_last_looks_is_caught_in_the_window_since_then() -> None:
    # 0.1 % failed for eight looks of a large step, then 10 % of the newest 300 loads:
    # diluted over the step, plain in the window since look 7
    base = [scale(fig(200_000, 200), (i + 1) / 10) for i in range(10)]
    healthy = [scale(fig(100_000, 100), (i + 1) / 10) for i in range(8)]
    last = healthy[-1]
    turned = [
        {
            "loads": last["loads"] + 300 * (i + 1),
            "errors": last["errors"] + 30 * (i + 1),
            "load_seconds": {
                k: v + 270 * (i + 1) * (0.5 if k in ("0.1", "0.25") else 1)
                for k, v in last["load_seconds"].items()
            },
        }
        for i in range(2)
    ]
    verdict = judge_step(doc(healthy + turned, base))
    assert (verdict.decision, verdict.decided_at_look) == ("rollback", 8)
    assert verdict.reason == (
        "error_rate: canary 10% of 300 loads (since look 7) is established above 0.22%, "
        "the margin over the baseline"
    )


def test_a_first_unit_that_gets_worse_during_the_step_is_held_even_under_its_guard() -> None:
    # no baseline: 0.5 % failed, then 0.8 % (both far under the 5 % guard): any real rise is news
    healthy = [scale(fig(50_000, 250), (i + 1) / 5) for i in range(5)]
    last = healthy[-1]
    ok = last["loads"] - last["errors"]
    turned = [
        {
            "loads": last["loads"] + 10_000 * (i + 1),
            "errors": last["errors"] + 80 * (i + 1),
            "load_seconds": {k: v + 9920 * (i + 1) * v / ok for k, v in last["load_seconds"].items()},
        }
        for i in range(5)
    ]
    verdict = judge_step(doc(healthy + turned, None, analysis={"first_unit_needs_confirmation": False}))
    assert verdict.decision == "hold"
    assert verdict.reason == (
        "error_rate: the canary got worse during the step (0.5% of 50000 loads, then 0.8% of 50000); "
        "watch longer or roll back"
    )


# ----- what a hold says is missing -----------------------------------------------------------


def test_a_hold_names_the_window_the_harm_and_the_subject() -> None:
    early = judge_step(doc(fig(100, 2), fig(19_000, 190), last=False, weight=5))
    assert early.reason == (
        "error_rate: about 233 more canary loads over the rollout to rule out gross harm "
        "(2% now, limit 4.01%)"
    )
    earlier = [{"weight": 50, "canary": fig(40_000, 400), "baseline": fig(40_000, 400)}]
    last_step = judge_step(doc(fig(100, 2), None, earlier=earlier, weight=100))
    assert last_step.reason == (
        "error_rate: about 228 more canary loads in this step to rule out gross harm (2% now, limit 4%)"
    )
    first = judge_step(doc(fig(100, 3), None, analysis={"first_unit_needs_confirmation": False}))
    assert first.reason == (
        "error_rate: about 289 more canary loads over the rollout to rule out more than the guard 5% "
        "(3% now, limit 5%)"
    )
    wide = {"error_margin_absolute": 0.05}
    slower = judge_step(doc(fig(3000, 30, median_share=0.42), fig(3000, 30), analysis=wide))
    assert slower.reason == (
        "load_time: the canary's loads slower than the baseline's median (58% of 2970) are at or above 56% "
        "over the rollout: harm not ruled out, not yet established; watch longer or roll back"
    )
    close = judge_step(doc(fig(3000, 30, median_share=0.44), fig(3000, 30), analysis=wide))
    assert close.reason == (
        "load_time: many more canary loads over the rollout to rule out harm beyond the margin "
        "(56% now, limit 56%)"
    )
    held = judge_look(doc(fig(30, 0), fig(3000, 3)), 9)
    assert held.missing == held.reason


def test_exactly_min_requests_is_enough_loads() -> None:
    verdict = judge_step(doc(fig(50, 0), fig(5000, 5)))
    assert not verdict.reason.startswith("only 50 canary loads")


def test_unavailable_metrics_count_only_looks_in_a_row() -> None:
    d = doc(fig(20_000, 200), fig(20_000, 200))
    for look in d.looks[1:6]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    assert judge_look(d, 4).decision == "continue"  # 4 in a row after a good look
    assert judge_look(d, 5).reason == "metrics unavailable at 5 looks in a row: Prometheus unreachable"
    quiet = judge_look(d, 1)
    assert (quiet.decision, quiet.basis) == ("continue", "none")
    end = doc(fig(20_000, 200), fig(20_000, 200))
    end.looks[-1].error, end.looks[-1].canary = "timeout", None
    at_end = judge_look(end, 9)
    assert (at_end.decision, at_end.basis) == ("hold", "none")
    assert at_end.reason == "metrics unavailable at the end of the bake: timeout"


@pytest.mark.parametrize(("unwatched", "held"), [(4, False), (5, False), (6, True)])
def test_a_step_mostly_unwatched_is_held(unwatched: int, held: bool) -> None:
    d = doc(fig(20_000, 200), fig(20_000, 200), analysis={"consecutive_error_limit": 9})
    for look in d.looks[3 : 3 + unwatched]:
        look.error, look.canary, look.baseline = "Prometheus unreachable", None, None
    reason = judge_look(d, 9).reason
    assert ("the step was not watched" in reason) is held, reason


def test_custom_checks_replace_the_built_in_comparisons() -> None:
    # 50 % failed loads, but the rollout is judged on its custom checks only
    check = {**RATIO, "max": 0.5}
    raw = with_checks(check, [ratio(1, 10_000)]).model_dump()
    raw["looks"][0]["canary"] = fig(1000, 500)
    verdict = judge_step(StepDocument.model_validate(raw))
    assert verdict.decision == "promote" and [c.name for c in verdict.checks] == [
        "api_errors",
        "p99_load_seconds",
    ]


def test_value_checks_do_not_enter_the_ratio_test_and_dry_runs_never_decide() -> None:
    fine = judge_step(with_checks({**VALUE}, [value(0.5)]))
    assert fine.decision == "promote", fine.reason
    dry_ratio = judge_step(with_checks({**RATIO, "dry_run": True}, [ratio(900, 1000)]))
    assert dry_ratio.decision == "promote", dry_ratio.reason


def test_a_value_exactly_at_its_bound_is_no_breach() -> None:
    assert judge_look(with_checks({**VALUE}, [value(0.8)]), 0).decision != "rollback"
    at_min = {"name": "hits", "kind": "value", "query": "x", "min": 10}
    assert judge_look(with_checks(at_min, [value(10)]), 0).decision != "rollback"


def test_several_open_ratio_checks_are_all_named() -> None:
    second = {**RATIO, "name": "api_timeouts"}
    d = with_checks(RATIO, [None])
    d.analysis = {"checks": [RATIO, second], "first_unit_needs_confirmation": False}
    assert judge_step(d).reason == "api_errors: no data; api_timeouts: no data"


def test_ratio_readings_without_bad_count_as_none_bad() -> None:
    verdict = judge_step(with_checks(RATIO, [{"canary": {"total": 10_000}}]))
    assert verdict.decision == "promote" and checks(verdict)["api_errors"]["value"] == 0.0
    base_check = {**RATIO, "max": None, "tolerance": 0.5}
    no_bad_base = with_checks(base_check, [{"canary": {"total": 10_000}, "baseline": {"total": 10_000}}])
    report = checks(judge_step(no_bad_base))["api_errors"]
    assert report["bound"] == pytest.approx(bounds(0, 10_000, 0.05).upper * 1.5)


def test_a_ratio_check_bound_is_the_baselines_upper_bound_plus_tolerance() -> None:
    check = {**RATIO, "max": None, "tolerance": 0.5}
    report = checks(judge_step(with_checks(check, [ratio(20, 10_000, (100, 10_000))])))["api_errors"]
    assert report["bound"] == pytest.approx(bounds(100, 10_000, 0.05).upper * 1.5)
    # a tolerance without baseline figures falls back to max
    both = {**RATIO, "tolerance": 0.5}
    alone = checks(judge_step(with_checks(both, [ratio(20, 10_000)])))["api_errors"]
    assert alone["bound"] == 0.05


def test_reports_without_canary_loads_span_everything() -> None:
    empty = checks(judge_step(with_checks(RATIO, [ratio(0, 0)])))["api_errors"]
    assert (empty["lower"], empty["upper"]) == (0, 1)
    rolled = checks(judge_step(doc([fig(40, 40)], [fig(4000, 4)])))["load_time"]
    assert (rolled["lower"], rolled["upper"]) == (0.0, 1.0)


def test_volume_needs_a_baseline_with_traffic() -> None:
    # a baseline figure with no loads is no baseline: the volume test does not apply
    idle = judge_step(doc(fig(5000, 5), fig(0), weight=5, last=False))
    assert "implausible" not in idle.reason
    # a baseline with a single load already shows a canary flooding its share
    flood = judge_step(doc([fig(200, 0)], [fig(1, 0)], weight=5, last=False))
    assert "implausible" in flood.reason


def test_quantile_edge_cases() -> None:
    one = Figures.model_validate({"loads": 1, "errors": 0, "load_seconds": {"0.5": 1, "1": 1, "+Inf": 1}})
    assert quantile(one, 0.5) == pytest.approx(0.25)
    ones = Figures.model_validate({"loads": 2, "errors": 0, "load_seconds": {"1": 1, "2": 2, "+Inf": 2}})
    assert quantile(ones, 0.75) == pytest.approx(1.5)
    tail = Figures.model_validate(
        {"loads": 10, "errors": 0, "load_seconds": {"0.5": 1, "1": 2, "2": 3, "+Inf": 10}}
    )
    assert quantile(tail, 0.9) == 2.0  # beyond the last finite edge: that edge
