"""Figures (skyline/figures.py): counts pooled over steps and differences between looks."""

from __future__ import annotations

from skyline.figures import Figures


def figures(loads: int, errors: int, buckets: dict[str, float]) -> Figures:
    return Figures.model_validate({"loads": loads, "errors": errors, "load_seconds": buckets})


def test_slower_than_an_edge_the_histogram_lacks_is_every_successful_load() -> None:
    f = figures(100, 10, {"0.5": 60, "1": 90, "+Inf": 90})
    assert f.slower_than(0.5) == 30 and f.slower_than(1.0) == 0
    assert f.slower_than(0.25) == 90


def test_plus_pools_buckets_either_side_has() -> None:
    a = figures(10, 1, {"0.5": 5, "+Inf": 9})
    b = figures(20, 2, {"1": 18, "+Inf": 18})
    both = a.plus(b)
    assert (both.loads, both.errors) == (30, 3)
    assert both.load_seconds == {"0.5": 5, "1": 18, "+Inf": 27}
    assert b.plus(a).load_seconds == both.load_seconds
    assert a.plus(None) == a


def test_minus_is_what_happened_between_two_looks_never_negative() -> None:
    earlier = figures(10, 1, {"0.5": 5, "+Inf": 9})
    later = figures(30, 3, {"0.5": 15, "1": 20, "+Inf": 27})
    between = later.minus(earlier)
    assert (between.loads, between.errors) == (20, 2)
    assert between.load_seconds == {"0.5": 10, "1": 20, "+Inf": 18}
    nothing = later.minus(later)
    assert (nothing.loads, nothing.errors) == (0, 0)
    assert set(nothing.load_seconds.values()) == {0.0}
    # a counter reset (later smaller than earlier) gives zero, not negative counts
    reset = earlier.minus(later)
    assert (reset.loads, reset.errors) == (0, 0) and set(reset.load_seconds.values()) == {0.0}
    assert later.minus(None) == later


def test_loads_without_new_failures_have_no_failures_between_them() -> None:
    earlier = figures(10, 1, {"0.5": 5, "+Inf": 9})
    later = figures(30, 1, {"0.5": 15, "+Inf": 29})
    assert later.minus(earlier).errors == 0


def test_vitals_add_and_subtract_per_name() -> None:
    early = Figures(loads=10, errors=1, vitals={"lcp": Figures(loads=4, errors=1), "cls": Figures(loads=2)})
    late = Figures(loads=30, errors=2, vitals={"lcp": Figures(loads=9, errors=3)})
    both = early.plus(late)
    assert both.vitals["lcp"].loads == 13 and both.vitals["lcp"].errors == 4
    assert both.vitals["cls"].loads == 2
    between = late.minus(early)
    assert set(between.vitals) == {"lcp"}
    assert (between.vitals["lcp"].loads, between.vitals["lcp"].errors) == (5, 2)
    assert late.minus(Figures()).vitals["lcp"].loads == 9  # a vital the earlier look lacks stays whole
