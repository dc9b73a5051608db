"""Tail checks (issue 27): the share of loads beyond the baseline's upper quantile edges, judged relatively.

A regression that leaves the median alone (a share of loads many times slower)
is harm in its own right; the median check alone promotes it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from skyline.confseq import bounds
from skyline.figures import Figures, StepDocument
from skyline.judge import (
    _base_p99_under,
    _context,
    _tail_edges,
    judge_look,
    judge_step,
    settings_of,
    tail_margin,
)
from tests.skyline.test_judge import doc

EDGES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULTS: dict[str, Any] = {"tail_quantiles": [0.9, 0.99]}  # the defaults, over the test helper's TAILS_OFF


def lognormal(
    loads: int, median: float, sigma: float, tail: float = 0.0, factor: float = 1.0
) -> dict[str, Any]:
    """Expected figures of log-normal load times; `tail` of the loads `factor` times slower. No failures."""

    def below(edge: float, scale: float) -> float:
        return 0.5 * (1 + math.erf(math.log(edge / (median * scale)) / (sigma * math.sqrt(2))))

    hist = {
        f"{e:g}": float(round(loads * ((1 - tail) * below(e, 1.0) + tail * below(e, factor)))) for e in EDGES
    }
    hist["+Inf"] = float(loads)
    return {"loads": loads, "errors": 0, "load_seconds": hist}


def step(
    canary: dict[str, Any], base: dict[str, Any], *, last: bool = True, tails: bool = True
) -> StepDocument:
    analysis = DEFAULTS if tails else BEFORE
    return doc(canary, base, last=last, analysis=analysis)


# The judge before issue 27: no tail checks, and no p99 guard unless one is set.
BEFORE: dict[str, Any] = {"tail_quantiles": [], "max_p99_seconds": 1000.0}
BASE = lognormal(40_000, 0.15, 0.5)


def test_a_tail_regression_with_the_median_unchanged_is_rolled_back_not_promoted() -> None:
    # 5 % of loads 10x slower (1.5 s), as in issue 27: the median check alone promoted it
    canary = lognormal(20_000, 0.15, 0.5, tail=0.05, factor=10)
    assert judge_step(step(canary, BASE, tails=False)).decision == "promote"
    verdict = judge_step(step(canary, BASE))
    assert verdict.decision == "rollback"
    assert verdict.reason.startswith("load_tail_p"), verdict.reason
    assert verdict.decided_at_look is not None and verdict.decided_at_look < 9


def test_tail_regressions_are_not_promoted_before_the_last_step_either() -> None:
    for share, factor in ((0.05, 3.0), (0.2, 3.0), (0.05, 30.0), (0.1, 10.0)):
        canary = lognormal(2_000, 0.15, 0.5, tail=share, factor=factor)
        assert judge_step(step(canary, BASE, last=False, tails=False)).decision == "promote"
        assert judge_step(step(canary, BASE, last=False)).decision != "promote", (share, factor)


def test_a_good_canary_passes_the_tail_checks() -> None:
    same = lognormal(20_000, 0.15, 0.5)
    verdict = judge_step(step(same, BASE))
    assert verdict.decision == "promote", verdict.reason
    names = {c.name for c in verdict.checks}
    assert {"load_tail_p90", "load_tail_p99"} <= names


def test_tail_margins_are_relative_a_doubled_tail_is_harm_a_tenth_more_is_not() -> None:
    # share beyond the 0.25 s edge: 5 % for the baseline
    def beyond(share: float, loads: int) -> dict[str, Any]:
        ok = float(loads)
        hist = {"0.1": ok * 0.5, "0.25": ok * (1 - share), "0.5": ok, "1": ok, "+Inf": ok}
        return {"loads": loads, "errors": 0, "load_seconds": hist}

    base = beyond(0.05, 200_000)
    doubled = judge_step(step(beyond(0.10, 100_000), base))
    assert doubled.decision == "rollback" and doubled.reason.startswith("load_tail_p90"), doubled.reason
    # + 0.5 points (a tenth more) is within the 50 % relative margin
    assert judge_step(step(beyond(0.055, 100_000), base)).decision == "promote"
    # the median check sees five points as nothing (its margin is six points)
    assert judge_step(step(beyond(0.10, 100_000), base, tails=False)).decision == "promote"


def test_with_coarse_buckets_the_tail_edge_may_lie_beyond_every_base_load() -> None:
    # base: no load slower than 0.5 s; the next edge above its p90 (0.25 s) is the p99 edge
    base = Figures(loads=10_000, load_seconds={"0.1": 5000, "0.25": 9500, "0.5": 10_000, "+Inf": 10_000})
    assert _tail_edges(base, base, [0.9, 0.99], 0.1) == [(0.9, 0.25), (0.99, 0.5)]
    # a canary with 3 % of its loads beyond it is harm, however rare such loads were before
    canary = {
        "loads": 5000,
        "errors": 0,
        "load_seconds": {"0.1": 2500.0, "0.25": 4750.0, "0.5": 4850.0, "+Inf": 5000.0},
    }
    verdict = judge_step(step(canary, base.model_dump()))
    assert verdict.decision == "rollback" and verdict.reason.startswith("load_tail_p99"), verdict.reason


def test_the_seed_p99_rule_guards_where_the_baseline_is_under_one_second() -> None:
    # tail checks off: the guard alone. The baseline's p99 is well under 1 s.
    fast = lognormal(40_000, 0.15, 0.5)
    slow_tail = lognormal(20_000, 0.15, 0.5, tail=0.03, factor=20)
    guard_only: dict[str, Any] = {"tail_quantiles": []}
    verdict = judge_look(doc(slow_tail, fast, analysis=guard_only), 9)
    assert verdict.decision == "rollback"
    assert "the baseline's p99 is under 1s" in verdict.reason, verdict.reason
    # a baseline whose own p99 is above 1 s: the guard would fail every canary, so it stands aside
    slow_base = lognormal(40_000, 0.5, 0.9)
    same = lognormal(20_000, 0.5, 0.9)
    assert judge_step(doc(same, slow_base, analysis=guard_only)).decision == "promote"
    # and without the seed's rule (the judge before) the fast baseline's slow-tailed canary passed
    assert judge_step(step(slow_tail, fast, tails=False)).decision == "promote"
    # set explicitly, max_p99_seconds is the absolute guard it always was
    explicit = doc(same, slow_base, analysis={"max_p99_seconds": 1.0})
    assert judge_step(explicit).decision == "rollback"


def test_a_document_without_the_tail_settings_replays_with_the_defaults() -> None:
    canary = lognormal(20_000, 0.15, 0.5, tail=0.05, factor=10)
    plain = StepDocument.model_validate(
        {
            "step": {"weight": 50, "bake_seconds": 60, "last": True},
            "looks": [{"at_seconds": 60, "canary": canary, "baseline": BASE}],
        }
    )
    assert judge_step(plain).decision == "rollback"


def test_a_window_between_two_looks_reads_no_slow_load_that_neither_look_has() -> None:
    """Seen on the real stack: the first look's 0.25 s bucket (500) exceeded its 450 loads
    (increase() extrapolates each series apart); the window since that look read 50 of 1,000
    loads as slower than every edge, and the p90 tail check rolled back a healthy canary."""
    first = Figures(loads=450, load_seconds={"0.25": 500, "0.5": 500, "+Inf": 450})
    second = Figures(loads=1450, load_seconds={"0.25": 1450, "0.5": 1450, "+Inf": 1450})
    window = second.minus(first)
    assert window.loads == 1000
    assert window.slower_than(0.25) == 0 and window.slower_than(0.5) == 0


# ----- web vitals -------------------------------------------------------------------------------


LCP_EDGES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


def lcp(pages: int, median: float, tail: float = 0.0, factor: float = 1.0) -> dict[str, Any]:
    """An LCP histogram (log-normal, sigma 0.4) as figures: every report a 'load'."""

    def below(edge: float, scale: float) -> float:
        return 0.5 * (1 + math.erf(math.log(edge / (median * scale)) / (0.4 * math.sqrt(2))))

    hist = {
        f"{e:g}": float(round(pages * ((1 - tail) * below(e, 1) + tail * below(e, factor))))
        for e in LCP_EDGES
    }
    hist["+Inf"] = float(pages)
    return {"loads": pages, "errors": 0, "load_seconds": hist}


def with_vitals(figures: dict[str, Any], vitals: dict[str, Any] | None) -> dict[str, Any]:
    return {**figures, "vitals": {"lcp": vitals}} if vitals is not None else figures


def test_a_web_vital_tail_regression_is_rolled_back_where_the_vitals_check_is_on() -> None:
    base = with_vitals(BASE, lcp(80_000, 1.2))
    canary = with_vitals(lognormal(20_000, 0.15, 0.5), lcp(10_000, 1.2, tail=0.1, factor=4))
    on = {**DEFAULTS, "vitals": ["lcp"]}
    # one look with all the figures (the test helper's scaled looks carry no vitals)
    verdict = judge_step(doc([canary], [base], analysis=on))
    assert verdict.decision == "rollback" and verdict.reason.startswith("lcp_tail_p"), verdict.reason
    # off (the default), the vitals are not judged: the loads alone are fine
    assert judge_step(doc([canary], [base], analysis=DEFAULTS)).decision == "promote"
    # the same LCP for both: promoted, with the LCP tail checks reported
    same = with_vitals(lognormal(20_000, 0.15, 0.5), lcp(40_000, 1.2))
    good = judge_step(doc([same], [base], analysis=on))
    assert good.decision == "promote", good.reason
    assert {"lcp_tail_p90", "lcp_tail_p99"} <= {c.name for c in good.checks}


def test_a_vitals_check_without_vitals_holds_rather_than_passes() -> None:
    on = {**DEFAULTS, "vitals": ["lcp"]}
    verdict = judge_step(doc(lognormal(20_000, 0.15, 0.5), BASE, analysis=on))
    assert verdict.decision == "hold" and verdict.reason == (
        "LCP: not enough web-vitals reports from both variants to compare their tails "
        "(is the loader's vitals report on?)"
    ), verdict.reason
    both = judge_step(
        doc(lognormal(20_000, 0.15, 0.5), BASE, analysis={**DEFAULTS, "vitals": ["lcp", "inp"]})
    )
    assert both.decision == "hold" and both.reason.startswith("LCP, INP: not enough web-vitals"), both.reason


def test_the_tail_margin_is_the_relative_margin_at_p90_and_grows_further_out() -> None:
    assert tail_margin(0.5, 0.9) == 0.5
    assert math.isclose(tail_margin(0.5, 0.95), 0.5 * math.sqrt(2))
    assert math.isclose(tail_margin(0.5, 0.99), 0.5 * math.sqrt(10))
    assert math.isclose(tail_margin(0.2, 0.75), 0.2 * math.sqrt(0.4))


def test_the_base_p99_is_under_an_edge_only_when_its_upper_bound_says_so() -> None:
    """`_base_p99_under`: at alpha / 2, the share of base loads slower than `edge` is surely under 1 %."""
    ctx = _context(doc(BASE, BASE, analysis=DEFAULTS), 0, settings_of(doc(BASE, BASE, analysis=DEFAULTS)))
    assert ctx is not None
    alpha, n = 0.05, 20_000

    def base(slow: int) -> Figures:
        return Figures(loads=n, errors=0, load_seconds={"0.5": float(n - slow), "+Inf": float(n)})

    # the largest count of slow loads whose upper bound is still under 1 %
    slow = max(x for x in range(0, 400) if bounds(x, n, alpha / 2).upper < 0.01)
    assert _base_p99_under(replace(ctx, base=base(slow)), 0.5, alpha)
    assert not _base_p99_under(replace(ctx, base=base(slow + 1)), 0.5, alpha)
    # no base, or an edge the base has no bucket at: never under
    assert not _base_p99_under(replace(ctx, base=None), 0.5, alpha)
    assert not _base_p99_under(replace(ctx, base=base(0)), 0.75, alpha)
    assert not _base_p99_under(replace(ctx, base=Figures()), 0.5, alpha)
