"""Rollout request, strategy and status models shared by API, workflow and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skyline.manifest import SLUG, SLUG_HELP, Framework, Unit, unit_key

RolloutState = Literal[
    "publishing", "progressing", "paused", "promoting", "rolled_back", "succeeded", "failed"
]
TERMINAL_STATES: frozenset[str] = frozenset({"rolled_back", "succeeded", "failed"})
Verdict = Literal["pass", "fail", "inconclusive"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CanaryStrategy(Strict):
    """Traffic steps with a bake (observation) period and analysis at each."""

    kind: Literal["canary"] = "canary"
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    bake_seconds: float = Field(default=600.0, ge=0, description="observation time per step")
    analysis_interval_seconds: float = Field(default=60.0, gt=0)
    analysis_window_seconds: float = Field(
        default=120.0, ge=1, description="range of the PromQL rate() windows"
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="failed loads / loads")
    max_p99_seconds: float = Field(default=1.0, gt=0, description="p99 bundle load time")
    min_requests: float = Field(
        default=1, ge=0, description="fewer loads in the window than this is inconclusive"
    )
    inconclusive_limit: int = Field(
        default=2, ge=0, description="consecutive inconclusive analyses tolerated before pausing"
    )
    auto_rollback: bool = Field(default=True, description="on failed analysis: roll back, else pause")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float]) -> list[float]:
        if not steps:
            raise ValueError("give at least one step, the last one 100")
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("every step is a percentage in (0, 100]")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("steps must increase strictly, e.g. [5, 25, 50, 100]")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps


class BundleSource(Strict):
    """Exactly one of: a directory on the worker's filesystem, or an uploaded archive."""

    path: str | None = Field(default=None, description="directory path readable by the worker")
    upload_id: str | None = Field(default=None, description="id returned by POST /bundles")

    @model_validator(mode="after")
    def _one(self) -> BundleSource:
        if (self.path is None) == (self.upload_id is None):
            raise ValueError("give exactly one of bundle.path or bundle.upload_id")
        return self


class RolloutSpec(Strict):
    """What a release manager asks for (body of POST /rollouts)."""

    apartment: str
    building: str
    unit_id: str = Field(description="micro-frontend id; the build's manifest id is <unit_id>@<version>")
    version: str
    bundle: BundleSource
    entry: str = Field(default="index.js", description="entry module, relative to the bundle root")
    framework: Framework = "react"
    dependencies: list[str] = Field(default_factory=list)
    compatibility: str = "*"
    strategy: CanaryStrategy = Field(default_factory=CanaryStrategy)
    force: bool = Field(default=False, description="allow a version not greater than the active one")
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)

    @field_validator("apartment", "building", "unit_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"must be {SLUG_HELP} characters (got {value!r})")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not semver.Version.is_valid(value):
            raise ValueError(f"{value!r} is not a SemVer version such as 1.4.2 or 2.0.0-rc.1")
        return value

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or not value:
            raise ValueError("entry must be a relative path inside the bundle, e.g. index.js")
        return value

    @property
    def unit_key(self) -> str:
        return unit_key(self.unit_id, self.version)


def rollout_id_for(apartment: str, building: str) -> str:
    """One rollout per building: the workflow id is derived from both."""
    return f"rollout.{apartment}.{building}"


class RolloutInput(Strict):
    rollout_id: str
    spec: RolloutSpec


class ControlRequest(Strict):
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)


class PromoteRequest(ControlRequest):
    full: bool = False


class CheckResult(Strict):
    name: str
    value: float | None
    bound: float
    comparison: Literal["<=", ">="]
    verdict: Verdict
    detail: str = ""


class AnalysisRun(Strict):
    at: datetime
    step: int
    weight: float
    verdict: Verdict
    checks: list[CheckResult]
    reason: str


class HistoryEntry(Strict):
    at: datetime
    action: str
    actor: str
    reason: str
    state: RolloutState
    step: int
    weight: float
    revision: int | None = None


class RolloutStatus(Strict):
    rollout_id: str
    apartment: str
    building: str
    unit_id: str
    version: str
    state: RolloutState
    steps: list[float]
    step: int = Field(description="index into steps of the current weight, -1 before traffic")
    weight: float
    baseline_unit: str | None = None
    canary: Unit | None = None
    base_revision: int | None = None
    revisions: list[int] = Field(default_factory=list)
    paused_reason: str | None = None
    reason: str | None = None
    last_analysis: AnalysisRun | None = None
    analyses: list[AnalysisRun] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime
