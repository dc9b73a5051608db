"""What the judge reads: load figures per variant, looks, and step documents.

This is also the public format of `skyline judge replay` and of a rollout's
`looks` export; fields are only ever added, never renamed.

Figures are cumulative since the step began: loads, failed loads, and the
cumulative histogram of successful loads keyed by Prometheus' `le` label
(`"+Inf"` equals loads - errors). Any bucket bounds are accepted. Optional
`vitals` holds the web vitals' histograms in the same shape (`loads` = pages
that reported the vital, `errors` 0), for rollouts that judge them.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skyline.evidence import Evidence

INF = "+Inf"


class Figures(BaseModel):
    model_config = ConfigDict(extra="ignore")

    loads: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    load_seconds: dict[str, float] = Field(default_factory=dict)
    vitals: dict[str, Figures] = Field(default_factory=dict, description="lcp, inp, cls histograms")

    @field_validator("loads", "errors", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("must be a finite count")
            return max(0, round(value))
        return value

    @field_validator("load_seconds")
    @classmethod
    def _buckets(cls, value: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, count in value.items():
            if key != INF:
                try:
                    bound = float(key)
                except ValueError:
                    raise ValueError(f"bucket key {key!r} is not a number or '+Inf'") from None
                if not math.isfinite(bound):
                    key = INF
            if not math.isfinite(count) or count < 0:
                raise ValueError(f"bucket {key!r} has a count that is not a finite number >= 0")
            out[key] = float(round(count))
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Figures:
        # Prometheus' increase() extrapolates, so counts can disagree by a little;
        # clamp rather than refuse, the judge only ever sees sane figures.
        self.errors = min(self.errors, self.loads)
        return self

    @property
    def successes(self) -> int:
        return self.loads - self.errors

    def edges(self) -> list[float]:
        return sorted(float(k) for k in self.load_seconds if k != INF)

    def slower_than(self, edge: float) -> int:
        """Successful loads slower than `edge` (an upper bucket bound of these figures)."""
        at_or_below = 0.0
        for key, count in self.load_seconds.items():
            if key != INF and math.isclose(float(key), edge, rel_tol=1e-9):
                at_or_below = count
        return max(0, min(self.successes, self.successes - round(at_or_below)))

    def plus(self, other: Figures | None) -> Figures:
        if other is None:
            return self
        keys = set(self.load_seconds) | set(other.load_seconds)
        return Figures(
            loads=self.loads + other.loads,
            errors=self.errors + other.errors,
            load_seconds={k: self.load_seconds.get(k, 0) + other.load_seconds.get(k, 0) for k in keys},
            vitals={
                name: self.vitals.get(name, Figures()).plus(other.vitals.get(name))
                for name in set(self.vitals) | set(other.vitals)
            },
        )

    def minus(self, other: Figures | None) -> Figures:
        """The figures between two looks of the same step (never negative)."""
        if other is None:
            return self
        loads = max(0, self.loads - other.loads)
        # Each look's buckets are read apart from its load counter, and increase() extrapolates
        # each series on its own: a bucket can exceed the successes it belongs to (500 loads
        # "at or below 0.25 s" of 450). Clamp both ends to their own successes before taking the
        # difference, as slower_than does for one look, or a window between two looks with no
        # slow load at either end reads the excess as slow loads (50 of 1,000: a tail check with a
        # baseline of 0 % rolled back a healthy canary on it).
        mine, theirs = self.successes, other.successes
        return Figures(
            loads=loads,
            errors=min(loads, max(0, self.errors - other.errors)),
            load_seconds={
                k: max(0.0, min(v, mine) - min(other.load_seconds.get(k, 0.0), theirs))
                for k, v in self.load_seconds.items()
            },
            vitals={name: v.minus(other.vitals.get(name)) for name, v in self.vitals.items()},
        )


def total(figures: list[Figures | None]) -> Figures:
    out = Figures()
    for f in figures:
        out = out.plus(f)
    return out


class Observed(BaseModel):
    """A custom check's reading for one variant: bad/total for a ratio, value otherwise."""

    model_config = ConfigDict(extra="ignore")

    bad: float | None = None
    total: float | None = None
    value: float | None = None


class CheckFigures(BaseModel):
    model_config = ConfigDict(extra="ignore")

    canary: Observed
    baseline: Observed | None = None


class Look(BaseModel):
    model_config = ConfigDict(extra="ignore")

    at_seconds: float = Field(ge=0)
    canary: Figures | None = None
    baseline: Figures | None = None
    error: str | None = Field(default=None, description="metrics could not be read at this look")
    checks: dict[str, CheckFigures] = Field(default_factory=dict, description="custom checks")
    # Sessions and client networks behind the figures (skyline/plausibility.py); optional.
    evidence: Evidence | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.canary is not None


class StepInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = Field(default=0, ge=0)
    weight: float = Field(gt=0, le=100)
    bake_seconds: float = Field(default=0, ge=0)
    last: bool = False


class EarlierStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    weight: float
    canary: Figures
    baseline: Figures | None = None


class StepDocument(BaseModel):
    """One step of a rollout as the judge sees it (one line of `skyline judge replay`)."""

    model_config = ConfigDict(extra="ignore")

    analysis: dict[str, Any] | None = None
    step: StepInfo
    earlier: list[EarlierStep] = Field(default_factory=list)
    looks: list[Look] = Field(default_factory=list)
    reference: Figures | None = None
