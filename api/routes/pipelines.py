"""Release pipelines: one version through staging and production stages, with verification and approvals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Body
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters import search_attributes as search
from adapters.manifest_store import rollout_refusal
from adapters.temporal import workflow_status
from api.auth import Caller
from api.controls import as_caller, send_control
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from api.routes.rollouts import validate_bundle, validate_outbound
from skyline.contracts import PIPELINE_WORKFLOW
from skyline.control_proof import ApproveRequest
from skyline.outbound import literal_refusal
from skyline.pipeline import PipelineInput, PipelineSpec, PipelineStatus, pipeline_id_for, window_check
from skyline.rollout import ControlRequest, PromoteRequest

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


class PipelineCreated(BaseModel):
    id: str
    run_id: str
    status_url: str


def _validate_targets(spec: PipelineSpec, store: StoreDep) -> None:
    for i, stage in enumerate(spec.stages):
        for apartment in stage.apartments:
            found = rollout_refusal(apartment, spec.building, store)
            if isinstance(found, str):
                raise ApiError(422, "unknown_target", found, f"stages.{i}.apartments")


def _validate_windows(spec: PipelineSpec, now: datetime) -> None:
    """A stage window that never opens would fail its stage when reached: refuse it now.

    Windows repeat every week, so none opening within the horizon means none ever opens."""
    for i, stage in enumerate(spec.stages):
        check = window_check(now, stage.window)
        if check.action == "fail":
            raise ApiError(
                422, "window_never_opens", f"stage {stage.name!r}: {check.reason}", f"stages.{i}.window"
            )


def _validate_verify(spec: PipelineSpec, settings: SettingsDep) -> None:
    for i, stage in enumerate(spec.stages):
        for j, hook in enumerate(stage.verify):
            refusal = literal_refusal(hook.url, settings.webhook_allowed_hosts)
            if refusal:
                raise ApiError(422, "forbidden_destination", refusal, f"stages.{i}.verify.{j}.url")


@router.post("", status_code=201, response_model=PipelineCreated)
async def start_pipeline(
    spec: PipelineSpec, temporal: TemporalDep, settings: SettingsDep, store: StoreDep, who: Caller
) -> PipelineCreated:
    """Take one unit version through the stages in order; a failed stage stops the line."""
    spec = spec.model_copy(
        update={
            "actor": who.actor(spec.actor),
            "max_duration_seconds": spec.max_duration_seconds or settings.rollout_max_duration_seconds,
        }
    )
    validate_outbound(spec, settings)
    _validate_verify(spec, settings)
    await asyncio.to_thread(_validate_windows, spec, datetime.now(UTC))
    await asyncio.to_thread(_validate_targets, spec, store)
    await asyncio.to_thread(validate_bundle, spec, settings, store)
    pipeline_id = pipeline_id_for(spec.building, spec.unit_id)
    try:
        handle = await temporal.start_workflow(
            PIPELINE_WORKFLOW,
            PipelineInput(pipeline_id=pipeline_id, spec=spec),
            id=pipeline_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"pipeline: {spec.unit_key} → " + " → ".join(s.name for s in spec.stages),
            # the UI's list: the pipeline and its stages (labelled by it: workflows/indexing.py)
            search_attributes=search.for_pipeline(spec.building, spec.version, spec.unit_id),
            result_type=PipelineStatus,
        )
    except WorkflowAlreadyStartedError as exc:
        raise ApiError(
            409, "pipeline_running", f"a pipeline of {spec.unit_id!r} is running ({pipeline_id})"
        ) from exc
    return PipelineCreated(
        id=pipeline_id, run_id=handle.result_run_id or "", status_url=f"/pipelines/{pipeline_id}"
    )


async def _status(temporal: TemporalDep, pipeline_id: str) -> tuple[PipelineStatus, bool]:
    handle = temporal.get_workflow_handle(pipeline_id, result_type=PipelineStatus)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no pipeline {pipeline_id!r}") from exc
        raise
    if described.workflow_type != PIPELINE_WORKFLOW:  # an id of another kind of workflow
        raise ApiError(404, "not_found", f"no pipeline {pipeline_id!r}")
    status = await workflow_status(handle, described.status, PipelineStatus)
    return status, described.status == WorkflowExecutionStatus.RUNNING


@router.get("/{pipeline_id}", response_model=PipelineStatus)
async def get_pipeline(pipeline_id: str, temporal: TemporalDep, who: Caller) -> PipelineStatus:
    """Every stage: its state, evidence (verify answers, approvals), what it waits for."""
    status, _ = await _status(temporal, pipeline_id)
    return status


async def _control(
    temporal: TemporalDep, settings: SettingsDep, pipeline_id: str, update: str, req: ControlRequest
) -> PipelineStatus:
    status, running = await _status(temporal, pipeline_id)
    if not running:
        raise ApiError(409, "pipeline_ended", f"the pipeline has ended ({status.state})")
    return await send_control(temporal, settings.control_keys, pipeline_id, update, req, PipelineStatus)


Control = Body(default_factory=ControlRequest)


@router.post("/{pipeline_id}/approve", response_model=PipelineStatus)
async def approve(
    pipeline_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> PipelineStatus:
    """Approve the stage that waits for approval, as the caller's token (its name and role)."""
    body = ApproveRequest(actor=who.actor(req.actor), role=who.role, reason=req.reason)
    return await _control(temporal, settings, pipeline_id, "approve", body)


@router.post("/{pipeline_id}/reject", response_model=PipelineStatus)
async def reject(
    pipeline_id: str, temporal: TemporalDep, settings: SettingsDep, who: Caller, req: ControlRequest = Control
) -> PipelineStatus:
    """Refuse the awaited approval: the line stops (on_failure decides about earlier stages)."""
    body = as_caller(who, req)
    return await _control(temporal, settings, pipeline_id, "reject", body)


@router.post("/{pipeline_id}/pause", response_model=PipelineStatus)
async def pause(
    pipeline_id: str, temporal: TemporalDep, settings: SettingsDep, who: Caller, req: ControlRequest = Control
) -> PipelineStatus:
    """The running stage pauses, the soak clock stops, no later stage starts."""
    body = as_caller(who, req)
    return await _control(temporal, settings, pipeline_id, "pause", body)


@router.post("/{pipeline_id}/resume", response_model=PipelineStatus)
async def resume(
    pipeline_id: str, temporal: TemporalDep, settings: SettingsDep, who: Caller, req: ControlRequest = Control
) -> PipelineStatus:
    body = as_caller(who, req)
    return await _control(temporal, settings, pipeline_id, "resume", body)


@router.post("/{pipeline_id}/promote", response_model=PipelineStatus)
async def promote(
    pipeline_id: str, temporal: TemporalDep, settings: SettingsDep, who: Caller, req: ControlRequest = Control
) -> PipelineStatus:
    """Skip the rest of the current stage's soak (verify and approval still hold)."""
    body = PromoteRequest(actor=who.actor(req.actor), reason=req.reason)
    return await _control(temporal, settings, pipeline_id, "promote", body)


@router.post("/{pipeline_id}/rollback", response_model=PipelineStatus)
async def rollback(
    pipeline_id: str, temporal: TemporalDep, settings: SettingsDep, who: Caller, req: ControlRequest = Control
) -> PipelineStatus:
    """Stop the line: the running stage rolls back, earlier stages are restored where they still
    hold this pipeline's unit."""
    body = as_caller(who, req)
    return await _control(temporal, settings, pipeline_id, "rollback", body)
