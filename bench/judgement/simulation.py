"""A seeded, labelled simulation of browser-load traffic, as step documents.

Each simulated unit has a baseline failure ratio (log-uniform 0.2-3 %), a
log-normal load time (median 0.15-0.8 s, sigma 0.4-0.9) and a building-wide
load rate (log-uniform 1,000-20,000 loads a minute). Traffic splits binomially
by the step's weight; looks come every minute of a 10-minute bake. Labels:

- good: the canary is the baseline;
- bad: failed loads x2-x5, or load time x1.5-x2, from the start;
- thin: a quiet unit, 5-30 canary loads expected in a step (so fewer than 50 in
  practice; in whole rollouts at every step, 100 % included);
- late: good for the first half of a step, then bad as above;
- tail: the median unchanged, but 5-20 % of loads 3-30x slower (log-uniform),
  from the start.

A second family of units (`draw_unit(..., family="independent")`) is drawn
the way an independent simulation drew them: a few discrete base error rates
(0.1, 0.5, 1, 2 %) and medians (0.1, 0.3, 1 s), 1,000-10,000 loads a minute,
and gamma-distributed load times (shape 1.5-4) instead of log-normal ones, so
that the benchmark is not tuned to one shape of traffic.

Figures are what Prometheus would give: cumulative since the step began,
with the loader's histogram buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import stats

BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
Label = Literal["good", "bad", "thin", "late", "tail"]
Family = Literal["project", "independent"]
LOOKS = 10
INTERVAL = 60.0


@dataclass
class Unit:
    error_rate: float
    median: float
    sigma: float
    per_minute: float
    shape: float = 0.0  # > 0: gamma load times of this shape (median `median`), else log-normal


@dataclass
class Tail:
    """A share of the canary's loads that are `factor` times slower than they would be."""

    share: float
    factor: float


@dataclass
class Canary:
    label: Label
    error_factor: float = 1.0
    latency_factor: float = 1.0
    onset_look: int = 0  # bad from this look on (late onset)
    tail: Tail | None = None


def draw_unit(
    rng: np.random.Generator, thin: bool = False, weight: float = 5.0, family: Family = "project"
) -> Unit:
    if family == "independent":
        per_minute = rng.uniform(1000, 10000)
        if thin:
            per_minute = rng.uniform(0.5, 3.0) / (weight / 100)
        return Unit(
            error_rate=float(rng.choice([0.001, 0.005, 0.01, 0.02])),
            median=float(rng.choice([0.1, 0.3, 1.0])),
            sigma=0.0,
            per_minute=per_minute,
            shape=rng.uniform(1.5, 4.0),
        )
    per_minute = math.exp(rng.uniform(math.log(1000), math.log(20000)))
    if thin:
        # 5-30 canary loads expected over a 10-minute step at `weight`
        per_minute = rng.uniform(0.5, 3.0) / (weight / 100)
    return Unit(
        error_rate=math.exp(rng.uniform(math.log(0.002), math.log(0.03))),
        median=rng.uniform(0.15, 0.8),
        sigma=rng.uniform(0.4, 0.9),
        per_minute=per_minute,
    )


def draw_canary(rng: np.random.Generator, label: Label) -> Canary:
    if label in ("good", "thin"):
        return Canary(label)
    if label == "tail":
        share = rng.uniform(0.05, 0.2)
        factor = math.exp(rng.uniform(math.log(3), math.log(30)))
        return Canary(label, tail=Tail(share, factor))
    errors = bool(rng.integers(0, 2))
    onset = LOOKS // 2 if label == "late" else 0
    if errors:
        return Canary(label, error_factor=rng.uniform(2, 5), onset_look=onset)
    return Canary(label, latency_factor=rng.uniform(1.5, 2), onset_look=onset)


def _times(rng: np.random.Generator, unit: Unit, median: float, n: int) -> np.ndarray[Any, Any]:
    if unit.shape > 0:
        # gamma with this median: scale = median / (the median of a unit-scale gamma)
        scale = median / float(_gamma_median(unit.shape))
        return rng.gamma(unit.shape, scale, n)
    return rng.lognormal(math.log(median), unit.sigma, n)


@lru_cache(maxsize=4096)
def _gamma_median(shape: float) -> float:
    return float(stats.gamma.median(shape))


def _interval(
    rng: np.random.Generator,
    unit: Unit,
    loads: int,
    error_factor: float,
    latency_factor: float,
    tail: Tail | None = None,
) -> dict[str, Any]:
    errors = int(rng.binomial(loads, min(1.0, unit.error_rate * error_factor)))
    ok = loads - errors
    times = _times(rng, unit, unit.median * latency_factor, ok)
    if tail is not None:
        slowed = rng.random(ok) < tail.share
        times[slowed] *= tail.factor
    counts = np.searchsorted(np.sort(times), BUCKETS, side="right")
    hist = {f"{b:g}": float(c) for b, c in zip(BUCKETS, counts, strict=True)}
    hist["+Inf"] = float(ok)
    return {"loads": loads, "errors": errors, "load_seconds": hist}


def _add(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    if a is None:
        return b
    return {
        "loads": a["loads"] + b["loads"],
        "errors": a["errors"] + b["errors"],
        "load_seconds": {k: a["load_seconds"][k] + v for k, v in b["load_seconds"].items()},
    }


def simulate_step(
    rng: np.random.Generator,
    unit: Unit,
    canary: Canary,
    weight: float,
    index: int = 0,
    last: bool = False,
    earlier: list[dict[str, Any]] | None = None,
    bad_from_start: bool = False,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One step document: ten looks, cumulative figures, no baseline traffic at 100 %."""
    looks = []
    c_total: dict[str, Any] | None = None
    b_total: dict[str, Any] | None = None
    for look in range(LOOKS):
        loads = int(rng.poisson(unit.per_minute * INTERVAL / 60))
        to_canary = int(rng.binomial(loads, weight / 100))
        bad = bad_from_start or look >= canary.onset_look
        ef = canary.error_factor if bad else 1.0
        lf = canary.latency_factor if bad else 1.0
        c_total = _add(c_total, _interval(rng, unit, to_canary, ef, lf, canary.tail if bad else None))
        if weight < 100:
            b_total = _add(b_total, _interval(rng, unit, loads - to_canary, 1.0, 1.0))
        looks.append(
            {
                "at_seconds": INTERVAL * (look + 1),
                "canary": c_total,
                "baseline": b_total if weight < 100 else None,
            }
        )
    return {
        "step": {"index": index, "weight": weight, "bake_seconds": INTERVAL * LOOKS, "last": last},
        "earlier": earlier or [],
        "looks": looks,
        "reference": reference,
    }


def reference(rng: np.random.Generator, unit: Unit, minutes: int = 60) -> dict[str, Any]:
    """The baseline's figures over the hour before the rollout, as the workflow reads them."""
    loads = int(rng.poisson(unit.per_minute * minutes))
    return _interval(rng, unit, loads, 1.0, 1.0)


def final_figures(doc: dict[str, Any]) -> dict[str, Any]:
    last = doc["looks"][-1]
    return {"weight": doc["step"]["weight"], "canary": last["canary"], "baseline": last["baseline"]}


def one_look(doc: dict[str, Any]) -> dict[str, Any]:
    """The same step with all of its evidence given at once, at the end of the bake."""
    return {**doc, "looks": [doc["looks"][-1]]}
