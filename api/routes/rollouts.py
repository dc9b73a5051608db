"""Start, inspect and control rollouts. Each rollout is one RolloutWorkflow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters import search_attributes as search
from adapters.bundles import BundleError, InvalidMfManifest, bundle_entry, resolve_bundle_path
from adapters.consistency import ROLLOUT_PREFIX, apartment_exists, storage_warning
from adapters.manifest_store import rollout_refusal
from adapters.storage import legacy_upload_key, upload_key
from adapters.temporal import workflow_status
from api.auth import Caller
from api.controls import as_caller
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from api.routes.schedules import create_promotion_schedule
from skyline import control_proof
from skyline.ab_report import build_ab_report, render_ab_report
from skyline.contracts import ROLLOUT_WORKFLOW
from skyline.controls import Control as ControlName
from skyline.figures import StepDocument
from skyline.manifest import SLUG
from skyline.outbound import literal_refusal
from skyline.rollout import (
    TERMINAL_STATES,
    ControlRequest,
    HistoryEntry,
    PromoteRequest,
    RolloutInput,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    promotion_schedule_id,
    rollout_id_for,
    step_documents,
)
from skyline.strategies import BlueGreenStrategy
from skyline.versioning import VersionRejected, check_unit_rules, check_upgrade

router = APIRouter(prefix="/rollouts", tags=["rollouts"])


class RolloutCreated(BaseModel):
    id: str
    run_id: str
    state: str
    status_url: str


def _validate_against_manifest(spec: RolloutSpec, store: StoreDep) -> None:
    found = rollout_refusal(spec.apartment, spec.building, store)
    if isinstance(found, str):
        field = "apartment" if "apartment" in found.split(" does not")[0] else "building"
        raise ApiError(422, "unknown_target", found, field)
    active = found.active()
    try:
        check_upgrade(active.version if active else None, spec.version, spec.force)
    except VersionRejected as exc:
        raise ApiError(422, "version_not_greater", str(exc), "version") from exc
    current = store.read(spec.apartment)
    assert current is not None
    try:
        check_unit_rules(current[0].apartment(spec.apartment), spec.dependencies, spec.compatibility)
    except VersionRejected as exc:
        field = "dependencies" if "dependency" in str(exc) else "compatibility"
        raise ApiError(422, "incompatible_unit", str(exc), field) from exc


def validate_bundle(spec: RolloutSpec, settings: SettingsDep, store: StoreDep) -> None:
    """bundle.path only under SKYLINE_BUNDLE_ROOT (no symlinks); an upload must exist."""
    if spec.bundle.path is not None:
        try:
            root = resolve_bundle_path(spec.bundle.path, settings.bundle_root)
        except BundleError as exc:
            raise ApiError(422, "invalid_bundle_path", str(exc), "bundle.path") from exc
        try:
            # A Module Federation 2 remote's entry is the one its mf-manifest.json names.
            entry_name, _ = bundle_entry(root, spec.entry)
        except InvalidMfManifest as exc:
            raise ApiError(422, exc.code, str(exc), exc.field) from exc
        entry = root / entry_name
        if entry.is_symlink() or not entry.is_file():
            raise ApiError(
                422,
                "missing_entry",
                f"the bundle has no entry file {spec.entry!r}; set `entry`",
                "entry",
            )
        return
    assert spec.bundle.upload_id is not None
    for key in (upload_key(spec.bundle.upload_id), legacy_upload_key(spec.bundle.upload_id)):
        try:
            store.s3.head_object(Bucket=settings.s3_bucket, Key=key)
            return
        except ClientError:
            continue
    raise ApiError(
        422,
        "missing_bundle",
        f"no uploaded bundle {spec.bundle.upload_id!r}; upload it with POST /bundles first",
        "bundle.upload_id",
    )


def validate_outbound(spec: RolloutSpec, settings: SettingsDep) -> None:
    """Webhooks and smoke URLs: a literal internal address or localhost name is refused here;
    the worker checks every resolved address again before it connects."""
    urls: list[tuple[str, str | None]] = [("smoke_url", spec.smoke_url)]
    if isinstance(spec.strategy, BlueGreenStrategy):
        urls.append(("strategy.smoke_url", spec.strategy.smoke_url))
    urls += [(f"webhooks.{i}.url", hook.url) for i, hook in enumerate(spec.webhooks)]
    for field, url in urls:
        refusal = url and literal_refusal(url, settings.webhook_allowed_hosts)
        if refusal:
            raise ApiError(422, "forbidden_destination", f"{field}: {refusal}", field)


@router.post("", status_code=201, response_model=RolloutCreated)
async def start_rollout(
    spec: RolloutSpec, temporal: TemporalDep, settings: SettingsDep, store: StoreDep, who: Caller
) -> RolloutCreated:
    """Start a rollout of one unit version into one building (strategy per request)."""
    spec = spec.model_copy(
        update={
            "actor": who.actor(spec.actor),
            "max_duration_seconds": spec.max_duration_seconds or settings.rollout_max_duration_seconds,
        }
    )
    # boto3 is blocking: keep it off the event loop.
    await asyncio.to_thread(_validate_against_manifest, spec, store)
    validate_outbound(spec, settings)
    await asyncio.to_thread(validate_bundle, spec, settings, store)
    delay = None
    if spec.start_at is not None:
        delay = spec.start_at - datetime.now(UTC)
        if delay.total_seconds() <= 0:
            raise ApiError(
                422, "start_in_past", "start_at must be in the future (with a time zone)", "start_at"
            )
    rollout_id = rollout_id_for(spec.apartment, spec.building)
    schedule = spec.promotion.mode == "scheduled" and spec.promotion.cron
    if schedule:
        # First, so Temporal judges the cron before anything starts; a refused
        # rollout below takes its schedule with it.
        await create_promotion_schedule(
            temporal,
            settings,
            rollout_id,
            spec.apartment,
            spec.promotion.cron or "",
            spec.promotion.timezone,
            spec.actor,
        )
    try:
        handle = await temporal.start_workflow(
            ROLLOUT_WORKFLOW,
            RolloutInput(rollout_id=rollout_id, spec=spec),
            id=rollout_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{spec.unit_key} → {spec.apartment}/{spec.building} ({spec.strategy.kind})",
            static_details=f"Started by **{spec.actor}**: {spec.reason or 'no reason given'}",
            search_attributes=search.initial(
                spec.apartment, spec.building, spec.version, spec.unit_id, spec.strategy.kind
            ),
            start_delay=delay,
            result_type=RolloutStatus,
        )
    except WorkflowAlreadyStartedError as exc:
        if schedule:
            await temporal.get_schedule_handle(promotion_schedule_id(rollout_id)).delete()
        raise ApiError(
            409,
            "rollout_running",
            f"building {spec.building!r} of {spec.apartment!r} already has a rollout running "
            f"({rollout_id}); pause, promote or roll it back first",
        ) from exc
    return RolloutCreated(
        id=rollout_id,
        run_id=handle.result_run_id or "",
        state="publishing",
        status_url=f"/rollouts/{rollout_id}",
    )


class RolloutSummary(BaseModel):
    id: str
    run_id: str
    apartment: str | None
    building: str | None
    version: str | None
    state: str | None
    weight: float | None
    workflow_status: str
    started_at: datetime | None
    closed_at: datetime | None
    storage_warning: str | None = Field(
        default=None, description="set when object storage has no manifest for the rollout's apartment"
    )


async def _storage_warning(store: StoreDep, apartment: str | None, seen: dict[str, str | None]) -> str | None:
    """A warning if storage lost `apartment` (wiped while Temporal kept the rollout), else None."""
    if apartment is None:
        return None
    if apartment not in seen:
        try:
            exists = await asyncio.to_thread(apartment_exists, store.s3, store.bucket, apartment)
        except Exception:  # storage unreachable: that is another error, reported elsewhere
            exists = True
        seen[apartment] = None if exists else storage_warning(apartment)
    return seen[apartment]


@router.get("", response_model=list[RolloutSummary])
async def list_rollouts(
    temporal: TemporalDep,
    store: StoreDep,
    who: Caller,
    apartment: Annotated[str | None, Query(pattern=SLUG.pattern)] = None,
    building: Annotated[str | None, Query(pattern=SLUG.pattern)] = None,
    state: RolloutState | None = None,
    version: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z.+-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RolloutSummary]:
    """Rollouts from Temporal visibility (newest first), filtered by the search attributes."""
    clauses = [f"WorkflowType = '{ROLLOUT_WORKFLOW}'"]
    for key, value in (
        (search.APARTMENT, apartment),
        (search.BUILDING, building),
        (search.STATE, state),
        (search.VERSION, version),
    ):
        if value is not None:
            clauses.append(f"{key.name} = '{value}'")  # values are pattern-checked above
    found: list[RolloutSummary] = []
    seen: dict[str, str | None] = {}
    async for execution in temporal.list_workflows(" AND ".join(clauses), limit=limit):
        attrs = execution.typed_search_attributes
        running = execution.status == WorkflowExecutionStatus.RUNNING
        warning = await _storage_warning(store, attrs.get(search.APARTMENT), seen) if running else None
        found.append(
            RolloutSummary(
                id=execution.id,
                run_id=execution.run_id,
                apartment=attrs.get(search.APARTMENT),
                building=attrs.get(search.BUILDING),
                version=attrs.get(search.VERSION),
                state=attrs.get(search.STATE),
                weight=attrs.get(search.WEIGHT),
                workflow_status=execution.status.name.lower() if execution.status else "unknown",
                started_at=execution.start_time,
                closed_at=execution.close_time,
                storage_warning=warning,
            )
        )
    return found


async def _describe_or_404(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no rollout {handle.id!r}") from exc
        raise
    if described.workflow_type != ROLLOUT_WORKFLOW:  # e.g. undo.shop, fleet.header.header
        raise ApiError(404, "not_found", f"no rollout {handle.id!r}")
    return described.status


def _with_ab_report(status: RolloutStatus) -> RolloutStatus:
    """An A/B test running (or from before the report was kept) gets its report as of now."""
    if status.strategy != "ab_test" or status.ab_report is not None:
        return status
    report = build_ab_report(status)
    return status.model_copy(
        update={"ab_report": report, "report": status.report or render_ab_report(report)}
    )


@router.get("/{rollout_id}", response_model=RolloutStatus)
async def get_rollout(rollout_id: str, temporal: TemporalDep, store: StoreDep, who: Caller) -> RolloutStatus:
    handle = temporal.get_workflow_handle(rollout_id, result_type=RolloutStatus)
    status = _with_ab_report(await workflow_status(handle, await _describe_or_404(handle), RolloutStatus))
    if status.state in TERMINAL_STATES:
        return status
    warning = await _storage_warning(store, status.apartment, {})
    return status.model_copy(update={"storage_warning": warning}) if warning else status


@router.get("/{rollout_id}/audit", response_model=list[HistoryEntry])
async def audit(rollout_id: str, temporal: TemporalDep, store: StoreDep, who: Caller) -> list[HistoryEntry]:
    """Who did what, why and when: every control, refusal and step of the rollout."""
    return (await get_rollout(rollout_id, temporal, store, who)).history


@router.get("/{rollout_id}/looks", response_model=list[StepDocument])
async def looks(
    rollout_id: str,
    temporal: TemporalDep,
    store: StoreDep,
    who: Caller,
    step: Annotated[int | None, Query(ge=0, description="only this step (index into steps)")] = None,
) -> list[StepDocument]:
    """Every step the judge looked at, as `skyline judge replay` step documents."""
    status = await get_rollout(rollout_id, temporal, store, who)
    spec_analysis = status.analysis or {}
    docs = step_documents(status.looks, spec_analysis, status.reference)
    if step is not None:
        docs = [d for d in docs if d.step.index == step]
        if not docs:
            raise ApiError(404, "not_found", f"rollout {rollout_id!r} has no judged step {step}", "step")
    return docs


async def _control(
    temporal: TemporalDep, settings: SettingsDep, rollout_id: str, update: ControlName, req: ControlRequest
) -> RolloutStatus:
    handle = temporal.get_workflow_handle(rollout_id, result_type=RolloutStatus)
    # The worker records the actor as verified only with this proof (skyline/control_proof.py).
    req = control_proof.seal(settings.control_keys, rollout_id, update, req)
    if not rollout_id.startswith(ROLLOUT_PREFIX):  # e.g. undo.shop, fleet.header.header: never a rollout
        await _describe_or_404(handle)
    # Straight to the update (the emergency rollback's path is one round trip
    # shorter without a describe first); a refusal says why it was not found.
    try:
        result: RolloutStatus = await handle.execute_update(update, req, result_type=RolloutStatus)
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "invalid_control", str(exc.cause)) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        return result
    # No such workflow (404), or it has ended (409 with its final state).
    execution = await _describe_or_404(handle)
    if execution == WorkflowExecutionStatus.RUNNING:
        raise ApiError(409, "rollout_ended", "the rollout ended meanwhile; start a new one")
    final = await workflow_status(handle, execution, RolloutStatus)
    raise ApiError(409, "rollout_ended", f"the rollout has ended ({final.state}); start a new one")


Control = Body(default_factory=ControlRequest)


@router.post("/{rollout_id}/pause", response_model=RolloutStatus)
async def pause(
    rollout_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> RolloutStatus:
    """Hold the rollout at its current weight; bake time stops counting."""
    return await _control(temporal, settings, rollout_id, "pause", as_caller(who, req))


@router.post("/{rollout_id}/resume", response_model=RolloutStatus)
async def resume(
    rollout_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> RolloutStatus:
    return await _control(temporal, settings, rollout_id, "resume", as_caller(who, req))


@router.post("/{rollout_id}/promote", response_model=RolloutStatus)
async def promote(
    rollout_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    full: bool = False,
    req: ControlRequest = Control,
) -> RolloutStatus:
    """Advance one step now, or with `full=true` make the new unit the active one."""
    body = PromoteRequest(actor=who.actor(req.actor), reason=req.reason, full=full)
    return await _control(temporal, settings, rollout_id, "promote", body)


@router.post("/{rollout_id}/rollback", response_model=RolloutStatus)
async def rollback(
    rollout_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> RolloutStatus:
    """Emergency rollback: skips every check; answers when the edge serves last-known-good."""
    return await _control(temporal, settings, rollout_id, "rollback", as_caller(who, req))
