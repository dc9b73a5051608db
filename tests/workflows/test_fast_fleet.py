"""FleetRolloutWorkflow on the time-skipping server: batches, failure policies, the restore rule, controls."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.metrics import GatherFiguresInput, GatherFiguresResult
from skyline.control_proof import SignedPromote
from skyline.fleet import FleetInput, FleetSpec, FleetStatus
from skyline.manifest_ops import PromoteUnit, SetCanary
from skyline.rollout import ControlRequest
from tests.support.histories import save_history
from tests.workflows.conftest import running
from tests.workflows.world import Traffic, World, failing, healthy, stable_unit
from workflows.fleet import FleetRolloutWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


def fleet(apartments: list[str], **extra: Any) -> FleetSpec:
    return FleetSpec.model_validate(
        {
            "building": "header",
            "unit_id": "header",
            "version": "5.0.0",
            "bundle": {"upload_id": "0" * 32},
            "strategy": {"steps": [100], "bake_seconds": 120},
            "apartments": apartments,
            "actor": "alice",
            **extra,
        }
    )


async def start(env: WorkflowEnvironment, queue: str, spec: FleetSpec) -> WorkflowHandle[Any, FleetStatus]:
    fleet_id = f"fleet.header.header.{uuid.uuid4().hex[:6]}"
    return await env.client.start_workflow(
        FleetRolloutWorkflow.run, FleetInput(fleet_id=fleet_id, spec=spec), id=fleet_id, task_queue=queue
    )


def per_apartment(bad: set[str]) -> Traffic:
    good, broken = healthy(), failing()

    def script(inp: GatherFiguresInput, weight: float) -> GatherFiguresResult:
        return (broken if inp.apartment in bad else good)(inp, weight)

    return script


def names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"a{i}-{tag}" for i in range(n)]


async def test_rollback_all_restores_every_done_apartment_exactly(skipping: WorkflowEnvironment) -> None:
    apartments = names(3)
    world = World(traffic=per_apartment({apartments[2]}))
    for a in apartments:
        world.create(a, active="1.3.0")
    before = {a: world.building(a) for a in apartments}
    async with running(skipping, world) as queue:
        status = await (await start(skipping, queue, fleet(apartments, on_failure="rollback_all"))).result()
    assert status.state == "rolled_back"
    for a in apartments:
        # every building exactly as before the fleet, not merely the same active unit
        assert world.building(a) == before[a], a
    assert {a: s.state for a, s in status.apartments.items()} == {
        apartments[0]: "rolled_back",
        apartments[1]: "rolled_back",
        apartments[2]: "rolled_back",
    }


async def test_keep_leaves_done_apartments_and_skips_later_batches(skipping: WorkflowEnvironment) -> None:
    apartments = names(3)
    world = World(traffic=per_apartment({apartments[1]}))
    for a in apartments:
        world.create(a, active="1.3.0")
    async with running(skipping, world) as queue:
        status = await (await start(skipping, queue, fleet(apartments, on_failure="keep"))).result()
    assert status.state == "failed"
    assert world.building(apartments[0]).active_unit == "header@5.0.0"
    assert world.building(apartments[1]).active_unit == "header@1.3.0"
    assert status.apartments[apartments[2]].state == "skipped"
    assert world.building(apartments[2]).active_unit == "header@1.3.0"


async def test_a_fleet_rollback_never_reverts_someone_elses_hotfix(skipping: WorkflowEnvironment) -> None:
    """Defect: shop succeeded, a hotfix 5.0.1 went out on shop, blog failed: the fleet restored 1.3.0."""
    shop, blog = names(2)
    world = World()
    for a in (shop, blog):
        world.create(a, active="1.3.0")
    spec = fleet([shop, blog], on_failure="rollback_all", batch_pause_seconds=3600)
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, spec)
        await skipping.sleep(600)
        assert (await handle.query(FleetRolloutWorkflow.status)).apartments[shop].state == "succeeded"
        hotfix = stable_unit("header", "5.0.1")
        world.write(shop, SetCanary(building="header", unit=hotfix, rollout={"percentage": 100}))
        world.write(shop, PromoteUnit(building="header", unit_id=hotfix.id))
        world.traffic = per_apartment({blog})
        status = await handle.result()
        await save_history(skipping.client, handle.id, "fleet_kept_a_hotfix")
    assert status.state == "rolled_back"
    assert world.building(shop).active_unit == "header@5.0.1"  # the hotfix stays
    assert status.apartments[shop].state == "kept"
    assert "5.0.1" in (status.apartments[shop].reason or "")
    assert world.building(blog).active_unit == "header@1.3.0"


async def test_promote_during_a_batch_is_honoured_at_the_next_pause(skipping: WorkflowEnvironment) -> None:
    apartments = names(2)
    world = World()
    for a in apartments:
        world.create(a, active="1.3.0")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, fleet(apartments, batch_pause_seconds=86_400))
        await skipping.sleep(30)  # the first batch is running
        answered = await handle.execute_update(FleetRolloutWorkflow.promote, SignedPromote(actor="carol"))
        assert isinstance(answered, FleetStatus)
        status = await handle.result()
        await save_history(skipping.client, handle.id, "fleet_promote_deferred")
    assert status.state == "succeeded"
    elapsed = (status.updated_at - status.started_at).total_seconds()
    assert elapsed < 86_400  # the day-long pause was skipped, as promised
    promoted = [h for h in status.history if h.action == "promote"]
    assert len(promoted) == 1 and "deferred" in promoted[0].reason


async def test_controls_after_the_end_are_refused_and_signals_marked_unverified(
    skipping: WorkflowEnvironment,
) -> None:
    apartments = names(1)
    world = World()
    world.create(apartments[0], active="1.3.0")
    async with running(skipping, world) as queue:
        handle = await start(skipping, queue, fleet(apartments, batch_pause_seconds=0))
        await skipping.sleep(10)
        await handle.signal(FleetRolloutWorkflow.pause_signal, ControlRequest(actor="ada"))
        await handle.signal(FleetRolloutWorkflow.resume_signal, ControlRequest(actor="ada"))
        status = await handle.result()
    assert status.state == "succeeded"
    assert {h.actor for h in status.history if h.action in ("pause", "resume")} == {
        "ada (via Temporal, actor unverified)"
    }
