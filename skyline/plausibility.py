"""Is the evidence behind a decision what real traffic would produce? Pure: no I/O.

A page is untrusted: anyone who can load it can fetch tokens and report
outcomes. The judge's statistics assume independent sessions of real users, so
before a look's `promote` or `rollback` stands, the sessions and client
networks behind it (skyline/evidence.py) must look like real traffic:

- **volume**: the canary's share of the step's sessions matches the split, and
  the step's sessions are about what the building's traffic before the
  rollout predicts (a forger adds sessions; real users do not multiply);
- **spread**: the decision still stands when the networks that sent the most
  of the deciding outcome (failures for a rollback, successes for a promotion)
  are cut down to what a typical network of the variant sends, and a rollback
  rests on failures from more than one client network.

Evidence that fails either can only hold, with a reason that says which. A
look without evidence (no shared store, a replay of an older document) is
judged on its figures alone; so is honest low traffic, which is spread over
many networks and matches the split.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from scipy import stats

from skyline.evidence import TOP_NETWORKS, Evidence
from skyline.figures import INF, Figures, StepDocument

Decision = Literal["promote", "rollback", "hold", "continue"]
Rejudge = Callable[[StepDocument], Decision]

# A share of sessions off the split by this much (relative, plus an absolute floor), and
# significant at this level, is not the split's doing.
SPLIT_TOLERANCE = 0.25
SPLIT_FLOOR = 0.02
SPLIT_ALPHA = 1e-4
# Sessions above what the traffic before the rollout predicts: this factor, plus noise.
VOLUME_TOLERANCE = 0.5
MIN_SESSIONS = 20  # below this, volume says nothing (honest low traffic judged as before)


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def split_doubt(evidence: Evidence, weight: float) -> str | None:
    """The canary's share of sessions is not what a `weight` % split produces."""
    base = evidence.baseline
    if base is None or weight >= 100:
        return None
    canary, total = evidence.canary.sessions, evidence.canary.sessions + base.sessions
    if total < MIN_SESSIONS:
        return None
    w = weight / 100
    share = canary / total
    high = stats.binomtest(canary, total, w, alternative="greater").pvalue < SPLIT_ALPHA
    low = stats.binomtest(canary, total, w, alternative="less").pvalue < SPLIT_ALPHA
    if (high and share > w * (1 + SPLIT_TOLERANCE) + SPLIT_FLOOR) or (
        low and share < w * (1 - SPLIT_TOLERANCE) - SPLIT_FLOOR
    ):
        return (
            f"implausible evidence: the canary has {_pct(share)} of the step's {total} sessions "
            f"at a {weight:g}% split (sessions the split did not send); not evidence either way"
        )
    return None


def volume_doubt(evidence: Evidence) -> str | None:
    """More sessions than the building's traffic before the rollout predicts for the step."""
    rate = evidence.sessions_per_second_before
    if rate is None or evidence.seconds <= 0:
        return None
    total = evidence.canary.sessions + (evidence.baseline.sessions if evidence.baseline else 0)
    expected = rate * evidence.seconds
    limit = expected * (1 + VOLUME_TOLERANCE) + 3 * math.sqrt(expected) + MIN_SESSIONS
    if total > limit:
        return (
            f"implausible evidence: {total} sessions in {evidence.seconds:.0f} s where the traffic "
            f"before the rollout predicts about {expected:.0f}; not evidence either way"
        )
    return None


def allowance(total: int, networks: int, top: list[int]) -> int:
    """What a typical network sends of one outcome: twice the mean of the networks outside
    the top ones (at least 1), so the top ones cannot raise their own allowance.
    `total` observations of the outcome came from `networks` networks."""
    top = top[:TOP_NETWORKS]
    rest = max(0, total - sum(top))
    return max(1, math.ceil(2 * rest / max(1, networks - len(top))))


def cut(top: list[int], total: int, networks: int) -> int:
    """Observations the top networks sent beyond the allowance."""
    cap = allowance(total, networks, top)
    return sum(max(0, n - cap) for n in top[:TOP_NETWORKS])


def _less(figures: Figures | None, failures: int, successes: int, fastest: bool) -> Figures | None:
    """`figures` without some failed and some successful loads (those from the fastest
    buckets, or from the slowest): the evidence a few networks added, taken away."""
    if figures is None:
        return None
    failures = min(failures, figures.errors)
    successes = min(successes, figures.successes)
    remaining = figures.successes - successes
    buckets: dict[str, float] = {}
    for key, count in figures.load_seconds.items():
        if key == INF:
            buckets[key] = float(remaining)
        elif fastest:
            buckets[key] = float(max(0.0, count - successes))  # the fastest loads leave every bucket
        else:
            buckets[key] = float(min(count, remaining))  # the slowest leave: buckets cap at what is left
    return Figures(
        loads=figures.loads - failures - successes, errors=figures.errors - failures, load_seconds=buckets
    )


def trimmed(doc: StepDocument, k: int, decision: Decision) -> StepDocument | None:
    """The step with the top networks of look k cut to their allowance, against `decision`."""
    look = doc.looks[k]
    evidence = look.evidence
    if evidence is None or look.canary is None:
        return None
    canary, base = evidence.canary, evidence.baseline
    cf, bf = look.canary, look.baseline
    if decision == "rollback":
        # The failures that make the canary look bad; the baseline's successes that make it look good.
        c = _less(cf, cut(canary.top_failures, cf.errors, canary.failing_networks), 0, True)
        b = bf
        if base is not None and bf is not None:
            b = _less(bf, 0, cut(base.top_successes, bf.successes, base.networks), True)
    else:
        c = _less(cf, 0, cut(canary.top_successes, cf.successes, canary.networks), True)
        b = bf
        if base is not None and bf is not None:
            b = _less(bf, cut(base.top_failures, bf.errors, base.failing_networks), 0, False)
    if c == look.canary and b == look.baseline:
        return None
    looks = list(doc.looks)
    looks[k] = look.model_copy(update={"canary": c, "baseline": b})
    return doc.model_copy(update={"looks": looks[: k + 1]})


def doubt(doc: StepDocument, k: int, decision: Decision, rejudge: Rejudge) -> str | None:
    """Why look k's `decision` (promote or rollback) must be a hold instead, or None."""
    evidence = doc.looks[k].evidence
    if evidence is None or decision not in ("promote", "rollback"):
        return None
    why = split_doubt(evidence, doc.step.weight) or volume_doubt(evidence)
    if why:
        return why
    if (doc.analysis or {}).get("single_network_evidence"):
        return None  # one network is all this deployment has: spread says nothing
    canary = evidence.canary
    if decision == "rollback" and 0 < canary.failing_networks < 2 and canary.top_failures:
        return (
            f"concentrated evidence: failures from {canary.failing_networks} client network of "
            f"{canary.networks}; a rollback needs failures from more than one network (or roll back by hand)"
        )
    smaller = trimmed(doc, k, decision)
    if smaller is not None and rejudge(smaller) != decision:
        outcome = "failures" if decision == "rollback" else "successes"
        side = canary.failing_networks if decision == "rollback" else canary.networks
        return (
            f"concentrated evidence: the {decision} rests on the {outcome} of a few client networks "
            f"({side} of {canary.networks} reporting on the canary); without their excess it would not "
            f"{'roll back' if decision == 'rollback' else 'promote'}"
        )
    return None
