"""Rollout request, strategy and status models shared by API, workflow and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skyline.ab_model import ABReport
from skyline.figures import EarlierStep, Figures, Look, StepDocument, StepInfo
from skyline.manifest import SLUG, SLUG_HELP, Framework, RolloutCriteria, Unit, unit_key
from skyline.strategies import CanaryStrategy, Strategy
from skyline.text import no_control
from skyline.windows import PromotionBlocked

RolloutState = Literal[
    "publishing", "progressing", "paused", "promoting", "rolled_back", "succeeded", "failed"
]
TERMINAL_STATES: frozenset[str] = frozenset({"rolled_back", "succeeded", "failed"})
Verdict = Literal["pass", "fail", "inconclusive", "error"]
WebhookEvent = Literal["pre_rollout", "confirm_promotion", "post_rollout", "rollback"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleSource(Strict):
    """Exactly one of: a directory on the worker's filesystem, or an uploaded archive."""

    path: str | None = Field(default=None, description="directory path readable by the worker")
    upload_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{1,64}$", description="id returned by POST /bundles"
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else no_control(value)

    @model_validator(mode="after")
    def _one(self) -> BundleSource:
        if (self.path is None) == (self.upload_id is None):
            raise ValueError("give exactly one of bundle.path or bundle.upload_id")
        return self


class Webhook(Strict):
    """Called with a JSON description of the rollout; signed with the worker's webhook secret."""

    event: WebhookEvent
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    retries: int = Field(default=3, ge=0, le=20)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return no_control(value)


class Promotion(Strict):
    """`scheduled`: hold after the last step until a Temporal Schedule promotes (in a release window)."""

    mode: Literal["automatic", "scheduled"] = "automatic"
    cron: str | None = Field(
        default=None, description="e.g. '0 10 * * 1-5' creates the schedule with the rollout"
    )
    timezone: str = Field(default="UTC", description="IANA zone the cron is read in")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Asia/Seoul or UTC") from None
    return value


def promotion_schedule_id(rollout_id: str) -> str:
    return f"promote.{rollout_id}"


class RolloutSpec(Strict):
    """What a release manager asks for (body of POST /rollouts)."""

    apartment: str
    building: str
    unit_id: str = Field(description="micro-frontend id; the build's manifest id is <unit_id>@<version>")
    version: str
    bundle: BundleSource
    entry: str = Field(default="index.js", description="entry module, relative to the bundle root")
    framework: Framework | None = Field(
        default=None,
        description="recorded in the manifest; absent: detected from the bundle's package.json or "
        "the entry's imports, else unknown",
    )
    dependencies: list[str] = Field(default_factory=list)
    compatibility: str = "*"
    strategy: Strategy = Field(default_factory=CanaryStrategy)
    targeting: RolloutCriteria | None = Field(
        default=None, description="only these users may receive the new unit (seed 000 RolloutCriteria)"
    )
    webhooks: list[Webhook] = Field(default_factory=list)
    promotion: Promotion = Field(default_factory=Promotion)
    max_duration_seconds: float | None = Field(
        default=None,
        gt=0,
        description="progress deadline of active time (human pauses excluded); default from settings",
    )
    start_at: datetime | None = Field(default=None, description="start later (the building stays reserved)")
    smoke_url: str | None = Field(
        default=None, pattern=r"^https?://", description="must answer 2xx before traffic moves"
    )
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

    @field_validator("smoke_url")
    @classmethod
    def _smoke(cls, value: str | None) -> str | None:
        return None if value is None else no_control(value)

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        no_control(value)
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
    # Set by a fleet rollout: the bundle is published (and checked) once for every apartment.
    prepublished: Unit | None = None


class ControlRequest(Strict):
    actor: str = Field(default="anonymous", max_length=200)
    reason: str = Field(default="", max_length=2000)


class PromoteRequest(ControlRequest):
    full: bool = False


UNVERIFIED = " (via Temporal, actor unverified)"
RequestT = TypeVar("RequestT", bound=ControlRequest)


def via_temporal(req: RequestT) -> RequestT:
    """A control that arrived as a signal: anyone who can reach Temporal can send one, naming anyone.

    The API's updates carry the authenticated actor; signals (the Temporal UI,
    a plain Temporal client) carry whatever the sender typed, so the audit says so.
    """
    if req.actor.endswith(UNVERIFIED):
        return req
    return req.model_copy(update={"actor": f"{req.actor[: 200 - len(UNVERIFIED)]}{UNVERIFIED}"})


class CheckResult(Strict):
    name: str
    value: float | None
    baseline: float | None = None
    bound: float | None = None
    comparison: Literal["<=", ">="] = "<="
    samples: float | None = None
    baseline_samples: float | None = None
    p_value: float | None = None
    lower: float | None = Field(default=None, description="anytime-valid bounds of the canary's rate")
    upper: float | None = None
    verdict: Verdict
    dry_run: bool = False
    detail: str = ""


class AnalysisRun(Strict):
    at: datetime | None = None
    health_score: float | None = None
    health_components: dict[str, float] = Field(default_factory=dict)
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


class StepLooks(Strict):
    """Every look of one step as the judge saw it, and how the step ended."""

    index: int
    weight: float
    bake_seconds: float
    last: bool
    looks: list[Look] = Field(default_factory=list)
    decision: str | None = None
    reason: str | None = None

    def final(self) -> Look | None:
        return next((look for look in reversed(self.looks) if look.usable), None)


MAX_LOOKS_KEPT = 200


def step_documents(
    steps: list[StepLooks], analysis: dict[str, object], reference: Figures | None
) -> list[StepDocument]:
    """A rollout's steps as `skyline judge replay` documents (each with its earlier steps' figures)."""
    docs: list[StepDocument] = []
    earlier: list[EarlierStep] = []
    for step in steps:
        docs.append(
            StepDocument(
                analysis=analysis,
                step=StepInfo(
                    index=step.index, weight=step.weight, bake_seconds=step.bake_seconds, last=step.last
                ),
                earlier=list(earlier),
                looks=step.looks,
                reference=reference,
            )
        )
        final = step.final()
        if final is not None and final.canary is not None and step.decision == "promote":
            earlier.append(EarlierStep(weight=step.weight, canary=final.canary, baseline=final.baseline))
    return docs


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
    strategy: str = "canary"
    paused_reason: str | None = None
    waiting_for: str | None = None
    awaiting: Literal["scheduled_promotion", "decision"] | None = Field(
        default=None, description="what a held rollout waits for (code acts on this, never on the text)"
    )
    reason: str | None = None
    promotion_blocked: PromotionBlocked | None = Field(
        default=None, description="a release freeze or window keeps the scheduled promotion from happening"
    )
    report: str | None = Field(default=None, description="the A/B test report as text")
    ab_report: ABReport | None = Field(
        default=None, description="the A/B test report: effect per check, the better variant, what is missing"
    )
    last_analysis: AnalysisRun | None = None
    analyses: list[AnalysisRun] = Field(default_factory=list)
    looks: list[StepLooks] = Field(default_factory=list, description="every look of the judge, per step")
    reference: Figures | None = Field(default=None, description="the baseline before the rollout")
    basis: str | None = Field(default=None, description="what the canary is compared with")
    analysis: dict[str, object] | None = Field(default=None, description="the judge's settings")
    history: list[HistoryEntry] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime
    # Set by the API, never by the workflow: object storage lost this rollout's apartment.
    storage_warning: str | None = None
