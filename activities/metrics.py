"""Canary analysis against Prometheus: query every check for canary and baseline, then judge."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import BaseModel
from temporalio import activity
from urllib3.util.retry import Retry

from activities.beat import beat
from adapters.evidence import EvidenceReader, gather_evidence
from skyline.analysis import Observation, judge_check, summarize, template_values
from skyline.checks import LOAD_SECONDS, LOADS, VITALS, MetricCheck, render
from skyline.figures import INF, CheckFigures, Figures, Look, Observed
from skyline.health import components, health_score
from skyline.rollout import CheckResult, Verdict


class RunAnalysisInput(BaseModel):
    apartment: str
    building: str
    unit: str
    canary_version: str
    baseline_version: str | None
    window_seconds: float
    checks: list[MetricCheck]
    alpha: float
    weight: float = 0
    health_weights: dict[str, float] | None = None
    min_health_score: float | None = None


class RunAnalysisResult(BaseModel):
    verdict: Verdict
    reason: str
    checks: list[CheckResult]
    health_score: float | None = None
    health_components: dict[str, float] = {}


class GatherFiguresInput(BaseModel):
    """What to read for one look: the figures of both variants since the step began."""

    apartment: str
    building: str
    unit: str
    canary_version: str
    baseline_version: str | None
    since_seconds: float
    at_seconds: float
    window_seconds: float
    checks: list[MetricCheck] | None = None
    # Seconds since the rollout started: when set, also read the baseline's
    # figures over the hour before it (the reference for 100 % steps).
    reference_offset_seconds: float | None = None
    # The look that ends the bake: first wait for Prometheus to scrape past it.
    settle: bool = False
    # Web vitals to read as well (lcp, inp, cls): the rollout judges their tails.
    vitals: list[str] = []


class GatherFiguresResult(BaseModel):
    look: Look
    reference: Figures | None = None


REFERENCE_SECONDS = 3600
# How often a settling look asks Prometheus for a newer scrape, and how long after a
# scrape is due its sample is queryable (the scrape itself takes a few milliseconds).
SETTLE_POLL_SECONDS = 0.2
SCRAPE_MARGIN_SECONDS = 0.1


class PrometheusDown(RuntimeError):
    """Unreachable, timing out or 5xx: retried by the activity's retry policy."""


class PrometheusLagging(RuntimeError):
    """The look that ends a bake found no scrape of the building since it was taken.

    Its counters would be read as of an older scrape, so the step's loads would
    count as missing ("only 0 canary loads") though the browsers sent them; the
    retry policy looks again once the scrape is in. A target that stays unscraped
    ends as "metrics unavailable", which says what is wrong.
    """


def _number(raw: object) -> float | None:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


class MetricsActivities:
    def __init__(
        self,
        prometheus_url: str,
        timeout_seconds: float,
        settle_seconds: float = 0,
        evidence: EvidenceReader | None = None,
    ) -> None:
        self.settle_seconds = settle_seconds
        # Seconds between two scrapes of a building's loads, as this process last saw them.
        self.scrape_intervals: dict[tuple[str, str], float] = {}
        self.evidence = evidence  # sessions and client networks behind the figures (optional)
        # No client-side retries: Temporal's retry policy owns retrying, so an
        # outage shows up in the workflow's history instead of hiding in here.
        self.prometheus = PrometheusConnect(
            url=prometheus_url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_seconds
        )

    def _call(self, fn: str, *args: object, **kwargs: object) -> list[dict[str, object]]:
        try:
            result: list[dict[str, object]] = getattr(self.prometheus, fn)(*args, **kwargs)
            return result
        except PrometheusApiClientException as exc:
            if "Status Code 5" in str(exc):
                raise PrometheusDown(f"Prometheus failed: {exc}") from exc
            raise
        except requests.RequestException as exc:
            raise PrometheusDown(f"Prometheus unreachable: {exc}") from exc

    def _query(self, promql: str, at: float | None) -> list[dict[str, object]]:
        """An instant query, evaluated at `at` (epoch seconds) or at Prometheus' now."""
        return self._call("custom_query", promql, params={"time": f"{at:.3f}"} if at is not None else None)

    def _instant(self, promql: str, at: float | None = None) -> float | None:
        result = self._query(promql, at)
        if not result:
            return None
        value = result[0].get("value")
        return _number(value[1]) if isinstance(value, list) and len(value) == 2 else None

    def _range(self, promql: str, window: float, step: float, at: float | None = None) -> list[float]:
        end = at if at is not None else time.time()
        result = self._call(
            "custom_query_range", promql, start_time=_dt(end - window), end_time=_dt(end), step=f"{step:g}s"
        )
        samples: list[float] = []
        for series in result[:1]:
            values = series.get("values")
            if isinstance(values, list):
                samples.extend(v for pair in values if (v := _number(pair[1])) is not None)
        return samples

    def observe(
        self, check: MetricCheck, values: dict[str, str], window: float, at: float | None = None
    ) -> Observation:
        """One check's reading; `at` pins every query to one evaluation time (bad and total
        of a ratio from one scrape, not a newer total than its bad count)."""
        filled = {**values, **check.args}
        try:
            if check.kind == "ratio":
                assert check.total_query is not None
                return Observation(
                    bad=self._instant(render(check.query, filled), at),
                    total=self._instant(render(check.total_query, filled), at),
                )
            if check.kind == "samples":
                return Observation(
                    samples=self._range(render(check.query, filled), window, check.step_seconds, at)
                )
            return Observation(value=self._instant(render(check.query, filled), at))
        except PrometheusApiClientException as exc:
            # The server answered but refused the query: retrying will not fix it.
            return Observation(error=f"Prometheus rejected the query: {exc}")

    def _vector(self, promql: str, label: str, at: float | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for series in self._query(promql, at):
            metric = series.get("metric")
            value = series.get("value")
            key = metric.get(label) if isinstance(metric, dict) else None
            if isinstance(key, str) and isinstance(value, list) and len(value) == 2:
                number = _number(value[1])
                if number is not None:
                    out[key] = out.get(key, 0.0) + number
        return out

    def figures(
        self,
        inp: GatherFiguresInput,
        version: str,
        seconds: float,
        offset: float = 0,
        at: float | None = None,
    ) -> Figures:
        """Loads, failed loads and the load-time histogram of one version over a range (extrapolated)."""
        sel = f'apartment="{inp.apartment}",building="{inp.building}",unit="{inp.unit}",version="{version}"'
        rng = f"[{max(1, round(seconds))}s]" + (f" offset {round(offset)}s" if offset > 0 else "")
        outcomes = self._vector(f"sum by (outcome) (increase({LOADS}{{{sel}}}{rng}))", "outcome", at)
        buckets = self._vector(f"sum by (le) (increase({LOAD_SECONDS}{{{sel}}}{rng}))", "le", at)
        vitals = {
            name: _vital(self._vector(f"sum by (le) (increase({VITALS[name]}{{{sel}}}{rng}))", "le", at))
            for name in inp.vitals
            if name in VITALS
        }
        return _figures(outcomes, buckets).model_copy(update={"vitals": vitals})

    def since(
        self, inp: GatherFiguresInput, version: str, started: float, at: float | None = None
    ) -> Figures:
        """Exact counts since `started` (epoch seconds) of one version (see `since_each`)."""
        return self.since_each(inp, [version], started, at)[version]

    def _counters(
        self, inp: GatherFiguresInput, versions: list[str], started: float, at: float | None
    ) -> dict[tuple[str, str, str], dict[str, float]]:
        """Every version's loads by outcome and load-time buckets, now and at `started`, in ONE
        query: {(version, "outcome" | "le", "now" | "then"): {outcome or bucket: count}}.

        Eight instant queries per look cost the worker (and Prometheus) eight round trips;
        `or` of label_replace-tagged sums returns the same numbers in one.
        """
        out: dict[tuple[str, str, str], dict[str, float]] = {}
        for series in self._query(counters_query(inp, versions, started), at):
            metric = series.get("metric")
            value = series.get("value")
            if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
                continue
            label = "outcome" if "outcome" in metric else "le"
            key = metric.get(label)
            number = _number(value[1])
            if isinstance(key, str) and number is not None:
                into = out.setdefault((str(metric.get("version")), label, str(metric.get(TAG))), {})
                into[key] = into.get(key, 0.0) + number
        return out

    def since_each(
        self, inp: GatherFiguresInput, versions: list[str], started: float, at: float | None = None
    ) -> dict[str, Figures]:
        """Exact counts since `started` (epoch seconds): the counters at `at` less the counters then.

        A series that did not exist yet counts from zero, so the failures that
        create a new version's `load_error` series are counted. A counter that
        went down (an API restart) falls back to increase() over the same time.
        Every query is evaluated at the same `at` (default: Prometheus' now):
        a scrape landing between the loads query and the histogram query
        would otherwise count one scrape's loads as slower than every bucket.
        """
        counters = self._counters(inp, versions, started, at)
        found: dict[str, Figures] = {}
        for version in versions:
            found[version] = self._since_one(inp, version, started, at, counters)
        return found

    def _since_one(
        self,
        inp: GatherFiguresInput,
        version: str,
        started: float,
        at: float | None,
        counters: dict[tuple[str, str, str], dict[str, float]],
    ) -> Figures:
        outcomes = counters.get((version, "outcome", "now"), {})
        outcomes_then = counters.get((version, "outcome", "then"), {})
        buckets = counters.get((version, "le", "now"), {})
        buckets_then = counters.get((version, "le", "then"), {})
        reset = any(outcomes_then.get(k, 0) > v for k, v in outcomes.items()) or any(
            buckets_then.get(k, 0) > v for k, v in buckets.items()
        )
        if reset:
            return self.figures(inp, version, (at or time.time()) - started, at=at)
        sel = f'apartment="{inp.apartment}",building="{inp.building}",unit="{inp.unit}",version="{version}"'
        then = f" @ {started:.3f}"
        vitals: dict[str, Figures] = {}
        for name in inp.vitals:
            if name not in VITALS:
                continue
            now_v = self._vector(f"sum by (le) ({VITALS[name]}{{{sel}}})", "le", at)
            then_v = self._vector(f"sum by (le) ({VITALS[name]}{{{sel}}}{then})", "le", at)
            if any(then_v.get(k, 0) > v for k, v in now_v.items()):
                return self.figures(inp, version, (at or time.time()) - started, at=at)
            vitals[name] = _vital({k: v - then_v.get(k, 0) for k, v in now_v.items()})
        return _figures(
            {k: v - outcomes_then.get(k, 0) for k, v in outcomes.items()},
            {k: v - buckets_then.get(k, 0) for k, v in buckets.items()},
        ).model_copy(update={"vitals": vitals})

    def _custom(self, inp: GatherFiguresInput, at: float | None) -> dict[str, CheckFigures]:
        out: dict[str, CheckFigures] = {}
        for check in inp.checks or []:
            canary_vals = template_values(
                inp.apartment,
                inp.building,
                inp.unit,
                inp.canary_version,
                inp.canary_version,
                inp.baseline_version,
                inp.since_seconds if check.kind == "ratio" else inp.window_seconds,
            )
            canary = self.observe(check, canary_vals, inp.window_seconds, at)
            baseline = None
            if inp.baseline_version and inp.baseline_version != inp.canary_version:
                baseline = self.observe(
                    check, {**canary_vals, "version": inp.baseline_version}, inp.window_seconds, at
                )
            out[check.name] = CheckFigures(
                canary=_observed(canary), baseline=_observed(baseline) if baseline else None
            )
        return out

    def settle(self, inp: GatherFiguresInput, taken: float) -> float | None:
        """Wait until Prometheus holds a sample of this building's loads from `taken` or later.

        Counters are read as of their last scrape: a look taken a moment after a
        scrape misses everything since, and a step shorter than a scrape interval
        (or a scrape delayed by a loaded machine) would read as "no canary loads"
        and be held for want of traffic it had. A building with no series at all
        has nothing coming; a scrape that never comes costs at most
        `settle_seconds`. Returns the newest sample's time (None: no series).

        Once this process has seen the building scraped twice it knows the
        interval, and sleeps until the next scrape is due instead of asking every
        0.2 s (each ask is a query Prometheus and this worker pay for).
        """
        deadline = time.monotonic() + self.settle_seconds
        key = (inp.apartment, inp.building)
        first = newest = self.newest(inp)
        polls = 0
        while not (newest is None or newest >= taken or time.monotonic() >= deadline):
            beat()  # a heartbeat only where there is one (not when run as a local activity)
            time.sleep(self._pause(key, newest, polls, deadline))
            polls += 1
            newest = self.newest(inp)
        if first is not None and newest is not None and newest > first:
            # The first change seen is one scrape later (a failed scrape makes it two:
            # the smallest seen is kept, and a pause too short only costs one more ask).
            seen = self.scrape_intervals.get(key)
            self.scrape_intervals[key] = newest - first if seen is None else min(seen, newest - first)
        return newest

    def _pause(self, key: tuple[str, str], newest: float, polls: int, deadline: float) -> float:
        """How long to sleep before asking again: until the next scrape is due, else 0.2 s."""
        pause = SETTLE_POLL_SECONDS
        interval = self.scrape_intervals.get(key)
        if interval is not None and polls == 0:
            due = newest + interval + SCRAPE_MARGIN_SECONDS - time.time()
            pause = min(max(due, SETTLE_POLL_SECONDS / 4), interval + SCRAPE_MARGIN_SECONDS)
        return max(0.0, min(pause, deadline - time.monotonic()))

    def newest(self, inp: GatherFiguresInput) -> float | None:
        """When Prometheus last scraped this building's loads (None: no series)."""
        sel = f'apartment="{inp.apartment}",building="{inp.building}"'
        return self._instant(f"max(timestamp({LOADS}{{{sel}}}))")

    @activity.defn
    def gather_figures(self, inp: GatherFiguresInput) -> GatherFiguresResult:
        """One look: both variants' figures since the step began (and the reference, once)."""
        taken = time.time()
        started = taken - inp.since_seconds
        # One evaluation time for every query of the look (the newest scrape, once it is in):
        # the loads, the histogram and both variants are then one consistent snapshot.
        settling = inp.settle and self.settle_seconds > 0
        at = self.settle(inp, taken) if settling else self.newest(inp)
        if settling and at is not None and at < taken:
            raise PrometheusLagging(
                f"Prometheus has not scraped {inp.apartment}/{inp.building} for "
                f"{taken - at:.1f} s (waited {self.settle_seconds:g} s for a scrape)"
            )
        compared = inp.baseline_version if inp.baseline_version != inp.canary_version else None
        counted = self.since_each(inp, [inp.canary_version, *([compared] if compared else [])], started, at)
        canary = counted[inp.canary_version]
        baseline = None
        reference = None
        if compared:
            baseline = counted[compared]
            if inp.reference_offset_seconds is not None:
                reference = self.figures(inp, compared, REFERENCE_SECONDS, inp.reference_offset_seconds)
        look = Look(at_seconds=inp.at_seconds, canary=canary, baseline=baseline, checks=self._custom(inp, at))
        if self.evidence is not None:
            look.evidence = gather_evidence(self.evidence, inp, started, taken)
        return GatherFiguresResult(look=look, reference=reference)

    @activity.defn
    def run_analysis(self, inp: RunAnalysisInput) -> RunAnalysisResult:
        results: list[CheckResult] = []
        for check in inp.checks:
            canary_vals = template_values(
                inp.apartment,
                inp.building,
                inp.unit,
                inp.canary_version,
                inp.canary_version,
                inp.baseline_version,
                inp.window_seconds,
            )
            canary = self.observe(check, canary_vals, inp.window_seconds)
            baseline = None
            if inp.baseline_version and inp.baseline_version != inp.canary_version:
                base_vals = {**canary_vals, "version": inp.baseline_version}
                baseline = self.observe(check, base_vals, inp.window_seconds)
            results.append(judge_check(check, canary, baseline, inp.alpha))
        health = health_score(components(results, inp.weight), inp.health_weights)
        if inp.min_health_score is not None:
            results.append(health_check(health.score, inp.min_health_score))
        verdict, reason = summarize(results)
        return RunAnalysisResult(
            verdict=verdict,
            reason=reason,
            checks=results,
            health_score=health.score,
            health_components=health.components,
        )


# The label that tells a look's "now" counters from its "then" ones in the one query.
TAG = "skyline_at"


def counters_query(inp: GatherFiguresInput, versions: list[str], started: float) -> str:
    """Loads by outcome and load-time buckets of each version, now and at `started` (epoch
    seconds), summed over instances (every collector replica), each sum tagged by TAG."""
    base = f'apartment="{inp.apartment}",building="{inp.building}",unit="{inp.unit}"'
    return " or ".join(
        f"label_replace(sum by (version, {label}) ({metric}{{{base},version={json.dumps(v)}}}{when}), "
        f'"{TAG}", "{tag}", "", "")'
        for v in versions
        for metric, label in ((LOADS, "outcome"), (LOAD_SECONDS, "le"))
        for tag, when in (("now", ""), ("then", f" @ {started:.3f}"))
    )


def _figures(outcomes: dict[str, float], buckets: dict[str, float]) -> Figures:
    loads = round(sum(outcomes.values()))
    errors = round(sum(v for k, v in outcomes.items() if k != "loaded"))
    histogram = {(INF if k in ("+Inf", "Inf") else k): v for k, v in buckets.items()}
    if histogram:
        histogram[INF] = float(max(0, loads - errors))
    return Figures(loads=loads, errors=errors, load_seconds=histogram)


def _vital(buckets: dict[str, float]) -> Figures:
    """A web vital's histogram as figures: every report a 'load', none failed."""
    histogram = {(INF if k in ("+Inf", "Inf") else k): max(0.0, v) for k, v in buckets.items()}
    return Figures(loads=round(histogram.get(INF, 0.0)), load_seconds=histogram)


def _observed(obs: Observation) -> Observed:
    return Observed(bad=obs.bad, total=obs.total, value=obs.value)


def health_check(score: float | None, minimum: float) -> CheckResult:
    """The minimum health score as one more check: no score is no evidence."""
    if score is None:
        return CheckResult(
            name="health_score",
            value=None,
            bound=minimum,
            comparison=">=",
            verdict="inconclusive",
            detail="no component had data",
        )
    verdict: Verdict = "pass" if score >= minimum else "fail"
    detail = "" if verdict == "pass" else f"{score:.1f} < {minimum:g}"
    return CheckResult(
        name="health_score", value=score, bound=minimum, comparison=">=", verdict=verdict, detail=detail
    )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
