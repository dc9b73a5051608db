"""Two peer judges, written from their documentation, fed the same step documents.

- Flagger-style (docs.flagger.app, "Canary analysis"): every interval, the
  request success rate over the last interval must be >= 99 % and the p99
  latency <= 1 s; no data fails the check; `threshold` (5) failed checks roll
  back; otherwise the canary is promoted when the iterations are done. The
  baseline plays no part.
- Kayenta-style (Spinnaker's NetflixACAJudge / Mann-Whitney classifier): at
  the end of the interval, each metric of the canary is compared with the
  baseline, one-sided at 98 % confidence, with no minimum sample: Fisher's
  exact test on failures, Mann-Whitney U on load times. Any metric worse
  fails; no baseline to compare with passes.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

FLAGGER_THRESHOLD = 5


def _interval(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    if before is None:
        return now
    return {
        "loads": now["loads"] - before["loads"],
        "errors": now["errors"] - before["errors"],
        "load_seconds": {k: v - before["load_seconds"].get(k, 0) for k, v in now["load_seconds"].items()},
    }


def _p99(f: dict[str, Any]) -> float | None:
    buckets = sorted((float(k), v) for k, v in f["load_seconds"].items() if k != "+Inf")
    ok = f["loads"] - f["errors"]
    if ok <= 0:
        return None
    rank, prev_edge, prev_count = 0.99 * ok, 0.0, 0.0
    for edge, count in buckets:
        if count >= rank:
            span = count - prev_count
            return prev_edge + (edge - prev_edge) * ((rank - prev_count) / span if span else 1.0)
        prev_edge, prev_count = edge, count
    return math.inf


def flagger(doc: dict[str, Any]) -> dict[str, Any]:
    failed = 0
    previous = None
    for k, look in enumerate(doc["looks"]):
        f = _interval(look["canary"], previous)
        previous = look["canary"]
        p99 = _p99(f)
        ok = f["loads"] > 0 and (1 - f["errors"] / f["loads"]) >= 0.99 and p99 is not None and p99 <= 1.0
        if not ok:
            failed += 1
            if failed >= FLAGGER_THRESHOLD:
                return {"decision": "rollback", "decided_at_look": k, "reason": "threshold reached"}
    return {"decision": "promote", "decided_at_look": len(doc["looks"]) - 1, "reason": "iterations done"}


def _samples(f: dict[str, Any]) -> list[float]:
    """Load times rebuilt from buckets: each load at its bucket's midpoint."""
    out: list[float] = []
    prev_edge, prev_count = 0.0, 0.0
    for edge, count in sorted((float(k), v) for k, v in f["load_seconds"].items() if k != "+Inf"):
        out += [(prev_edge + edge) / 2] * int(round(count - prev_count))
        prev_edge, prev_count = edge, count
    return out


def kayenta(doc: dict[str, Any]) -> dict[str, Any]:
    last = len(doc["looks"]) - 1
    look = doc["looks"][-1]
    canary, baseline = look["canary"], look.get("baseline")
    if not baseline or not baseline["loads"]:
        return {"decision": "promote", "decided_at_look": last, "reason": "no baseline: nothing to compare"}
    fisher = stats.fisher_exact(
        [
            [canary["errors"], canary["loads"] - canary["errors"]],
            [baseline["errors"], baseline["loads"] - baseline["errors"]],
        ],
        alternative="greater",
    ).pvalue
    if fisher < 0.02:
        return {"decision": "rollback", "decided_at_look": last, "reason": f"errors, Fisher p={fisher:.3g}"}
    c, b = _samples(canary), _samples(baseline)
    if c and b and stats.mannwhitneyu(c, b, alternative="greater").pvalue < 0.02:
        return {"decision": "rollback", "decided_at_look": last, "reason": "load time, Mann-Whitney"}
    return {"decision": "promote", "decided_at_look": last, "reason": "every metric passed"}
