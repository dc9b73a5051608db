"""Temporal Schedules that promote canaries on a timetable (within release windows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field, field_validator
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Caller
from api.deps import SettingsDep, TemporalDep
from api.errors import ApiError
from skyline import control_proof
from skyline.contracts import PROMOTION_WORKFLOW, STATUS_QUERY, PromotionInput
from skyline.rollout import RolloutStatus, check_time_zone, promotion_schedule_id
from skyline.settings import Settings
from skyline.windows import PromotionBlocked

router = APIRouter(prefix="/schedules", tags=["schedules"])

# Temporal's default catch-up window is a year: a worker outage must not end in a
# burst of stale promotions, so a missed firing only counts for a few minutes.
CATCHUP = timedelta(minutes=5)


class CreateSchedule(BaseModel):
    rollout_id: str = Field(pattern=r"^rollout\.[a-z0-9-]+\.[a-z0-9-]+$")
    cron: str = Field(min_length=9, description="e.g. '0 10 * * 1-5'")
    timezone: str = Field(default="UTC", description="IANA time zone of the cron")
    note: str = Field(default="", max_length=500)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)


class ScheduleView(BaseModel):
    id: str
    rollout_id: str | None
    cron: list[str]
    timezone: str | None
    paused: bool
    note: str | None
    next_runs: list[datetime]
    recent_runs: list[str]
    promotion_blocked: PromotionBlocked | None = Field(
        default=None, description="why the rollout's promotion is held back by a freeze or release window"
    )


class ScheduleNote(BaseModel):
    note: str = Field(default="", max_length=500)


def _actor_proof(settings: Settings, rollout_id: str, actor: str) -> str | None:
    keys = settings.control_keys
    return control_proof.schedule_proof(keys[0], rollout_id, actor) if keys else None


async def create_promotion_schedule(
    temporal: Client,
    settings: Settings,
    rollout_id: str,
    apartment: str,
    cron: str,
    timezone: str,
    actor: str,
    note: str = "",
) -> str:
    check_time_zone(timezone)
    schedule_id = promotion_schedule_id(rollout_id)
    try:
        await temporal.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    PROMOTION_WORKFLOW,
                    PromotionInput(
                        rollout_id=rollout_id,
                        apartment=apartment,
                        actor=f"schedule:{actor}",
                        cron=cron,
                        timezone=timezone,
                        actor_proof=_actor_proof(settings, rollout_id, f"schedule:{actor}"),
                    ),
                    id=f"promotion.{rollout_id}",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=timezone),
                policy=SchedulePolicy(
                    overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP, pause_on_failure=True
                ),
                state=ScheduleState(note=note or f"promote {rollout_id} (created by {actor})"),
            ),
        )
    except ScheduleAlreadyRunningError as exc:
        raise ApiError(409, "schedule_exists", f"schedule {schedule_id!r} exists; delete it first") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError(
                422, "invalid_schedule", f"Temporal refused the schedule: {exc.message}", "cron"
            ) from exc
        raise
    return schedule_id


async def _blocked(temporal: Client, rollout_id: str) -> PromotionBlocked | None:
    """What the rollout's status says about its promotion being blocked (None if it ended or is gone)."""
    handle = temporal.get_workflow_handle(rollout_id)
    try:
        status: RolloutStatus = await handle.query(STATUS_QUERY, result_type=RolloutStatus)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return status.promotion_blocked


async def _view(temporal: Client, schedule_id: str) -> ScheduleView:
    handle = temporal.get_schedule_handle(schedule_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no schedule {schedule_id!r}") from exc
        raise
    action = described.schedule.action
    inp: PromotionInput | None = None
    if isinstance(action, ScheduleActionStartWorkflow) and action.args:
        raw = action.args[0]
        if isinstance(raw, Payload):
            (inp,) = await temporal.data_converter.decode([raw], [PromotionInput])
        elif isinstance(raw, PromotionInput):
            inp = raw
    spec = described.schedule.spec
    return ScheduleView(
        promotion_blocked=await _blocked(temporal, inp.rollout_id) if inp else None,
        id=schedule_id,
        rollout_id=inp.rollout_id if inp else None,
        cron=[inp.cron] if inp and inp.cron else list(spec.cron_expressions),
        timezone=spec.time_zone_name,
        paused=described.schedule.state.paused,
        note=described.schedule.state.note,
        next_runs=list(described.info.next_action_times[:5]),
        recent_runs=[
            a.action.workflow_id for a in described.info.recent_actions if hasattr(a.action, "workflow_id")
        ],
    )


@router.post("", status_code=201, response_model=ScheduleView)
async def create(
    req: CreateSchedule, temporal: TemporalDep, settings: SettingsDep, who: Caller
) -> ScheduleView:
    """Promote `rollout_id` on a timetable once it waits at its last step (promotion: scheduled)."""
    apartment = req.rollout_id.split(".")[1]
    await create_promotion_schedule(
        temporal,
        settings,
        req.rollout_id,
        apartment,
        req.cron,
        req.timezone,
        who.actor("anonymous"),
        req.note,
    )
    return await _view(temporal, promotion_schedule_id(req.rollout_id))


@router.get("", response_model=list[ScheduleView])
async def list_schedules(
    temporal: TemporalDep, who: Caller, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[ScheduleView]:
    views = []
    async for listed in await temporal.list_schedules():
        if listed.id.startswith("promote."):
            views.append(await _view(temporal, listed.id))
        if len(views) >= limit:
            break
    return views


@router.get("/{schedule_id}", response_model=ScheduleView)
async def describe(schedule_id: str, temporal: TemporalDep, who: Caller) -> ScheduleView:
    return await _view(temporal, schedule_id)


@router.post("/{schedule_id}/pause", response_model=ScheduleView)
async def pause(
    schedule_id: str,
    temporal: TemporalDep,
    who: Caller,
    body: ScheduleNote = Body(default_factory=ScheduleNote),
) -> ScheduleView:
    await _view(temporal, schedule_id)
    await temporal.get_schedule_handle(schedule_id).pause(note=body.note or f"paused by {who.name}")
    return await _view(temporal, schedule_id)


@router.post("/{schedule_id}/unpause", response_model=ScheduleView)
async def unpause(
    schedule_id: str,
    temporal: TemporalDep,
    who: Caller,
    body: ScheduleNote = Body(default_factory=ScheduleNote),
) -> ScheduleView:
    await _view(temporal, schedule_id)
    await temporal.get_schedule_handle(schedule_id).unpause(note=body.note or f"unpaused by {who.name}")
    return await _view(temporal, schedule_id)


@router.post("/{schedule_id}/trigger", response_model=ScheduleView)
async def trigger(schedule_id: str, temporal: TemporalDep, who: Caller) -> ScheduleView:
    """Run the promotion check now (still subject to analysis and release windows)."""
    await _view(temporal, schedule_id)
    await temporal.get_schedule_handle(schedule_id).trigger(overlap=ScheduleOverlapPolicy.SKIP)
    return await _view(temporal, schedule_id)


@router.delete("/{schedule_id}", status_code=204)
async def delete(schedule_id: str, temporal: TemporalDep, who: Caller) -> None:
    await _view(temporal, schedule_id)
    await temporal.get_schedule_handle(schedule_id).delete()
