"""Rollout strategies and the plans (weight, bake) they compile to.

Every strategy shares the analysis settings (Argo Rollouts' limits, seed 002's
thresholds); `plan_steps` turns a strategy into the steps RolloutWorkflow runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from skyline.checks import MetricCheck, default_checks


class PlanStep(BaseModel):
    weight: float
    bake_seconds: float


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(gt=0, le=100)
    bake_seconds: float | None = Field(default=None, ge=0, description="overrides the strategy's")


class AnalysisSettings(BaseModel):
    """How a canary is judged (skyline/judge.py); every field has a default a release manager can keep.

    The judge compares the canary with the unit it replaces (the baseline) on
    failed loads and on load time, with anytime-valid bounds, so looking every
    interval costs nothing. Margins say how much worse than the baseline is
    still acceptable; gross margins, how much worse must be ruled out before
    the next weight. Absolute bounds are optional guards: they can fail a
    canary, never pass one alone.
    """

    model_config = ConfigDict(extra="forbid")

    analysis_interval_seconds: float = Field(default=60.0, gt=0)
    analysis_window_seconds: float = Field(
        default=120.0, ge=1, description="{window} of custom value checks' queries"
    )
    error_margin_relative: float = Field(
        default=0.5, ge=0, description="acceptable: canary failure ratio <= baseline x (1 + this) ..."
    )
    error_margin_absolute: float = Field(
        default=0.0005, ge=0, le=1, description="... or baseline + this, whichever is larger"
    )
    latency_margin: float = Field(
        default=0.06,
        gt=0,
        lt=1,
        description="acceptable: share of canary loads slower than the baseline median <= its share + this",
    )
    gross_error_relative: float = Field(default=3.0, ge=0, description="gross harm: errors x (1 + this) ...")
    gross_error_absolute: float = Field(default=0.01, ge=0, le=1, description="... or + this")
    gross_latency_margin: float = Field(default=0.2, gt=0, lt=1, description="gross harm in load time")
    tail_quantiles: list[Annotated[float, Field(gt=0.5, lt=1)]] = Field(
        default_factory=lambda: [0.9, 0.99],
        max_length=4,
        description="the baseline's upper load-time quantiles whose bucket edges the tail checks count "
        "loads beyond ([] turns the tail checks off)",
    )
    tail_margin_relative: float = Field(
        default=0.5,
        ge=0,
        description="acceptable: share of canary loads beyond a tail edge <= the baseline's x (1 + this) ...",
    )
    tail_margin_absolute: float = Field(
        default=0.001, ge=0, le=1, description="... or the baseline's + this, whichever is larger"
    )
    gross_tail_relative: float = Field(
        default=3.0,
        ge=0,
        description="gross harm in the tail: the baseline's share x (1 + this) ...",
    )
    gross_tail_absolute: float = Field(default=0.005, ge=0, le=1, description="... or + this")
    vitals: list[Literal["lcp", "inp", "cls"]] = Field(
        default_factory=list,
        description="web vitals judged like load time's tail, against the baseline's "
        "(needs the loader's web-vitals reports; no figures holds)",
    )
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="optional guard: failed loads / loads"
    )
    max_p99_seconds: float | None = Field(default=None, gt=0, description="optional guard: p99 load time")
    min_requests: float = Field(
        default=50, ge=0, description="canary loads a step needs before it may move on"
    )
    checks: list[MetricCheck] | None = Field(
        default=None, description="replaces the built-in failed-load and load-time comparisons"
    )
    alpha: float = Field(
        default=0.1, gt=0, lt=0.5, description="error rate of the judge's decisions over a whole rollout"
    )
    first_unit_needs_confirmation: bool = Field(
        default=True,
        description="a building's first unit (no baseline) becomes active only when a human promotes it",
    )
    single_network_evidence: bool = Field(
        default=False,
        description="decide on evidence from one client network (a lab or intranet whose browsers all reach "
        "the API from one address, with no trusted proxy to tell them apart); the split and volume checks "
        "still apply (skyline/plausibility.py)",
    )
    failure_limit: int = Field(default=0, ge=0, description="custom value-check breaches tolerated in a row")
    inconclusive_limit: int = Field(
        default=2, ge=0, description="legacy limit, used only by rollouts started before the sequential judge"
    )
    consecutive_error_limit: int = Field(
        default=4, ge=0, description="looks in a row that could not read metrics before holding"
    )
    auto_rollback: bool = Field(default=True, description="on established harm: roll back, else pause")
    health_weights: dict[Literal["error_rate", "latency", "throughput", "user_feedback"], float] | None = (
        Field(default=None, description="seed 000's weights (0.4, 0.3, 0.2, 0.1) unless given")
    )
    min_health_score: float | None = Field(
        default=None, ge=0, le=100, description="legacy: a health score below this fails the analysis"
    )

    def effective_checks(self) -> list[MetricCheck]:
        """The checks of rollouts judged the legacy way (started before the sequential judge)."""
        if self.checks is not None:
            return self.checks
        return default_checks(
            0.01 if self.max_error_rate is None else self.max_error_rate,
            1.0 if self.max_p99_seconds is None else self.max_p99_seconds,
            self.min_requests,
        )


class CanaryStrategy(AnalysisSettings):
    """Explicit steps, each with its own weight and (optionally) bake time."""

    kind: Literal["canary"] = "canary"
    steps: list[float | StepSpec] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])  # type: ignore[arg-type]
    bake_seconds: float = Field(default=600.0, ge=0, description="default observation time per step")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float | StepSpec]) -> list[float | StepSpec]:
        weights = [s.weight if isinstance(s, StepSpec) else s for s in steps]
        if not weights:
            raise ValueError("give at least one step, the last one 100")
        if any(not 0 < w <= 100 for w in weights):
            raise ValueError("every step is a percentage in (0, 100]")
        if any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
            raise ValueError("steps must increase strictly, e.g. [5, 25, 50, 100]")
        if weights[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps


class LinearStrategy(AnalysisSettings):
    """Equal increments (AWS AppConfig's Linear), e.g. 20 % every 6 minutes."""

    kind: Literal["linear"] = "linear"
    step_percent: float = Field(default=20.0, gt=0, le=100)
    bake_seconds: float = Field(default=360.0, ge=0)


class ExponentialStrategy(AnalysisSettings):
    """Growing increments (AWS AppConfig's Exponential): 2, 4, 8, … %, capped at 100."""

    kind: Literal["exponential"] = "exponential"
    start_percent: float = Field(default=2.0, gt=0, le=100)
    factor: float = Field(default=2.0, gt=1)
    bake_seconds: float = Field(default=360.0, ge=0)


class ImmediateStrategy(AnalysisSettings):
    """100 % at once, then a post-release bake with automatic rollback."""

    kind: Literal["immediate"] = "immediate"
    bake_seconds: float = Field(default=600.0, ge=0)


class BlueGreenStrategy(AnalysisSettings):
    """Preview manifest first, then one write switches 0 → 100 %; switching back is one write."""

    kind: Literal["blue_green"] = "blue_green"
    preview_seconds: float = Field(
        default=0.0, ge=0, description="hold on the preview for humans before switching (promote skips)"
    )
    smoke_url: str | None = Field(default=None, description="must answer 2xx before the switch")
    bake_seconds: float = Field(default=600.0, ge=0, description="post-switch bake with auto rollback")


class ABTestStrategy(AnalysisSettings):
    """Two units at a fixed split for a fixed time; a report at the end, no automatic promotion."""

    kind: Literal["ab_test"] = "ab_test"
    split: float = Field(default=50.0, gt=0, lt=100, description="percentage of users on the new unit")
    duration_seconds: float = Field(default=3600.0, gt=0)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "canary"))
    return str(getattr(value, "kind", "canary"))


Strategy = Annotated[
    Annotated[CanaryStrategy, Tag("canary")]
    | Annotated[LinearStrategy, Tag("linear")]
    | Annotated[ExponentialStrategy, Tag("exponential")]
    | Annotated[ImmediateStrategy, Tag("immediate")]
    | Annotated[BlueGreenStrategy, Tag("blue_green")]
    | Annotated[ABTestStrategy, Tag("ab_test")],
    Discriminator(_kind),
]

AnyStrategy = (
    CanaryStrategy
    | LinearStrategy
    | ExponentialStrategy
    | ImmediateStrategy
    | BlueGreenStrategy
    | ABTestStrategy
)


def _grow(weights: list[float]) -> list[float]:
    capped = [min(100.0, round(w, 4)) for w in weights]
    out: list[float] = []
    for w in capped:
        if not out or w > out[-1]:
            out.append(w)
    return out


def plan_steps(strategy: AnyStrategy) -> list[PlanStep]:
    """The weights the workflow sets, in order, each with its bake time."""
    if isinstance(strategy, CanaryStrategy):
        return [
            PlanStep(
                weight=s.weight,
                bake_seconds=strategy.bake_seconds if s.bake_seconds is None else s.bake_seconds,
            )
            if isinstance(s, StepSpec)
            else PlanStep(weight=s, bake_seconds=strategy.bake_seconds)
            for s in strategy.steps
        ]
    if isinstance(strategy, LinearStrategy):
        count = int(-(-100 // strategy.step_percent))  # ceil without floats drifting
        weights = _grow([strategy.step_percent * (i + 1) for i in range(count)])
        return [PlanStep(weight=w, bake_seconds=strategy.bake_seconds) for w in weights]
    if isinstance(strategy, ExponentialStrategy):
        weights = [strategy.start_percent]
        while weights[-1] < 100:
            weights.append(weights[-1] * strategy.factor)
        return [PlanStep(weight=w, bake_seconds=strategy.bake_seconds) for w in _grow(weights)]
    if isinstance(strategy, ImmediateStrategy | BlueGreenStrategy):
        return [PlanStep(weight=100.0, bake_seconds=strategy.bake_seconds)]
    return [PlanStep(weight=strategy.split, bake_seconds=strategy.duration_seconds)]
