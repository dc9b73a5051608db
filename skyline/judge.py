"""The judge: decides a rollout step from the figures gathered so far. Pure: no I/O, no Temporal.

At every look the workflow asks `judge_look`; `skyline judge replay` asks
`judge_step` for a whole step document. Both say one of:

- `rollback`: harm beyond the margin is established (at any look, however few
  the loads: 40 failures in 40 loads is overwhelming);
- `promote`: only at the end of the bake, when no harm is seen and the evidence
  rules out gross harm (next weight) or harm beyond the margin (last step:
  the canary becomes the active unit);
- `hold`: a human must decide; the reason says what evidence is missing;
- `continue`: keep baking (never a final answer).

Method. Each variant's failed loads, its loads slower than the baseline's
median bucket edge, and its loads slower than the baseline's upper quantile
edges (the tail checks, p90 and p99 by default, with ratio margins) are
Bernoulli streams; their rates get anytime-valid
confidence sequences (skyline/confseq.py, Robbins' beta-binomial mixture,
Howard et al. 2021), so the judge may look as often as it likes. Canary and
baseline are compared by a union bound over their two sequences, checks by
Bonferroni over the check count, and the windows a rollback can be seen in
(the whole rollout, the step, and every "since look j" suffix, weighted
1/((j+1)(j+2)) so that their error budgets sum to a constant) likewise, so the
overall rate of wrong decisions stays under `alpha`. Suffix windows are what
catch a canary that turns bad half-way through a step; promotion also needs
the recent half of the step to rule out harm on its own.

The comparison base is the baseline's evidence pooled over the rollout
(concurrent where it has traffic, the earlier steps' at 100 %), else the
reference figures from before the rollout; a building's first unit has none
and is judged on absolute guards only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats

from skyline import plausibility
from skyline.checks import MetricCheck
from skyline.confseq import Bounds, bounds
from skyline.figures import Figures, StepDocument, total
from skyline.noninferiority import bound_pvalue, difference_pvalue, excess_pvalue, ratio_pvalue
from skyline.rollout import CheckResult, Verdict
from skyline.strategies import AnalysisSettings

Decision = Literal["promote", "rollback", "hold", "continue"]
Basis = Literal["concurrent", "earlier steps", "reference", "none"]

# Fallback guards for a first unit judged with no baseline and no guards set.
FIRST_UNIT_MAX_ERROR_RATE = 0.05
MIN_BASE_SUCCESSES = 20  # a latency comparison needs a baseline median to compare with
SEED_P99_SECONDS = 1.0  # the deployment specification's rule: roll back a p99 over one second
SUFFIX_STARTS = 12  # at most this many "since look j" windows per look (geometric spacing)


@dataclass
class LookDecision:
    decision: Decision
    reason: str
    basis: Basis
    checks: list[CheckResult] = field(default_factory=list)
    missing: str | None = None


@dataclass
class StepVerdict:
    decision: Literal["promote", "rollback", "hold"]
    decided_at_look: int | None
    reason: str
    basis: Basis
    checks: list[CheckResult] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "decided_at_look": self.decided_at_look,
            "reason": self.reason,
            "basis": self.basis,
            "checks": [c.model_dump(exclude_defaults=True) for c in self.checks],
        }


def settings_of(doc: StepDocument) -> AnalysisSettings:
    return AnalysisSettings.model_validate(doc.analysis or {})


# ----- the comparisons -----------------------------------------------------------------


@dataclass
class Proportion:
    """One check reduced to bad / trials: the canary's rate against the base's, with margins.

    Harm beyond the margin: canary rate > base rate + max(base rate x relative, absolute).
    Without a base, only `guard` (an absolute bound on the canary's rate) applies.
    """

    name: str
    relative: float
    absolute: float
    gross_relative: float
    gross_absolute: float
    base_rate: float | None
    base_n: int = 0
    guard: float | None = None
    # The bucket edge a load-time check counts loads slower than (None: failed loads).
    edge: float | None = None
    # How "worse" is measured: a ratio of rates (failed loads, the tail beyond an
    # upper edge: rare events, judged relative to the baseline's own rate) or a
    # difference of shares (the median edge: a share near one half).
    kind: Literal["ratio", "difference"] = "ratio"
    subject: str = "failed loads"
    vital: str | None = None  # a web vital's histogram instead of the load times
    bucket: str = "median"  # which of the baseline's quantiles `edge` stands for

    def threshold(self, base_rate: float, gross: bool = False) -> float:
        if gross:
            return _harm_threshold(base_rate, self.gross_relative, self.gross_absolute)
        return _harm_threshold(base_rate, self.relative, self.absolute)

    @property
    def harm(self) -> float:
        if self.base_rate is None:
            return self.guard if self.guard is not None else 1.0
        return self.threshold(self.base_rate)


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _harm_threshold(rate: float, relative: float, absolute: float) -> float:
    return min(1.0, rate + max(rate * relative, absolute))


def _latency_edge(base: Figures, canary: Figures) -> float | None:
    """The bucket edge closest to the base's median load time, present in both histograms."""
    if base.successes < MIN_BASE_SUCCESSES:
        return None
    common = [e for e in base.edges() if any(math.isclose(e, c) for c in canary.edges())]
    best: tuple[float, float] | None = None
    for edge in common:
        share_slower = base.slower_than(edge) / base.successes
        distance = abs(share_slower - 0.5)
        # An edge every base load is slower than shows nothing; one none is slower
        # than still shows a canary that got slower (a baseline in one bucket).
        if share_slower < 1 and (best is None or distance < best[0]):
            best = (distance, edge)
    return best[1] if best else None


latency_edge = _latency_edge  # public: the A/B report compares load times the same way


def _guard_edge(figures: Figures, bound: float) -> float | None:
    """The first bucket edge at or above `bound` (a bound a rounding error above an edge is that edge)."""
    candidates = [e for e in figures.edges() if e >= bound - 1e-12]
    return min(candidates) if candidates else None


def _counts(check: Proportion, figures: Figures) -> tuple[int, int]:
    if check.name == "error_rate":
        return figures.errors, figures.loads
    if check.vital is not None:
        figures = figures.vitals.get(check.vital, Figures())
    if check.edge is None:
        return 0, 0
    return figures.slower_than(check.edge), figures.successes


def _tail_edges(
    base: Figures, canary: Figures, quantiles: list[float], median: float
) -> list[tuple[float, float]]:
    """(quantile, edge): for each upper quantile q of the base, the lowest bucket edge at or above it.

    That is the first edge (above the median edge, present in both histograms)
    that at most 1 - q of the base's loads are slower than. With coarse buckets
    it may be well beyond the quantile, even beyond every base load: loads past
    it are then rarer still for the base, and a tail that reaches it stands out
    the more (the margin's absolute floor judges a share near zero). A higher
    quantile whose edge a lower one took gets the next edge up.
    """
    if base.successes < MIN_BASE_SUCCESSES:
        return []
    common = [e for e in base.edges() if e > median and any(math.isclose(e, c) for c in canary.edges())]
    out: list[tuple[float, float]] = []
    for q in sorted(quantiles):
        above = out[-1][1] if out else median
        edge = next(
            (e for e in common if e > above and base.slower_than(e) <= (1 - q) * base.successes), None
        )
        if edge is not None:
            out.append((q, edge))
    return out


# ----- one look ------------------------------------------------------------------------


@dataclass
class _Context:
    settings: AnalysisSettings
    doc: StepDocument
    k: int  # index of the look being judged
    canary_step: Figures
    canary_all: Figures
    base: Figures | None
    basis: Basis
    edge: float | None
    tail_edges: list[tuple[float, float]]  # (baseline quantile, bucket edge) of the tail checks
    prior: list[tuple[int, Figures]]  # (index, canary figures) of earlier usable looks in this step


def _context(doc: StepDocument, k: int, settings: AnalysisSettings) -> _Context | None:
    look = doc.looks[k]
    if not look.usable or look.canary is None:
        return None
    earlier_canary = total([e.canary for e in doc.earlier])
    earlier_base = total([e.baseline for e in doc.earlier])
    current_base = look.baseline if look.baseline is not None and look.baseline.loads > 0 else None
    base: Figures | None
    basis: Basis
    if current_base is not None:
        base, basis = earlier_base.plus(current_base), "concurrent"
    elif earlier_base.loads > 0:
        # no concurrent baseline (the 100 % step): all of its evidence from before
        base, basis = earlier_base.plus(doc.reference), "earlier steps"
    elif doc.reference is not None and doc.reference.loads > 0:
        base, basis = doc.reference, "reference"
    else:
        base, basis = None, "none"
    canary_all = earlier_canary.plus(look.canary)
    edge = _latency_edge(base, canary_all) if base is not None else None
    tails = (
        _tail_edges(base, canary_all, settings.tail_quantiles, edge)
        if base is not None and edge is not None
        else []
    )
    prior = [(j, lk.canary) for j, lk in enumerate(doc.looks[:k]) if lk.usable and lk.canary is not None]
    return _Context(settings, doc, k, look.canary, canary_all, base, basis, edge, tails, prior)


def _quantile_label(q: float) -> str:
    """0.9 -> "90", 0.99 -> "99", 0.999 -> "99.9"."""
    return f"{100 * q:.4g}"


def _proportions(ctx: _Context, alpha: float) -> list[Proportion]:
    s = ctx.settings
    out: list[Proportion] = []
    base = ctx.base
    if base is not None:
        out.append(
            Proportion(
                "error_rate",
                s.error_margin_relative,
                s.error_margin_absolute,
                s.gross_error_relative,
                s.gross_error_absolute,
                base.errors / base.loads,
                base.loads,
                s.max_error_rate,
            )
        )
        if ctx.edge is not None:
            slow, n = base.slower_than(ctx.edge), base.successes
            out.append(
                Proportion(
                    "load_time",
                    0.0,
                    s.latency_margin,
                    0.0,
                    s.gross_latency_margin,
                    slow / n,
                    n,
                    edge=ctx.edge,
                    kind="difference",
                    subject="loads slower than the baseline's median",
                )
            )
        out += _vital_tails(ctx)
        for q, edge in ctx.tail_edges:
            slow, n = base.slower_than(edge), base.successes
            out.append(
                Proportion(
                    f"load_tail_p{_quantile_label(q)}",
                    tail_margin(s.tail_margin_relative, q),
                    s.tail_margin_absolute,
                    s.gross_tail_relative,
                    s.gross_tail_absolute,
                    slow / n,
                    n,
                    edge=edge,
                    subject=f"loads slower than {edge:g}s (the baseline's p{_quantile_label(q)} bucket)",
                    bucket=f"p{_quantile_label(q)}",
                )
            )
    else:
        guard = s.max_error_rate if s.max_error_rate is not None else FIRST_UNIT_MAX_ERROR_RATE
        out.append(Proportion("error_rate", 0.0, 0.0, 0.0, 0.0, None, 0, guard))
    return out


def tail_margin(relative: float, q: float) -> float:
    """The relative margin at the baseline's q edge: `relative` at p90, growing further out.

    Scaled by sqrt(0.1 / (1 - q)) (p95 x1.41, p99 x3.16): the share beyond an
    edge shrinks tenfold from p90 to p99, and with it the loads that can show a
    ratio; a tail regression moves the far shares by much more than that
    (loads 3x slower or more land beyond them), so the far edges still catch it,
    and a good canary needs no more loads there than at p90 to be promoted.
    """
    return relative * math.sqrt(0.1 / (1 - q))


def _vital_tails(ctx: _Context) -> list[Proportion]:
    """The tail checks of every web vital the rollout judges, on its histograms: the same rules."""
    s = ctx.settings
    assert ctx.base is not None
    out: list[Proportion] = []
    for vital in s.vitals:
        base = ctx.base.vitals.get(vital, Figures())
        canary = ctx.canary_all.vitals.get(vital, Figures())
        median = _latency_edge(base, canary)
        for q, edge in _tail_edges(base, canary, s.tail_quantiles, median) if median is not None else []:
            slow, n = base.slower_than(edge), base.successes
            label = _quantile_label(q)
            out.append(
                Proportion(
                    f"{vital}_tail_p{label}",
                    tail_margin(s.tail_margin_relative, q),
                    s.tail_margin_absolute,
                    s.gross_tail_relative,
                    s.gross_tail_absolute,
                    slow / n,
                    n,
                    edge=edge,
                    subject=f"pages with {vital.upper()} over {edge:g} (the baseline's p{label} bucket)",
                    bucket=f"p{label}",
                    vital=vital,
                )
            )
    return out


def _vitals_missing(ctx: _Context, checks: list[Proportion]) -> str | None:
    """A vital the rollout judges but that has no tail check (no figures to compare): never a pass."""
    judged = {c.vital for c in checks if c.vital is not None}
    missing = [v for v in ctx.settings.vitals if v not in judged]
    if not missing or ctx.base is None:
        return None
    return (
        f"{', '.join(v.upper() for v in missing)}: not enough web-vitals reports from both variants "
        "to compare their tails (is the loader's vitals report on?)"
    )


def _windows(ctx: _Context) -> list[tuple[str, Figures, float]]:
    """(label, canary figures, share of the rollback error budget) for every window."""
    windows: list[tuple[str, Figures, float]] = [
        ("rollout", ctx.canary_all, 0.25),
        ("step", ctx.canary_step, 0.25),
    ]
    count = len(ctx.prior)
    picked: list[int] = []
    offset = 1
    while offset <= count and len(picked) < SUFFIX_STARTS:
        picked.append(count - offset)
        offset *= 2
    for position in picked:
        j, figures = ctx.prior[position]
        weight = 0.5 / ((j + 1) * (j + 2))
        windows.append((f"since look {j}", ctx.canary_step.minus(figures), weight))
    return windows


def _established_harm(ctx: _Context, checks: list[Proportion], alpha: float) -> str | None:
    """Why harm beyond the margin is established in some window, or None."""
    per_check = alpha / max(1, len(checks))
    for check in checks:
        for label, figures, share in _windows(ctx):
            a = per_check * share
            bad, n = _counts(check, figures)
            if n == 0:
                continue
            canary = bounds(bad, n, a / 2)
            what = f"{check.name}: canary {_pct(bad / n)} of {n} loads ({label})"
            if check.base_rate is not None:
                threshold = check.threshold(_base_bounds(check, ctx, a / 2).upper)
                if canary.lower > threshold:
                    return f"{what} is established above {_pct(threshold)}, the margin over the baseline"
            if check.guard is not None and canary.lower > check.guard:
                return f"{what} is established above the guard {_pct(check.guard)}"
    return None


def _base_bounds(check: Proportion, ctx: _Context, alpha: float) -> Bounds:
    """The base's bounds for this check at level alpha."""
    assert ctx.base is not None
    bad, n = _counts(check, ctx.base)
    return bounds(bad, n, alpha)


def _p99_guard(ctx: _Context, alpha: float) -> str | None:
    """The p99 guard: roll back once more than 1 % of the step's canary loads are established slower.

    Set (`max_p99_seconds`), it is absolute, as asked. Unset, it is the seed's
    rule ("p99 load time over one second") made relative: it guards only where
    the baseline itself keeps its p99 under one second (established, more than
    99 % of its loads at or under the edge); a baseline already slower than that
    would fail every canary, and its tail is judged by the tail checks against
    the baseline instead.
    """
    explicit = ctx.settings.max_p99_seconds
    bound = explicit if explicit is not None else SEED_P99_SECONDS
    edge = _guard_edge(ctx.canary_step, bound)
    if edge is None:
        return None
    if explicit is None and not _base_p99_under(ctx, edge, alpha):
        return None
    slow, n = ctx.canary_step.slower_than(edge), ctx.canary_step.successes
    if n and bounds(slow, n, alpha / 2).lower > 0.01:
        guard = f"guard {bound:g}s" if explicit is not None else f"the baseline's p99 is under {bound:g}s"
        return f"p99_load_seconds: more than 1% of {n} canary loads are slower than {edge:g}s ({guard})"
    return None


def _base_p99_under(ctx: _Context, edge: float, alpha: float) -> bool:
    base = ctx.base
    if base is None or base.successes == 0 or not any(math.isclose(edge, e) for e in base.edges()):
        return False
    return bounds(base.slower_than(edge), base.successes, alpha / 2).upper < 0.01


def _custom_guards(ctx: _Context) -> str | None:
    """Custom value checks are guards: a breach at more than failure_limit looks in a row fails."""
    checks = [c for c in (ctx.settings.checks or []) if c.kind != "ratio" and not c.dry_run]
    for check in checks:
        streak = 0
        for look in ctx.doc.looks[: ctx.k + 1]:
            reading = look.checks.get(check.name)
            value = reading.canary.value if reading else None
            if value is not None and _breaches(check, value):
                streak += 1
            else:
                streak = 0
        if streak > ctx.settings.failure_limit:
            return f"{check.name}: {_value_detail(check, ctx)} at {streak} looks in a row"
    return None


def _value_results(ctx: _Context) -> list[CheckResult]:
    """Every custom value/samples check's reading at this look, dry-run ones included."""
    out: list[CheckResult] = []
    for check in ctx.settings.checks or []:
        if check.kind == "ratio":
            continue
        reading = ctx.doc.looks[ctx.k].checks.get(check.name)
        value = reading.canary.value if reading else None
        base = reading.baseline.value if reading and reading.baseline else None
        verdict: Verdict = "inconclusive" if value is None else "fail" if _breaches(check, value) else "pass"
        out.append(
            CheckResult(
                name=check.name,
                value=value,
                baseline=base,
                bound=check.max if check.max is not None else check.min,
                comparison="<=" if check.max is not None else ">=",
                verdict=verdict,
                dry_run=check.dry_run,
                detail="guard" + (" (dry run: never decides)" if check.dry_run else ""),
            )
        )
    return out


def _breaches(check: MetricCheck, value: float) -> bool:
    if not math.isfinite(value):
        return False
    return (check.max is not None and value > check.max) or (check.min is not None and value < check.min)


def _value_detail(check: MetricCheck, ctx: _Context) -> str:
    reading = ctx.doc.looks[ctx.k].checks.get(check.name)
    value = reading.canary.value if reading else None
    bound = f"> {check.max:g}" if check.max is not None else f"< {check.min:g}"
    return f"{value:.4g} {bound}" if value is not None else f"outside {bound}"


def _custom_ratio(ctx: _Context, alpha: float) -> tuple[list[str], list[str], list[CheckResult]]:
    """Custom ratio checks: the same sequential test on bad/total. (harm, unexcluded, results)."""
    harms: list[str] = []
    open_: list[str] = []
    results: list[CheckResult] = []
    checks = [c for c in (ctx.settings.checks or []) if c.kind == "ratio" and not c.dry_run]
    for check in checks:
        reading = ctx.doc.looks[ctx.k].checks.get(check.name)
        if reading is None or reading.canary.total is None:
            open_.append(f"{check.name}: no data")
            continue
        n = round(reading.canary.total)
        bad = min(n, round(reading.canary.bad or 0))
        canary = bounds(bad, n, alpha / 2) if n else Bounds(0, 1, None, 0)
        base_reading = reading.baseline
        limit = check.max
        if base_reading is not None and base_reading.total and check.tolerance is not None:
            bn = round(base_reading.total)
            bb = min(bn, round(base_reading.bad or 0))
            base = bounds(bb, bn, alpha / 2)
            relative = base.upper * (1 + check.tolerance)
            limit = relative if limit is None else min(limit, relative)
            low = base.lower * (1 + check.tolerance)
        else:
            low = limit if limit is not None else 1.0
        verdict: Verdict = "pass"
        if limit is not None and canary.lower > limit:
            harms.append(f"{check.name}: {_pct(bad / n)} of {n} established above {_pct(limit)}")
            verdict = "fail"
        elif limit is None:
            # only a relative bound and no baseline figures: nothing to judge against, never a pass
            open_.append(f"{check.name}: no baseline figures to compare {bad}/{n} with")
            verdict = "inconclusive"
        elif n == 0 or canary.upper > low:
            open_.append(f"{check.name}: {bad}/{n} does not yet rule out more than {_pct(low)}")
            verdict = "inconclusive"
        results.append(
            CheckResult(
                name=check.name,
                value=bad / n if n else None,
                bound=limit,
                samples=n,
                verdict=verdict,
                lower=canary.lower,
                upper=canary.upper,
            )
        )
    return harms, open_, results


def _plausible(ctx: _Context) -> str | None:
    """Canary volume far above its traffic share is forged or broken traffic, never evidence."""
    look = ctx.doc.looks[ctx.k]
    base = look.baseline
    weight = ctx.doc.step.weight
    if base is None or base.loads == 0 or weight >= 100 or ctx.canary_step.loads + base.loads < 100:
        return None
    share = ctx.canary_step.loads / (ctx.canary_step.loads + base.loads)
    limit = min(1.0, 2 * weight / 100 + 0.05)
    if share > limit:
        return (
            f"canary volume is implausible: {_pct(share)} of loads at a {weight:g}% traffic share "
            "(forged or duplicated beacons?); not evidence either way"
        )
    return None


def _excluded(ctx: _Context, checks: list[Proportion], alpha: float, final: bool) -> tuple[bool, str | None]:
    """Does the evidence rule out harm (last step) or gross harm (other steps)? Fixed-sample tests."""
    # The last step must also rule out gross harm on its own evidence, so a
    # canary that turned bad at 100 % is not promoted on the strength of its
    # earlier steps (harm within the step is the rollback windows' job).
    windows = [("rollout", ctx.canary_all, final)]
    if final and ctx.doc.earlier:
        windows.append(("step", ctx.canary_step, False))
    # Promotion needs every check in every window to rule harm out: an
    # intersection-union test (Berger 1982), whose level is that of each part, so
    # alpha is not divided among the checks and windows (a canary harmful in one
    # check is promoted only if that check's own test errs, at most alpha).
    per = alpha
    for check in checks:
        for label, figures, strict in windows:
            bad, n = _counts(check, figures)
            problem = _not_ruled_out(ctx, check, bad, n, per, strict, label)
            if problem:
                return False, problem
    return True, None


def _turned_worse(ctx: _Context, checks: list[Proportion], alpha: float) -> str | None:
    """Is the canary's second half of the step worse than its first half? (late onset)"""
    if ctx.k < 1:
        return None
    half = (ctx.k + 1) // 2
    middle = next((f for j, f in ctx.prior if j >= half - 1), None)
    if middle is None:
        return None
    early, late = middle, ctx.canary_step.minus(middle)
    per = alpha / max(1, len(checks))
    for check in checks:
        x_e, n_e = _counts(check, early)
        x_l, n_l = _counts(check, late)
        if n_e == 0 or n_l == 0:
            continue
        # worse beyond the margin, not merely different: large steps see tiny drifts
        if check.kind == "ratio":
            ratio = check.threshold((x_e + 0.5) / (n_e + 1)) / ((x_e + 0.5) / (n_e + 1))
            p = excess_pvalue(x_l, n_l, x_e, n_e, ratio)
        else:
            p = difference_pvalue(x_e, n_e, x_l, n_l, -check.absolute)
        if p < per:
            return (
                f"{check.name}: the canary got worse during the step ({_pct(x_e / n_e)} of {n_e} loads, "
                f"then {_pct(x_l / n_l)} of {n_l}); watch longer or roll back"
            )
    return None


def _not_ruled_out(
    ctx: _Context, check: Proportion, bad: int, n: int, alpha: float, final: bool, label: str
) -> str | None:
    where = "over the rollout" if label == "rollout" else "in this step"
    what = "harm beyond the margin" if final else "gross harm"
    if n == 0:
        return f"{check.name}: no canary loads {where} to rule out {what}"
    rate = bad / n
    if check.base_rate is None:
        limit = check.harm
        p = bound_pvalue(bad, n, limit)
        what = f"more than the guard {_pct(limit)}"
    elif check.kind == "ratio":
        assert ctx.base is not None
        x_b, n_b = _counts(check, ctx.base)
        rate_b = (x_b + 0.5) / (n_b + 1)
        limit = check.threshold(rate_b, gross=not final)
        relative = check.gross_relative if not final else check.relative
        if limit - rate_b > relative * rate_b * 1.0001:
            # The absolute floor dominates (a rarely failing baseline): the
            # difference of the two rates against the floor, both samples' noise
            # in one test (Agresti-Caffo), rather than the canary against the floor
            # over the base's lower bound, which spends alpha twice.
            floor = check.gross_absolute if not final else check.absolute
            limit = min(1.0, x_b / n_b + floor)
            p = difference_pvalue(bad, n, x_b, n_b, floor)
        else:
            p = ratio_pvalue(bad, n, x_b, n_b, limit / rate_b)
    else:
        assert ctx.base is not None
        x_b, n_b = _counts(check, ctx.base)
        margin = check.absolute if final else check.gross_absolute
        limit = min(1.0, x_b / n_b + margin)
        p = difference_pvalue(bad, n, x_b, n_b, margin)
    # A canary observed at or above the limit never has harm ruled out (a Wald test
    # on five loads could say otherwise).
    if p < alpha and rate < limit:
        return None
    subject = check.subject
    if rate >= limit:
        return (
            f"{check.name}: the canary's {subject} ({_pct(rate)} of {n}) are at or above {_pct(limit)} "
            f"{where}: harm not ruled out, not yet established; watch longer or roll back"
        )
    # The test's z grows with the square root of the loads: a rough but honest estimate.
    z_needed, z_now = stats.norm.isf(alpha), stats.norm.isf(max(p, 1e-300))
    more = (
        f"about {max(1, math.ceil(n * ((z_needed / z_now) ** 2 - 1))):,} more canary loads"
        if z_now > 0.1
        else "many more canary loads"
    )
    return f"{check.name}: {more} {where} to rule out {what} ({_pct(rate)} now, limit {_pct(limit)})"


def _results(ctx: _Context, checks: list[Proportion], alpha: float) -> list[CheckResult]:
    out: list[CheckResult] = []
    for check in checks:
        bad, n = _counts(check, ctx.canary_all)
        canary = bounds(bad, n, alpha / 2) if n else Bounds(0.0, 1.0, None, 0)
        base_rate = check.base_rate
        detail = f"canary {_pct(bad / n)} of {n}" if n else "no canary loads"
        if check.edge is not None:
            over = (
                f"{check.vital.upper()} over {check.edge:g}"
                if check.vital
                else f"slower than {check.edge:g}s"
            )
            detail += f" {over} (the baseline's {check.bucket} bucket)"
        if base_rate is not None:
            detail += f" vs baseline {_pct(base_rate)} ({ctx.basis})"
        out.append(
            CheckResult(
                name=check.name,
                value=bad / n if n else None,
                baseline=base_rate,
                bound=check.harm,
                samples=n,
                baseline_samples=check.base_n if check.base_rate is not None else None,
                verdict="pass",
                lower=canary.lower,
                upper=canary.upper,
                detail=detail,
            )
        )
    return out


def quantile(figures: Figures, q: float) -> float | None:
    """Prometheus' histogram_quantile on one variant's buckets (linear within a bucket)."""
    edges = figures.edges()
    total_ok = figures.successes
    if not edges or total_ok <= 0:
        return None
    rank = q * total_ok
    previous_edge, previous_count = 0.0, 0.0
    for edge in edges:
        count = total_ok - figures.slower_than(edge)
        if count >= rank:
            span = count - previous_count
            share = (rank - previous_count) / span if span > 0 else 1.0
            return previous_edge + (edge - previous_edge) * share
        previous_edge, previous_count = edge, count
    return edges[-1]


def _p99_result(ctx: _Context) -> CheckResult:
    """Informational, never decides: the canary's p99 load time this step (for people, the health score)."""
    value = quantile(ctx.canary_step, 0.99)
    base = quantile(ctx.base, 0.99) if ctx.base is not None else None
    return CheckResult(
        name="p99_load_seconds",
        value=value,
        baseline=base,
        bound=ctx.settings.max_p99_seconds,
        samples=ctx.canary_step.successes,
        verdict="pass" if value is not None else "inconclusive",
        dry_run=True,
        detail="informational; load time is judged against the baseline by load_time",
    )


def judge_look(doc: StepDocument, k: int, settings: AnalysisSettings | None = None) -> LookDecision:
    """The decision at look k of the step (0-based), from the looks up to and including k;
    a promotion or rollback on implausible or concentrated evidence is a hold (skyline/plausibility.py)."""
    verdict = _judge_look(doc, k, settings)
    why = plausibility.doubt(doc, k, verdict.decision, lambda d: _judge_look(d, k, settings).decision)
    return LookDecision("hold", why, verdict.basis, verdict.checks, missing=why) if why else verdict


def _judge_look(doc: StepDocument, k: int, settings: AnalysisSettings | None = None) -> LookDecision:
    s = settings or settings_of(doc)
    look = doc.looks[k]
    at_end = look.at_seconds >= doc.step.bake_seconds
    ctx = _context(doc, k, s)
    if ctx is None:
        streak = 0
        for previous in doc.looks[: k + 1]:
            streak = 0 if previous.usable else streak + 1
        why = look.error or "no canary figures"
        if at_end:
            return LookDecision("hold", f"metrics unavailable at the end of the bake: {why}", "none")
        if streak > s.consecutive_error_limit:
            return LookDecision("hold", f"metrics unavailable at {streak} looks in a row: {why}", "none")
        return LookDecision("continue", f"metrics unavailable: {why}", "none")
    custom = s.checks is not None
    checks = [] if custom else _proportions(ctx, s.alpha)
    harm = _established_harm(ctx, checks, s.alpha) if checks else None
    harm = harm or _p99_guard(ctx, s.alpha) or _custom_guards(ctx)
    ratio_harm, ratio_open, ratio_results = _custom_ratio(ctx, s.alpha) if custom else ([], [], [])
    harm = harm or (ratio_harm[0] if ratio_harm else None)
    results = [*_results(ctx, checks, s.alpha), *ratio_results, *_value_results(ctx), _p99_result(ctx)]
    if harm:
        for r in results:
            if r.name == harm.split(":")[0]:
                r.verdict = "fail"
        return LookDecision("rollback", harm, ctx.basis, results)
    if not at_end:
        return LookDecision("continue", "no harm established; baking", ctx.basis, results)
    return _conclude(ctx, checks, ratio_open, results)


def _conclude(
    ctx: _Context, checks: list[Proportion], ratio_open: list[str], results: list[CheckResult]
) -> LookDecision:
    s, doc = ctx.settings, ctx.doc
    final = doc.step.last

    def hold(reason: str) -> LookDecision:
        for r in results:
            if r.verdict == "pass" and not r.dry_run:
                r.verdict = "inconclusive"
        return LookDecision("hold", reason, ctx.basis, results, missing=reason)

    unusable = sum(1 for lk in doc.looks[: ctx.k + 1] if not lk.usable)
    if unusable * 2 > ctx.k + 1:
        return hold(f"metrics were unavailable at {unusable} of {ctx.k + 1} looks; the step was not watched")
    implausible = _plausible(ctx)
    if implausible:
        return hold(implausible)
    if ctx.canary_step.loads < s.min_requests:
        return hold(
            f"only {ctx.canary_step.loads} canary loads in this step, need {s.min_requests:g} "
            "(send traffic, or set min_requests)"
        )
    if ratio_open:
        return hold("; ".join(ratio_open))
    no_vitals = _vitals_missing(ctx, checks) if checks else None
    if no_vitals:
        return hold(no_vitals)
    if checks:
        worse = _turned_worse(ctx, checks, s.alpha / 2)
        if worse:
            return hold(worse)
        ok, missing = _excluded(ctx, checks, s.alpha, final)
        if not ok:
            return hold(missing or "not enough evidence")
    if ctx.basis == "none" and final and s.first_unit_needs_confirmation:
        return hold(
            "first unit of this building: no baseline to compare with, judged on absolute guards only; "
            "promote to confirm it"
        )
    if ctx.basis == "none":
        why = "no baseline: absolute guards hold"
    elif final:
        why = f"no harm beyond the margin, ruled out against the baseline ({ctx.basis})"
    else:
        why = f"no harm seen and gross harm ruled out against the baseline ({ctx.basis})"
    return LookDecision("promote", why, ctx.basis, results)


def judge_step(doc: StepDocument) -> StepVerdict:
    """Replay a step look by look: the first rollback, else the verdict at the end of the bake."""
    settings = settings_of(doc)
    if not doc.looks:
        return StepVerdict("hold", None, "no looks: nothing to judge", "none")
    for k in range(len(doc.looks)):
        result = judge_look(doc, k, settings)
        if result.decision == "rollback":
            return StepVerdict("rollback", k, result.reason, result.basis, result.checks)
        if result.decision == "promote":
            return StepVerdict("promote", k, result.reason, result.basis, result.checks)
        if result.decision == "hold":
            return StepVerdict("hold", None, result.reason, result.basis, result.checks)
    last = judge_look(doc, len(doc.looks) - 1, settings)
    return StepVerdict("hold", None, f"the bake is not over: {last.reason}", last.basis, last.checks)
