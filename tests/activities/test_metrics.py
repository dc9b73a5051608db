"""The look that ends a bake, against the real Prometheus of the session (1 s scrapes).

Counters are read as of their last scrape. A look taken a moment after the
step began, before any scrape since, would count nothing: the settle wait is
what makes a short step's loads count.
"""

from __future__ import annotations

import time

from temporalio.testing import ActivityEnvironment

from activities.metrics import GatherFiguresInput, MetricsActivities
from skyline.settings import Settings
from tests.support.rum import RumTarget
from tests.support.scenario import unique


def look(apartment: str, since_seconds: float, settle: bool) -> GatherFiguresInput:
    return GatherFiguresInput(
        apartment=apartment,
        building="header",
        unit="header",
        canary_version="2.0.0",
        baseline_version=None,
        since_seconds=since_seconds,
        at_seconds=since_seconds,
        window_seconds=10,
        settle=settle,
    )


def test_the_look_that_ends_a_bake_counts_loads_up_to_when_it_was_taken(
    rum: RumTarget, settings: Settings
) -> None:
    apartment = unique("settle")
    metrics = MetricsActivities(settings.prometheus_url, 5, settle_seconds=10)
    with rum.traffic(apartment, "header", "header", "2.0.0", loads_per_tick=10):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        # A step 50 ms old: without waiting for a scrape after it, almost surely 0 loads.
        result = ActivityEnvironment().run(metrics.gather_figures, look(apartment, 0.05, settle=True))
    assert result.look.canary is not None
    assert result.look.canary.loads > 0, result.look


def test_settling_returns_the_newest_sample_and_gives_up_after_its_bound(
    rum: RumTarget, settings: Settings
) -> None:
    apartment = unique("settle")
    metrics = MetricsActivities(settings.prometheus_url, 5, settle_seconds=1)
    env = ActivityEnvironment()
    # A building with no series has nothing coming: no wait, no sample.
    assert env.run(metrics.settle, look(unique("quiet"), 1, settle=True), time.time()) is None
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        taken = time.time()
        newest = env.run(metrics.settle, look(apartment, 1, settle=True), taken)
        assert newest is not None and newest >= taken
        # A sample from the future never comes; the bound ends the wait with what there is.
        future = time.time() + 3600
        stale = env.run(metrics.settle, look(apartment, 1, settle=True), future)
        assert stale is not None and newest <= stale < future
