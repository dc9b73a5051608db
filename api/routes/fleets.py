"""Fleet rollouts: one unit version across many apartments, batch by batch."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Body
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters import search_attributes as search
from adapters.temporal import workflow_status
from api.auth import Caller
from api.controls import as_caller, send_control
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from api.routes.rollouts import validate_bundle, validate_outbound
from skyline.contracts import FLEET_WORKFLOW, STATUS_QUERY
from skyline.controls import Control as ControlName
from skyline.fleet import FleetInput, FleetSpec, FleetStatus, fleet_id_for
from skyline.rollout import ControlRequest, PromoteRequest, RolloutStatus

router = APIRouter(prefix="/fleets", tags=["fleets"])


class FleetCreated(BaseModel):
    id: str
    run_id: str
    status_url: str


@router.post("", status_code=201, response_model=FleetCreated)
async def start_fleet(
    spec: FleetSpec, temporal: TemporalDep, settings: SettingsDep, store: StoreDep, who: Caller
) -> FleetCreated:
    """Ship one unit version to many apartments in batches; each apartment runs its own rollout."""
    spec = spec.model_copy(
        update={
            "actor": who.actor(spec.actor),
            "max_duration_seconds": spec.max_duration_seconds or settings.rollout_max_duration_seconds,
        }
    )
    validate_outbound(spec, settings)
    await asyncio.to_thread(validate_bundle, spec, settings, store)
    fleet_id = fleet_id_for(spec.building, spec.unit_id)
    try:
        handle = await temporal.start_workflow(
            FLEET_WORKFLOW,
            FleetInput(fleet_id=fleet_id, spec=spec),
            id=fleet_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"fleet: {spec.unit_key} → {spec.building} in batches of {spec.batch_size}",
            # the UI's list: the fleet and its rollouts (labelled by the fleet: workflows/indexing.py)
            search_attributes=search.for_fleet(spec.building, spec.version, spec.unit_id, spec.strategy.kind),
            result_type=FleetStatus,
        )
    except WorkflowAlreadyStartedError as exc:
        raise ApiError(
            409, "fleet_running", f"a fleet rollout of {spec.unit_id!r} is running ({fleet_id})"
        ) from exc
    return FleetCreated(id=fleet_id, run_id=handle.result_run_id or "", status_url=f"/fleets/{fleet_id}")


async def _status(temporal: TemporalDep, fleet_id: str) -> tuple[FleetStatus, bool]:
    handle = temporal.get_workflow_handle(fleet_id, result_type=FleetStatus)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no fleet rollout {fleet_id!r}") from exc
        raise
    if described.workflow_type != FLEET_WORKFLOW:  # an id of another kind of workflow
        raise ApiError(404, "not_found", f"no fleet rollout {fleet_id!r}")
    status = await workflow_status(handle, described.status, FleetStatus)
    return status, described.status == WorkflowExecutionStatus.RUNNING


@router.get("/{fleet_id}", response_model=FleetStatus)
async def get_fleet(fleet_id: str, temporal: TemporalDep, who: Caller) -> FleetStatus:
    """The fleet and every apartment's state; running apartments show their live weight."""
    status, _ = await _status(temporal, fleet_id)
    for entry in status.apartments.values():
        if entry.state == "running":
            try:
                child = await temporal.get_workflow_handle(entry.rollout_id).query(
                    STATUS_QUERY, result_type=RolloutStatus
                )
            except RPCError:
                continue
            entry.weight = child.weight
            entry.reason = child.paused_reason or child.reason
    return status


async def _control(
    temporal: TemporalDep, settings: SettingsDep, fleet_id: str, update: ControlName, req: ControlRequest
) -> FleetStatus:
    status, running = await _status(temporal, fleet_id)
    if not running:
        raise ApiError(409, "fleet_ended", f"the fleet rollout has ended ({status.state})")
    return await send_control(temporal, settings.control_keys, fleet_id, update, req, FleetStatus)


Control = Body(default_factory=ControlRequest)


@router.post("/{fleet_id}/pause", response_model=FleetStatus)
async def pause(
    fleet_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> FleetStatus:
    """No new batch starts; running apartments pause too."""
    return await _control(temporal, settings, fleet_id, "pause", as_caller(who, req))


@router.post("/{fleet_id}/resume", response_model=FleetStatus)
async def resume(
    fleet_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> FleetStatus:
    return await _control(
        temporal,
        settings,
        fleet_id,
        "resume",
        as_caller(who, req),
    )


@router.post("/{fleet_id}/promote", response_model=FleetStatus)
async def promote(
    fleet_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> FleetStatus:
    """Start the next batch now."""
    body = PromoteRequest(actor=who.actor(req.actor), reason=req.reason)
    return await _control(temporal, settings, fleet_id, "promote", body)


@router.post("/{fleet_id}/rollback", response_model=FleetStatus)
async def rollback(
    fleet_id: str,
    temporal: TemporalDep,
    settings: SettingsDep,
    who: Caller,
    req: ControlRequest = Control,
) -> FleetStatus:
    """Every apartment of the fleet back to what it had before (running ones and those done)."""
    return await _control(
        temporal,
        settings,
        fleet_id,
        "rollback",
        as_caller(who, req),
    )
