"""ReleasePipelineWorkflow on the time-skipping server: stages, gates, controls, stopping the line."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from skyline.control_proof import ApproveRequest, SignedApproval, SignedControl, SignedPromote
from skyline.manifest_ops import PromoteUnit, SetCanary
from skyline.pipeline import PipelineInput, PipelineSpec, PipelineStatus
from skyline.rollout import ControlRequest, PromoteRequest, rollout_id_for
from tests.support.histories import save_history
from tests.support.windows import freeze_until
from tests.workflows.conftest import proved, running
from tests.workflows.test_fast_fleet import per_apartment
from tests.workflows.world import World, stable_unit
from workflows.pipeline import ReleasePipelineWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

Handle = WorkflowHandle[Any, PipelineStatus]


def names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"p{i}-{tag}" for i in range(n)]


def pipeline(
    staging: str,
    production: list[str],
    gates: dict[str, Any],
    production_gates: dict[str, Any] | None = None,
    **extra: Any,
) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "building": "header",
            "unit_id": "header",
            "version": "5.0.0",
            "bundle": {"upload_id": "0" * 32},
            "strategy": {"steps": [100], "bake_seconds": 120},
            "actor": "alice",
            "stages": [
                {"name": "staging", "apartments": [staging], **gates},
                {"name": "production", "apartments": production, "batch_size": 1, **(production_gates or {})},
            ],
            **extra,
        }
    )


def world_of(apartments: list[str], bad: set[str] | None = None) -> World:
    world = World(traffic=per_apartment(bad or set()))
    for a in apartments:
        world.create(a, active="1.3.0")
    return world


async def start(env: WorkflowEnvironment, queue: str, spec: PipelineSpec) -> Handle:
    pipeline_id = f"pipeline.header.{uuid.uuid4().hex[:8]}"
    return await env.client.start_workflow(
        ReleasePipelineWorkflow.run,
        PipelineInput(pipeline_id=pipeline_id, spec=spec),
        id=pipeline_id,
        task_queue=queue,
    )


async def until(
    handle: Handle, check: Callable[[PipelineStatus], bool], env: WorkflowEnvironment
) -> PipelineStatus:
    """Skip time in small steps until the pipeline's status satisfies `check` (bounded)."""
    for _ in range(400):
        status = await handle.query(ReleasePipelineWorkflow.status)
        if check(status):
            return status
        await env.sleep(15)
    raise AssertionError(f"never reached: {status.model_dump_json(include={'state', 'stages'})}")


def stage_is(index: int, state: str) -> Callable[[PipelineStatus], bool]:
    return lambda s: s.stages[index].state == state


async def approve(
    env: WorkflowEnvironment, handle: Handle, actor: str, role: str = "deployer"
) -> PipelineStatus:
    signed = await proved(
        env, handle.id, "approve", ApproveRequest(actor=actor, role=role, reason="looks good")
    )
    result: PipelineStatus = await handle.execute_update(ReleasePipelineWorkflow.approve, signed)
    return result


async def test_staging_soak_verify_approval_then_production_fleet(skipping: WorkflowEnvironment) -> None:
    staging, *production = apartments = names(3)
    world = world_of(apartments)
    gates = {
        "soak_seconds": 600,
        "verify": [{"url": "https://e2e.example/suite"}],
        "approval": {"role": "deployer", "not_starter": True},
    }
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, production, gates))
        soaking = await until(handle, stage_is(0, "soaking"), skipping)
        assert world.building(staging).active_unit == "header@5.0.0"
        assert soaking.stages[1].state == "pending"
        waiting = await until(handle, stage_is(0, "awaiting_approval"), skipping)
        assert waiting.stages[0].verified == ["https://e2e.example/suite answered 2xx"]
        assert "webhook pipeline_verify" in world.calls
        # nothing reaches production while the approval is awaited
        assert all(world.building(a).active_unit == "header@1.3.0" for a in production)
        # the starter may not approve this stage: refused before anything is written
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await approve(skipping, handle, "alice")
        assert "started this pipeline" in str(refused.value.cause)
        # a viewer may not approve either
        with pytest.raises(WorkflowUpdateFailedError) as weak:
            await approve(skipping, handle, "bob", role="viewer")
        assert "needs deployer" in str(weak.value.cause)
        # an unproven approval (a plain Temporal client) never counts
        with pytest.raises(WorkflowUpdateFailedError) as unproven:
            await handle.execute_update(
                ReleasePipelineWorkflow.approve, SignedApproval(actor="carol", role="admin")
            )
        assert "verified actor" in str(unproven.value.cause)
        answered = await approve(skipping, handle, "carol")
        assert answered.stages[0].approvals[0].actor == "carol"
        status = await handle.result()
        await save_history(skipping.client, handle.id, "pipeline_staging_to_production")
    assert status.state == "succeeded", status.reason
    assert [s.state for s in status.stages] == ["succeeded", "succeeded"]
    assert status.stages[1].kind == "fleet" and sorted(status.stages[1].live) == sorted(production)
    assert all(world.building(a).active_unit == "header@5.0.0" for a in apartments)
    assert [h.actor for h in status.history if h.action == "approve"] == ["carol"]
    soak = [h for h in status.history if h.action == "verified"][0].at - status.started_at
    assert soak.total_seconds() >= 600  # the soak held the line for its whole time


async def test_a_failed_verify_stops_the_line_and_production_never_starts(
    skipping: WorkflowEnvironment,
) -> None:
    staging, *production = apartments = names(3)
    world = world_of(apartments)
    world.webhook_status["pipeline_verify"] = 500
    gates = {"verify": [{"url": "https://e2e.example/suite", "retries": 0}], "approval": {}}
    async with running(skipping, world) as queue:
        status = await (await start(skipping, queue, pipeline(staging, production, gates))).result()
    assert status.state == "failed"
    assert status.stages[0].state == "failed" and "answered 500" in (status.stages[0].reason or "")
    assert status.stages[1].state == "skipped"
    assert all(world.building(a).active_unit == "header@1.3.0" for a in production)
    assert not [c for c in world.calls if c == "find fleet"]  # no production fleet was started
    assert world.building(staging).active_unit == "header@5.0.0"  # on_failure keep


async def test_restore_puts_earlier_stages_back_when_production_fails(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments, bad={production})
    before = world.building(staging)
    spec = pipeline(staging, [production], {}, on_failure="restore")
    async with running(skipping, world) as queue:
        status = await (await start(skipping, queue, spec)).result()
    assert status.state == "failed"
    assert [s.state for s in status.stages] == ["rolled_back", "failed"]
    assert world.building(staging) == before  # exactly as before the pipeline
    assert world.building(production).active_unit == "header@1.3.0"  # its rollout rolled itself back


async def test_restore_keeps_a_later_hotfix_on_an_earlier_stage(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    spec = pipeline(staging, [production], {"approval": {"expires_seconds": 3600}}, on_failure="restore")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, spec)
        await until(handle, stage_is(0, "awaiting_approval"), skipping)
        hotfix = stable_unit("header", "5.0.1")
        world.write(staging, SetCanary(building="header", unit=hotfix, rollout={"percentage": 100}))
        world.write(staging, PromoteUnit(building="header", unit_id=hotfix.id))
        status = await handle.result()  # nobody approves: the request expires
    assert status.state == "failed" and "approval expired" in (status.stages[0].reason or "")
    assert world.building(staging).active_unit == "header@5.0.1"  # the hotfix stays
    assert [h.action for h in status.history].count("kept") == 1
    assert world.building(production).active_unit == "header@1.3.0"


async def test_reject_stops_the_line(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {"approval": {}}))
        await until(handle, stage_is(0, "awaiting_approval"), skipping)
        signed = await proved(skipping, handle.id, "reject", ControlRequest(actor="dave", reason="bad e2e"))
        answered: PipelineStatus = await handle.execute_update(ReleasePipelineWorkflow.reject, signed)
        status = await handle.result()
    assert answered.state == "failed"
    assert "rejected by dave: bad e2e" in (status.stages[0].reason or "")
    assert status.stages[1].state == "skipped"
    assert world.building(production).active_unit == "header@1.3.0"


async def test_pause_holds_the_soak_promote_skips_it_and_refusals_follow_the_table(
    skipping: WorkflowEnvironment,
) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    spec = pipeline(staging, [production], {"soak_seconds": 86_400})
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, spec)
        await until(handle, stage_is(0, "soaking"), skipping)
        # refused in this phase, before anything is written
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ReleasePipelineWorkflow.resume, SignedControl(actor="ed"))
        assert "not paused" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await approve(skipping, handle, "ed")
        pause = await proved(skipping, handle.id, "pause", ControlRequest(actor="ed", reason="incident"))
        paused = await handle.execute_update(ReleasePipelineWorkflow.pause, pause)
        assert isinstance(paused, PipelineStatus)
        assert paused.state == "paused"
        await skipping.sleep(2 * 86_400)  # the soak clock stands still while paused
        held = await handle.query(ReleasePipelineWorkflow.status)
        assert held.state == "paused" and held.stages[1].state == "pending"
        with pytest.raises(WorkflowUpdateFailedError) as promote_paused:
            await handle.execute_update(ReleasePipelineWorkflow.promote, SignedPromote(actor="ed"))
        assert "resume it first" in str(promote_paused.value.cause)
        resume = await proved(skipping, handle.id, "resume", ControlRequest(actor="ed"))
        await handle.execute_update(ReleasePipelineWorkflow.resume, resume)
        promote = await proved(skipping, handle.id, "promote", PromoteRequest(actor="ed"))
        await handle.execute_update(ReleasePipelineWorkflow.promote, promote)
        status = await handle.result()
        await save_history(skipping.client, handle.id, "pipeline_paused_and_promoted")
    assert status.state == "succeeded"
    actions = [(h.action, h.actor) for h in status.history]
    assert ("pause", "ed") in actions and ("resume", "ed") in actions and ("promote", "ed") in actions
    assert any(h.action == "soak skipped" for h in status.history)
    assert (status.updated_at - status.started_at).total_seconds() < 4 * 86_400


async def test_rollback_stops_the_running_stage_and_restores_earlier_ones(
    skipping: WorkflowEnvironment,
) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    spec = pipeline(staging, [production], {})
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, spec)
        await until(handle, lambda s: s.stage == 1 and s.stages[1].state == "running", skipping)
        # from the Temporal UI: honoured, and the audit says the actor is unverified
        await handle.signal(ReleasePipelineWorkflow.pause_signal, ControlRequest(actor="gus"))
        await until(handle, lambda s: s.state == "paused", skipping)
        signed = await proved(skipping, handle.id, "rollback", ControlRequest(actor="fay", reason="bad"))
        answered = await handle.execute_update(ReleasePipelineWorkflow.rollback, signed)
        assert isinstance(answered, PipelineStatus)
        status = await handle.result()
    assert answered.state == "rolled_back"
    assert status.state == "rolled_back" and "by fay" in (status.reason or "")
    assert status.stages[0].state == "rolled_back"
    assert world.building(staging).active_unit == "header@1.3.0"
    assert world.building(production).active_unit == "header@1.3.0"
    paused = [h for h in status.history if h.action == "pause"]
    assert [h.actor for h in paused] == ["gus (via Temporal, actor unverified)"]
    assert [h.actor for h in status.history if h.action == "rollback"] == ["fay"]


async def test_a_soak_fails_when_the_stage_no_longer_holds_the_unit(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {"soak_seconds": 3600}))
        await until(handle, stage_is(0, "soaking"), skipping)
        hotfix = stable_unit("header", "5.0.1")
        world.write(staging, SetCanary(building="header", unit=hotfix, rollout={"percentage": 100}))
        world.write(staging, PromoteUnit(building="header", unit_id=hotfix.id))
        status = await handle.result()
    assert status.state == "failed"
    assert f"during the soak {staging} changed to header@5.0.1" in (status.stages[0].reason or "")
    assert status.stages[1].state == "skipped"
    assert world.building(production).active_unit == "header@1.3.0"


async def test_the_judge_keeps_looking_during_the_soak_and_harm_fails_the_stage(
    skipping: WorkflowEnvironment,
) -> None:
    staging, production = apartments = names(2)
    turned: set[str] = set()  # apartments whose traffic fails from now on
    world = World(traffic=per_apartment(turned))
    for a in apartments:
        world.create(a, active="1.3.0")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {"soak_seconds": 3600}))
        soaking = await until(handle, stage_is(0, "soaking"), skipping)
        assert world.building(staging).active_unit == "header@5.0.0"  # promoted, healthy so far
        turned.add(staging)  # after its rollout promoted, the unit starts failing
        status = await handle.result()
        await save_history(skipping.client, handle.id, "pipeline_soak_judged_harm")
    assert status.state == "failed"
    assert f"during the soak the judge found harm in {staging}" in (status.stages[0].reason or "")
    assert "error_rate" in (status.stages[0].reason or "")
    # found by a look, long before the soak's timer would have ended it
    soak_end = soaking.stages[0].soak_until
    assert soak_end is not None and status.updated_at < soak_end - timedelta(minutes=30)
    assert status.stages[1].state == "skipped"
    assert world.building(production).active_unit == "header@1.3.0"


# ----- release windows per stage (`window`) ------------------------------------------------------


async def child_started_at(env: WorkflowEnvironment, workflow_id: str) -> datetime | None:
    """When the stage's child started (by the test server's skipped time), None if it never did."""
    try:
        described = await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.start_time


def waiting_for_window(s: PipelineStatus) -> bool:
    return s.stage == 1 and s.stages[1].state == "pending" and bool(s.stages[1].waiting_for)


async def test_a_stage_behind_a_freeze_waits_and_starts_when_it_opens(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    window, opens = freeze_until(await skipping.get_current_time(), hours=3)
    child = rollout_id_for(production, "header")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {}, {"window": window}))
        waiting = await until(handle, waiting_for_window, skipping)
        reason = waiting.stages[1].waiting_for or ""
        assert reason.startswith("release freeze (") and "Asia/Seoul" in reason
        assert f"next opens {opens.isoformat()}" in reason
        assert waiting.state == "progressing" and waiting.stages[0].state == "succeeded"
        assert await child_started_at(skipping, child) is None  # nothing reached production
        assert world.building(production).active_unit == "header@1.3.0"
        status = await handle.result()
        await save_history(skipping.client, handle.id, "pipeline_stage_waited_for_its_window")
    assert status.state == "succeeded", status.reason
    started = await child_started_at(skipping, child)
    assert started is not None and started >= opens  # by workflow time: only once the freeze ended
    assert world.building(production).active_unit == "header@5.0.0"
    closed = [h for h in status.history if h.action == "window closed"]
    assert len(closed) == 1 and closed[0].reason == f"production: {reason}" and closed[0].at < opens
    stage = [h for h in status.history if h.action == "stage" and h.reason.startswith("production")]
    assert stage[0].at >= opens
    assert status.stages[1].waiting_for is None


async def test_rollback_while_a_stage_waits_for_its_window_skips_it(skipping: WorkflowEnvironment) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    window, _ = freeze_until(await skipping.get_current_time(), hours=3)
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {}, {"window": window}))
        await until(handle, waiting_for_window, skipping)
        signed = await proved(skipping, handle.id, "rollback", ControlRequest(actor="fay", reason="no"))
        answered = await handle.execute_update(ReleasePipelineWorkflow.rollback, signed)
        assert isinstance(answered, PipelineStatus)
        status = await handle.result()
        await skipping.sleep(4 * 3600)  # past the opening: nothing starts after the line stopped
    assert answered.state == "rolled_back"
    assert status.state == "rolled_back" and "by fay" in (status.reason or "")
    assert [s.state for s in status.stages] == ["rolled_back", "skipped"]
    assert status.stages[1].waiting_for is None and status.stages[1].child_state is None
    assert await child_started_at(skipping, rollout_id_for(production, "header")) is None
    assert world.building(production).active_unit == "header@1.3.0"
    assert world.building(staging).active_unit == "header@1.3.0"  # a rollback restores earlier stages


async def test_promote_never_skips_a_window_and_pause_holds_the_stage_past_it(
    skipping: WorkflowEnvironment,
) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    window, opens = freeze_until(await skipping.get_current_time(), hours=3)
    child = rollout_id_for(production, "header")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, pipeline(staging, [production], {}, {"window": window}))
        waiting = await until(handle, waiting_for_window, skipping)
        promote = await proved(skipping, handle.id, "promote", PromoteRequest(actor="ed"))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ReleasePipelineWorkflow.promote, promote)
        why = str(refused.value.cause)
        assert "a release window is never skipped" in why and (waiting.stages[1].waiting_for or "") in why
        # from the Temporal UI: refused too, and the audit says why
        await handle.signal(ReleasePipelineWorkflow.promote_signal, PromoteRequest(actor="gus"))
        with pytest.raises(WorkflowUpdateFailedError) as approval:  # approvals are unaffected
            await approve(skipping, handle, "carol")
        assert "no approval is awaited" in str(approval.value.cause)
        pause = await proved(skipping, handle.id, "pause", ControlRequest(actor="ed", reason="incident"))
        paused = await handle.execute_update(ReleasePipelineWorkflow.pause, pause)
        assert isinstance(paused, PipelineStatus) and paused.state == "paused"
        await skipping.sleep(5 * 3600)  # the window opens while paused: the stage still waits
        held = await handle.query(ReleasePipelineWorkflow.status)
        now = await skipping.get_current_time()
        assert now > opens and held.state == "paused" and held.stages[1].state == "pending"
        assert await child_started_at(skipping, child) is None
        resume = await proved(skipping, handle.id, "resume", ControlRequest(actor="ed"))
        await handle.execute_update(ReleasePipelineWorkflow.resume, resume)
        status = await handle.result()
    assert status.state == "succeeded", status.reason
    started = await child_started_at(skipping, child)
    assert started is not None and started >= now
    refusals = [h for h in status.history if h.action == "refused promote"]
    assert [h.actor for h in refusals] == ["gus (via Temporal, actor unverified)"]
    assert "a release window is never skipped" in refusals[0].reason
    assert not any(h.action == "promote" for h in status.history)


async def test_a_window_that_never_opens_fails_the_stage_and_stops_the_line(
    skipping: WorkflowEnvironment,
) -> None:
    staging, production = apartments = names(2)
    world = world_of(apartments)
    frozen = {  # the whole week, in two freezes
        "freeze": [
            {
                "start_day": "mon",
                "start": "00:00",
                "end_day": "thu",
                "end": "00:00",
                "timezone": "Asia/Seoul",
            },
            {
                "start_day": "thu",
                "start": "00:00",
                "end_day": "mon",
                "end": "00:00",
                "timezone": "Asia/Seoul",
            },
        ]
    }
    async with running(skipping, world) as queue:
        status = await (
            await start(skipping, queue, pipeline(staging, [production], {}, {"window": frozen}))
        ).result()
    assert status.state == "failed"
    assert [s.state for s in status.stages] == ["succeeded", "failed"]
    reason = status.stages[1].reason or ""
    assert "never opens" in reason and "no window opens in the next 14 days" in reason
    assert "production failed" in (status.reason or "")
    assert await child_started_at(skipping, rollout_id_for(production, "header")) is None
    assert world.building(production).active_unit == "header@1.3.0"
    assert world.building(staging).active_unit == "header@5.0.0"  # on_failure keep
