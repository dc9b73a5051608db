"""FleetRolloutWorkflow: one unit version across many apartments, in batches of child rollouts.

The bundle is published and gated once; every apartment then runs its own
RolloutWorkflow (its own strategy and analysis) as a child with the usual id
`rollout.<apartment>.<building>`, so the one-rollout-per-building rule holds.
A failed apartment stops the fleet: no further batch starts, and `on_failure`
decides whether apartments already done keep the new unit or go back too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.manifests import FindFleetInput, ManifestActivities, RestoreFromRevisionInput
    from skyline.controls import FLEET_TABLE, Answer, Control
    from skyline.fleet import ApartmentState, FleetApartment, FleetInput, FleetStatus, batches
    from skyline.manifest import ManifestChange, Unit
    from skyline.rollout import (
        TERMINAL_STATES,
        ControlRequest,
        RolloutInput,
        RolloutStatus,
        rollout_id_for,
    )
    from workflows import indexing, options
    from workflows.controls import ControlSurface
    from workflows.deadline import ProgressDeadline
    from workflows.edge_write import sync_edge
    from workflows.fleet_state import FleetBook
    from workflows.publishing import publish_unit
    from workflows.rollout import RolloutWorkflow


def failure_cause(err: BaseException) -> str:
    """The innermost message of an activity or child workflow failure."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return str(err)


@workflow.defn
class FleetRolloutWorkflow(ControlSurface, FleetBook):
    TABLE: ClassVar[Mapping[Any, Mapping[Control, Answer]]] = FLEET_TABLE

    @workflow.init
    def __init__(self, inp: FleetInput) -> None:
        now = workflow.now()
        self._spec = inp.spec
        self._status = FleetStatus(
            fleet_id=inp.fleet_id,
            unit_id=inp.spec.unit_id,
            version=inp.spec.version,
            building=inp.spec.building,
            state="publishing",
            started_at=now,
            updated_at=now,
        )
        self._paused = False
        self._rollback: ControlRequest | None = None
        self._next_now = False
        self._children: dict[str, ChildWorkflowHandle[Any, RolloutStatus]] = {}
        self._deadline = ProgressDeadline(inp.spec.max_duration_seconds, now)
        self._base_revisions: dict[str, int] = {}
        self._publishing = True
        self._between_batches = False
        self._unit_id: str | None = None
        self._record("start", inp.spec.actor, inp.spec.reason)

    # ----- the control surface (workflows/controls.py) ----------------------------------

    @workflow.query
    def status(self) -> FleetStatus:
        return self._status

    def _phase(self) -> str:
        if self._status.state in TERMINAL_STATES:
            return "ended"
        if self._rollback is not None:
            return "rolling_back"
        if self._publishing:
            return "publishing_paused" if self._paused else "publishing"
        if self._paused:
            return "paused"
        return "between_batches" if self._between_batches else "progressing"

    def _facts(self) -> dict[str, str]:
        return {"state": self._status.state}

    def _running(self) -> list[ChildWorkflowHandle[Any, RolloutStatus]]:
        return [h for a, h in self._children.items() if self._status.apartments[a].state == "running"]

    async def _apply(self, control: Control, req: ControlRequest) -> None:
        forwarded = ControlRequest(actor=req.actor, reason=f"fleet: {req.reason}")
        if control == "pause":
            self._paused = True
            self._deadline.hold(workflow.now())
            self._status.paused_reason = f"paused by {req.actor}: {req.reason or 'no reason given'}"
            self._set_state("paused")
            for handle in self._running():
                await handle.signal(RolloutWorkflow.pause_signal, forwarded)
        elif control == "resume":
            self._paused = False
            self._deadline.release(workflow.now())
            self._status.paused_reason = None
            self._set_state("publishing" if self._publishing else "progressing")
            for handle in self._running():
                await handle.signal(RolloutWorkflow.resume_signal, forwarded)
        elif control == "promote":
            self._next_now = True
        else:
            self._rollback = req
            for handle in self._running():
                await handle.signal(RolloutWorkflow.rollback_signal, forwarded)

    async def _settle(self, control: Control, req: ControlRequest) -> None:
        if control == "rollback":  # answers once every apartment is back
            await workflow.wait_condition(lambda: self._status.state in TERMINAL_STATES)

    def _snapshot(self) -> FleetStatus:
        return self._status

    # ----- the fleet -----------------------------------------------------------------

    async def _run_child(self, apartment: str, unit: Unit) -> None:
        spec = self._spec
        child_spec = spec.model_copy(update={"apartment": apartment})
        rollout_id = rollout_id_for(apartment, spec.building)
        child_input = RolloutInput.model_validate(
            {
                "rollout_id": rollout_id,
                "spec": child_spec.model_dump(
                    exclude={"apartments", "batch_size", "batch_pause_seconds", "on_failure"}
                ),
                "prepublished": unit.model_dump(),
            }
        )
        try:
            handle = await workflow.start_child_workflow(
                RolloutWorkflow.run,
                child_input,
                id=rollout_id,
                # Abandon: each apartment's rollout keeps its own safety if the fleet is terminated.
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"{spec.unit_key} → {apartment}/{spec.building} ({self._status.fleet_id})",
                # the UI's list tells this rollout apart like one the API started
                search_attributes=indexing.child_rollout(
                    apartment, spec.building, spec.version, spec.unit_id, spec.strategy.kind
                ),
            )
        except Exception as err:  # noqa: BLE001 - e.g. the building already has a rollout running
            self._mark(apartment, "failed", f"could not start: {failure_cause(err)}")
            return
        self._children[apartment] = handle
        self._mark(apartment, "running")
        try:
            result = await handle
        except ChildWorkflowError as err:
            self._mark(apartment, "failed", failure_cause(err))
            return
        state: ApartmentState = (
            result.state if result.state in ("succeeded", "rolled_back", "failed") else "failed"
        )
        self._mark(apartment, state, result.reason)
        self._status.apartments[apartment].weight = result.weight
        if result.base_revision is not None:
            self._base_revisions[apartment] = result.base_revision
            self._status.apartments[apartment].base_revision = result.base_revision

    async def _restore(self, apartment: str, why: str) -> None:
        """Put an apartment's building back, only if it still holds what this fleet wrote."""
        revision = self._base_revisions.get(apartment)
        if revision is None:
            return
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}/restore/{apartment}", actor=self._spec.actor, reason=why
        )
        result = await workflow.execute_activity_method(
            ManifestActivities.restore_building_from_revision,
            RestoreFromRevisionInput(
                apartment=apartment,
                building=self._spec.building,
                revision=revision,
                change=change,
                only_if_active=self._unit_id,
            ),
            summary=f"restore {apartment}/{self._spec.building} to revision {revision}",
            **options.MANIFEST,
        )
        if not result.restored:
            # Someone else changed the building since (a hotfix, a new rollout): theirs to keep.
            self._mark(apartment, "kept", result.reason)
            self._record("kept", "skyline", f"{apartment}: {result.reason}")
            return
        await sync_edge(
            apartment, result.revision, what=f"purge and verify {apartment} revision {result.revision}"
        )
        self._mark(apartment, "rolled_back", why)

    async def _roll_back_done(self, why: str) -> None:
        for apartment, entry in self._status.apartments.items():
            if entry.state == "succeeded":
                await self._restore(apartment, why)

    @workflow.run
    async def run(self, inp: FleetInput) -> FleetStatus:
        spec = self._spec
        try:
            targets = await workflow.execute_activity_method(
                ManifestActivities.find_fleet_apartments,
                FindFleetInput(building=spec.building, unit_id=spec.unit_id, apartments=spec.apartments),
                summary="find the apartments",
                **options.PREPARE,
            )
            unit = await publish_unit(spec, lambda action, reason: self._record(action, "skyline", reason))
        except ActivityError as err:
            return self._finish("failed", f"{failure_cause(err)}; no apartment touched")
        self._unit_id = unit.id
        self._publishing = False
        self._status.batches = batches(targets, spec.batch_size)
        for index, batch in enumerate(self._status.batches):
            for apartment in batch:
                self._status.apartments[apartment] = FleetApartment(
                    apartment=apartment, batch=index, rollout_id=rollout_id_for(apartment, spec.building)
                )
        self._set_state("paused" if self._paused else "progressing")
        for index, batch in enumerate(self._status.batches):
            if index > 0 and spec.batch_pause_seconds > 0 and self._rollback is None:
                deferred = workflow.patched("fleet-deferred-promote")
                if not deferred:
                    self._next_now = False  # before: a promote during a batch was dropped here
                self._between_batches = True
                deadline = workflow.now() + timedelta(seconds=spec.batch_pause_seconds)
                while self._rollback is None and not self._next_now and workflow.now() < deadline:
                    await self._wait(
                        lambda: self._rollback is not None or self._next_now,
                        cap=(deadline - workflow.now()).total_seconds(),
                    )
                self._between_batches = False
                if deferred:
                    self._next_now = False  # consumed
            await self._wait(lambda: not self._paused or self._rollback is not None)
            if self._rollback is not None:
                break
            self._status.batch = index
            self._record("batch", "skyline", f"batch {index + 1}: {', '.join(batch)}")
            self._set_state("progressing")
            await asyncio.gather(*(self._run_child(apartment, unit) for apartment in batch))
            failed = [a for a in batch if self._status.apartments[a].state != "succeeded"]
            if failed:
                for entry in self._status.apartments.values():
                    if entry.state == "pending":
                        entry.state = "skipped"
                reasons = "; ".join(f"{a}: {self._status.apartments[a].reason}" for a in failed)
                if self._rollback is not None:
                    break
                if spec.on_failure == "rollback_all":
                    await self._roll_back_done(f"fleet stopped: {', '.join(failed)} failed")
                    return self._finish(
                        "rolled_back", f"{', '.join(failed)} failed ({reasons}); all apartments rolled back"
                    )
                return self._finish(
                    "failed", f"{', '.join(failed)} failed ({reasons}); later batches not started"
                )
        if self._rollback is not None:
            for entry in self._status.apartments.values():
                if entry.state == "pending":
                    entry.state = "skipped"
            await self._roll_back_done(f"fleet rollback: {self._rollback.reason}")
            return self._finish(
                "rolled_back", f"{self._rollback.reason or 'rolled back'} (by {self._rollback.actor})"
            )
        return self._finish("succeeded", f"{spec.unit_key} live in {len(targets)} apartments")
