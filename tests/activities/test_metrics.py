"""The look that ends a bake, against the real Prometheus of the session (1 s scrapes).

Counters are read as of their last scrape. A look taken a moment after the
step began, before any scrape since, would count nothing: the settle wait is
what makes a short step's loads count.
"""

from __future__ import annotations

import time

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.metrics import GatherFiguresInput, MetricsActivities, PrometheusLagging
from skyline.checks import LOADS
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


class _CountingAsks(MetricsActivities):
    asks = 0

    def newest(self, inp: GatherFiguresInput) -> float | None:
        self.asks += 1
        return super().newest(inp)


def test_settling_sleeps_until_the_next_scrape_is_due_once_it_knows_the_interval(
    rum: RumTarget, settings: Settings
) -> None:
    """Asking every 0.2 s cost ~5 queries per settling look at a 1 s scrape (and 4 looks per
    rollout): after one settle has seen the building scraped twice, the next sleeps until the
    scrape is due and asks about twice."""
    apartment = unique("interval")
    metrics = _CountingAsks(settings.prometheus_url, 5, settle_seconds=10)
    env = ActivityEnvironment()
    inp = look(apartment, 1, settle=True)
    with rum.traffic(apartment, "header", "header", "2.0.0"):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        learned = env.run(metrics.settle, inp, time.time())
        interval = metrics.scrape_intervals.get((apartment, "header"))
        assert learned is not None and interval is not None and 0.5 <= interval <= 2.5, interval
        # Just after a scrape became visible: the next one is most of an interval away.
        metrics.asks = 0
        taken = time.time()
        newest = env.run(metrics.settle, inp, taken)
    assert newest is not None and newest >= taken
    assert metrics.asks <= 3, metrics.asks


def test_every_query_of_a_look_is_evaluated_at_one_time(rum: RumTarget, settings: Settings) -> None:
    """A look's loads and its histogram come from one scrape, the one it was pinned to, even
    when newer scrapes landed while it queried (else the newer loads count as slow ones)."""
    apartment = unique("pinned")
    metrics = MetricsActivities(settings.prometheus_url, 5, settle_seconds=10)
    inp = look(apartment, 5, settle=False)
    with rum.traffic(apartment, "header", "header", "2.0.0", loads_per_tick=10):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        pinned = metrics.newest(inp)
        assert pinned is not None
        # a newer scrape is in: reading "now" would see more loads than the pinned scrape had
        assert metrics.settle(inp, pinned + 0.5) is not None
        started = pinned - 3
        figures = metrics.since(inp, "2.0.0", started, at=pinned)
        now = metrics.since(inp, "2.0.0", started)
    sel = f'apartment="{apartment}",building="header",unit="header",version="2.0.0"'
    assert now.loads > figures.loads

    def at_pin(promql: str) -> float:
        params = {"query": promql, "time": f"{pinned:.3f}"}
        found = httpx.get(f"{settings.prometheus_url}/api/v1/query", params=params, timeout=5).json()
        result = found["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0  # no series yet: nothing counted

    then = at_pin(f"sum({LOADS}{{{sel}}} @ {started:.3f})")
    assert figures.loads == round(at_pin(f"sum({LOADS}{{{sel}}})") - then) > 0
    # the histogram was read at the same scrape: no load is slower than its top bucket
    assert figures.slower_than(5.0) == 0, figures


def test_a_look_reads_the_web_vitals_the_rollout_judges(rum: RumTarget, settings: Settings) -> None:
    """vitals=["lcp"]: the LCP histogram since the step began, beside the loads (issue 27)."""
    apartment = unique("vitals")
    metrics = MetricsActivities(settings.prometheus_url, 5, settle_seconds=10)
    started = time.time()
    with rum.traffic(apartment, "header", "header", "2.0.0", loads_per_tick=10, lcp_seconds=3.0):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        inp = look(apartment, time.time() - started, settle=True).model_copy(update={"vitals": ["lcp"]})
        result = ActivityEnvironment().run(metrics.gather_figures, inp)
        plain = ActivityEnvironment().run(
            metrics.gather_figures, look(apartment, time.time() - started, True)
        )
    canary = result.look.canary
    assert canary is not None and canary.loads > 0
    lcp = canary.vitals["lcp"]
    # one LCP report per load, every one of them 3 s: none at or under 2.5 s, all under 4 s
    assert lcp.loads > 0 and lcp.slower_than(2.5) == lcp.loads and lcp.slower_than(4.0) == 0, lcp
    assert plain.look.canary is not None and plain.look.canary.vitals == {}


class _LaggingScrape(MetricsActivities):
    """As a Prometheus whose scrapes fall behind: the settle wait gives up with a scrape from
    before the look (here the building's real newest scrape, moved 30 s back)."""

    def settle(self, inp: GatherFiguresInput, taken: float) -> float | None:
        newest = self.newest(inp)
        return None if newest is None else min(newest, taken) - 30


def test_a_look_that_ends_a_bake_on_a_lagging_scrape_is_retried_not_read_as_no_loads(
    rum: RumTarget, settings: Settings
) -> None:
    """Counters of a scrape older than the step count its loads as missing ("only 0 canary
    loads"), and the judge held 178 of 1,000 bench rollouts on that: the look raises a
    retryable PrometheusLagging instead (issue 25)."""
    apartment = unique("lagging")
    lagging = _LaggingScrape(settings.prometheus_url, 5, settle_seconds=1)
    with rum.traffic(apartment, "header", "header", "2.0.0", loads_per_tick=10):
        rum.wait_visible(settings.prometheus_url, apartment, "header", "header", "2.0.0")
        with pytest.raises(PrometheusLagging, match="has not scraped"):
            ActivityEnvironment().run(lagging.gather_figures, look(apartment, 5, settle=True))
        # mid-bake looks do not wait for a scrape, and a building without series has none coming
        assert ActivityEnvironment().run(lagging.gather_figures, look(apartment, 5, settle=False))
        quiet = ActivityEnvironment().run(lagging.gather_figures, look(unique("quiet"), 5, settle=True))
    assert quiet.look.canary is not None and quiet.look.canary.loads == 0
