"""Release pipelines: one unit version through ordered stages (staging, then production), with gates.

Each stage names apartments (one: a rollout; several: a fleet in batches), the
strategy for them, and what must hold before the next stage starts: a soak
time, verify webhooks that must answer 2xx, and human approvals. A failed
stage stops the line; `on_failure` says whether earlier stages keep the
version or are restored (only where they still hold this pipeline's unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from skyline.manifest import SLUG, SLUG_HELP
from skyline.rollout import HistoryEntry, RolloutSpec, Strict
from skyline.strategies import Strategy
from skyline.text import no_control
from skyline.windows import PromotionWindows, blocked

PipelineState = Literal["progressing", "paused", "succeeded", "failed", "rolled_back"]
StageState = Literal[
    "pending",
    "running",  # its rollout or fleet is under way
    "soaking",
    "verifying",
    "awaiting_approval",
    "succeeded",
    "failed",
    "rolled_back",  # restored after the line stopped
    "skipped",  # never started: the line stopped before it
]
# How far ahead a closed stage looks for its next opening before it fails.
WINDOW_HORIZON_DAYS = 14
# The workflow searches the horizon minute by minute (skyline/windows.py): bounded, so the
# search stays well inside a workflow task (about 0.3 s for 10 windows in 10 zones here).
MAX_STAGE_WINDOWS = 10
Role = Literal["viewer", "deployer", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "deployer": 1, "admin": 2}


class Verify(Strict):
    """A webhook that must answer 2xx before the next stage starts (e.g. an end-to-end suite)."""

    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=20)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return no_control(value)


class Approval(Strict):
    role: Literal["deployer", "admin"] = Field(
        default="deployer", description="the least role of an approver"
    )
    count: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")
    not_starter: bool = Field(
        default=False, description="the person who started the pipeline may not approve"
    )
    expires_seconds: float = Field(
        default=86_400, gt=0, le=30 * 86_400, description="the request stands this long, then the stage fails"
    )


class Stage(Strict):
    name: str
    apartments: list[str] = Field(min_length=1, max_length=500)
    strategy: Strategy | None = Field(default=None, description="None: the pipeline's strategy")
    batch_size: int = Field(default=1, ge=1, le=100, description="fleet stages: apartments per batch")
    batch_pause_seconds: float = Field(default=0, ge=0)
    soak_seconds: float = Field(default=0, ge=0, le=7 * 86_400, description="hold after the rollout")
    verify: list[Verify] = Field(default_factory=list, max_length=10)
    approval: Approval | None = None
    window: PromotionWindows | None = Field(
        default=None,
        description=(
            "release windows and freezes for starting this stage, the shape of an apartment's"
            " `promotion_windows`: {release: [{days, start, end, timezone}], freeze: [{start_day,"
            " start, end_day, end, timezone}]}; a freeze wins, no release windows means always open."
            " While closed the stage waits (pending, `waiting_for` says why) until the next opening;"
            f" none within {WINDOW_HORIZON_DAYS} days fails the stage"
        ),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"must be {SLUG_HELP} characters (got {value!r})")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: PromotionWindows | None) -> PromotionWindows | None:
        if value is not None and len(value.release) + len(value.freeze) > MAX_STAGE_WINDOWS:
            raise ValueError(f"at most {MAX_STAGE_WINDOWS} release and freeze windows per stage")
        return value

    @field_validator("apartments")
    @classmethod
    def _apartments(cls, value: list[str]) -> list[str]:
        for apartment in value:
            if not SLUG.match(apartment):
                raise ValueError(f"apartment {apartment!r} must be {SLUG_HELP} characters")
        if len(set(value)) != len(value):
            raise ValueError("apartments are listed twice")
        return value


class PipelineSpec(RolloutSpec):
    """A RolloutSpec (the version and its bundle) plus the stages it goes through. `apartment` is ignored."""

    apartment: str = "pipeline"
    stages: list[Stage] = Field(min_length=1, max_length=20)
    on_failure: Literal["keep", "restore"] = Field(
        default="keep", description="what earlier stages do when a later one fails"
    )

    @model_validator(mode="after")
    def _distinct(self) -> PipelineSpec:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("stage names are listed twice")
        seen: set[str] = set()
        for stage in self.stages:
            twice = seen & set(stage.apartments)
            if twice:
                raise ValueError(f"apartments {sorted(twice)} are in two stages")
            seen |= set(stage.apartments)
        return self


def pipeline_id_for(building: str, unit_id: str) -> str:
    """One pipeline per unit and building at a time."""
    return f"pipeline.{building}.{unit_id}"


def stage_fleet_id(pipeline_id: str, stage: str) -> str:
    return f"{pipeline_id}.{stage}"


class PipelineInput(Strict):
    pipeline_id: str
    spec: PipelineSpec


class ApprovalRecord(Strict):
    actor: str
    role: str
    at: datetime
    reason: str = ""


class StageStatus(Strict):
    name: str
    apartments: list[str]
    kind: Literal["rollout", "fleet"]
    child_id: str
    state: StageState = "pending"
    child_state: str | None = Field(default=None, description="how its rollout or fleet ended")
    reason: str | None = None
    waiting_for: str | None = None
    soak_until: datetime | None = None
    verified: list[str] = Field(default_factory=list, description="the verify webhooks that answered 2xx")
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    approval_expires_at: datetime | None = None
    live: list[str] = Field(default_factory=list, description="apartments this stage gave the new unit")
    base_revisions: dict[str, int] = Field(
        default_factory=dict, description="each apartment's manifest revision before this stage wrote"
    )


class PipelineStatus(Strict):
    pipeline_id: str
    unit_id: str
    version: str
    building: str
    started_by: str
    state: PipelineState
    stage: int = Field(default=-1, description="index of the stage running or last run")
    stages: list[StageStatus]
    on_failure: Literal["keep", "restore"] = "keep"
    paused_reason: str | None = None
    reason: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime


def approval_problem(
    approval: Approval,
    *,
    starter: str,
    approvals: list[ApprovalRecord],
    actor: str,
    role: str,
    verified: bool,
) -> str | None:
    """Why this approval is refused, or None when it counts."""
    if not verified:
        return "an approval needs a verified actor: approve through the Skyline API, not a Temporal client"
    if ROLE_RANK.get(role, -1) < ROLE_RANK[approval.role]:
        return f"{actor} has role {role}; this approval needs {approval.role} or higher"
    if approval.not_starter and actor == starter:
        return f"{actor} started this pipeline; this stage needs an approval by someone else"
    if any(a.actor == actor for a in approvals):
        return f"{actor} has approved this stage already; it needs {approval.count} distinct approvers"
    return None


@dataclass(frozen=True)
class WindowCheck:
    """What a stage about to start does about its release window."""

    action: Literal["start", "wait", "fail"]
    reason: str = ""  # why it waits or fails: the freeze or the window, and when it opens
    until: datetime | None = None  # when to look again (the next opening), for "wait"


def window_check(at: datetime, window: PromotionWindows | None) -> WindowCheck:
    """Start now, wait until the next opening, or fail: no window opens within the horizon."""
    if window is None:
        return WindowCheck("start")
    closed = blocked(at, window, WINDOW_HORIZON_DAYS)
    if closed is None:
        return WindowCheck("start")
    if closed.next_opens is None:
        return WindowCheck("fail", closed.reason)
    return WindowCheck("wait", closed.reason, closed.next_opens)
