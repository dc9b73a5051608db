"""ReleasePipelineWorkflow: one unit version through ordered stages, each a child rollout or fleet.

A stage with one apartment runs a RolloutWorkflow (id `rollout.<apartment>.<building>`,
so the one-rollout-per-building rule holds); with several, a FleetRolloutWorkflow
in batches. After a stage's child succeeds its gates run in order: the soak (a
durable timer, stopped while paused, skipped by promote), the verify webhooks
(signed and pinned like every outbound call: activities/gates.py) and the
approvals (verified actors only, checked in the update validator). A failed
stage stops the line: no later stage starts, and `on_failure: restore` puts
earlier stages back where they still hold this pipeline's unit (the fleet's
restore rule).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities, WebhookInput
    from activities.manifests import ActiveUnitsInput, ManifestActivities, RestoreFromRevisionInput
    from skyline.control_proof import SignedApproval, SignedControl, plain
    from skyline.controls import PIPELINE_TABLE, Answer, Control
    from skyline.figures import Look
    from skyline.fleet import FleetInput, FleetSpec, FleetStatus
    from skyline.manifest import ManifestChange
    from skyline.pipeline import (
        ApprovalRecord,
        PipelineInput,
        PipelineStatus,
        Stage,
        StageStatus,
        approval_problem,
        stage_fleet_id,
        window_check,
    )
    from skyline.rollout import (
        TERMINAL_STATES,
        ControlRequest,
        RolloutInput,
        RolloutStatus,
        rollout_id_for,
    )
    from workflows import indexing, options
    from workflows.controls import ControlSurface
    from workflows.edge_write import sync_edge
    from workflows.fleet import FleetRolloutWorkflow, failure_cause
    from workflows.hooks import cause
    from workflows.pipeline_state import PipelineBook
    from workflows.rollout import RolloutWorkflow
    from workflows.soak_watch import harm_found

# Fields of the pipeline's spec that are not a child's.
_PIPELINE_ONLY = {"stages", "on_failure", "apartment", "start_at"}


@workflow.defn
class ReleasePipelineWorkflow(ControlSurface, PipelineBook):
    TABLE: ClassVar[Mapping[Any, Mapping[Any, Answer]]] = PIPELINE_TABLE

    @workflow.init
    def __init__(self, inp: PipelineInput) -> None:
        now = workflow.now()
        spec = inp.spec
        self._spec = spec
        self._status = PipelineStatus(
            pipeline_id=inp.pipeline_id,
            unit_id=spec.unit_id,
            version=spec.version,
            building=spec.building,
            started_by=spec.actor,
            state="progressing",
            on_failure=spec.on_failure,
            stages=[
                StageStatus(
                    name=stage.name,
                    apartments=stage.apartments,
                    kind="rollout" if len(stage.apartments) == 1 else "fleet",
                    child_id=(
                        rollout_id_for(stage.apartments[0], spec.building)
                        if len(stage.apartments) == 1
                        else stage_fleet_id(inp.pipeline_id, stage.name)
                    ),
                )
                for stage in spec.stages
            ],
            started_at=now,
            updated_at=now,
        )
        self._paused = False
        self._rollback = None
        self._rejected = None
        self._skip_soak = False
        self._child = None
        self._record("start", spec.actor, spec.reason)

    # ----- the control surface (workflows/controls.py) ----------------------------------

    @workflow.query
    def status(self) -> PipelineStatus:
        return self._status

    def _phase(self) -> str:
        if self._status.state in TERMINAL_STATES:
            return "ended"
        if self._rollback is not None:
            return "rolling_back"
        if self._paused:
            return "paused"
        stage = self._stage()
        if stage is not None and stage.state == "pending" and stage.waiting_for:
            return "awaiting_window"
        if stage is not None and stage.state in ("soaking", "verifying", "awaiting_approval"):
            return stage.state
        return "running"

    def _facts(self) -> dict[str, str]:
        stage = self._stage()
        return {"state": self._status.state, "waiting_for": (stage.waiting_for or "") if stage else ""}

    async def _apply(self, control: Control, req: ControlRequest) -> None:
        forwarded = ControlRequest(actor=req.actor, reason=f"pipeline: {req.reason}")
        child = self._child
        if control == "pause":
            self._paused = True
            self._status.paused_reason = f"paused by {req.actor}: {req.reason or 'no reason given'}"
            self._set_state("paused")
            if child is not None:
                await child.signal("pause_signal", forwarded)
        elif control == "resume":
            self._paused = False
            self._status.paused_reason = None
            self._set_state("progressing")
            if child is not None:
                await child.signal("resume_signal", forwarded)
        elif control == "promote":
            self._skip_soak = True
        else:
            self._rollback = req
            if child is not None:
                await child.signal("rollback_signal", forwarded)

    async def _settle(self, control: Control, req: ControlRequest) -> None:
        if control == "rollback":  # answers once every stage is back
            await workflow.wait_condition(lambda: self._status.state in TERMINAL_STATES)

    def _snapshot(self) -> PipelineStatus:
        return self._status

    # ----- approvals: updates only (a signal's sender is not verified) --------------------

    def _approval_refusal(self, req: SignedApproval) -> str | None:
        stage = self._stage()
        gate = self._spec.stages[self._status.stage].approval if stage is not None else None
        if stage is None or gate is None:
            return "cannot approve: no approval is awaited"
        return approval_problem(
            gate,
            starter=self._status.started_by,
            approvals=stage.approvals,
            actor=req.actor,
            role=req.role,
            verified=req.proof is not None,
        )

    @workflow.update
    async def approve(self, req: SignedApproval) -> PipelineStatus:
        # Checked again here (the validator does not run on replay): a function of the history only.
        verified = req.proof is not None
        if verified:
            self._proof_nonces = self._proof_nonces | {req.proof.nonce}  # type: ignore[union-attr]
        refused = self._approval_refusal(req) if self._phase() == "awaiting_approval" else "not awaited"
        stage = self._stage()
        if refused or stage is None:
            self._record("refused approve", req.actor, refused or "no stage")
            return self._status
        stage.approvals.append(
            ApprovalRecord(actor=req.actor, role=req.role, at=workflow.now(), reason=req.reason)
        )
        self._record("approve", req.actor, f"{stage.name}: {req.reason}".rstrip(": "))
        return self._status

    @approve.validator
    def _validate_approve(self, req: SignedApproval) -> None:
        self._check("approve", req)
        refused = self._approval_refusal(req)
        if refused:
            raise ApplicationError(refused, type="InvalidControl", non_retryable=True)

    @workflow.update
    async def reject(self, req: SignedControl) -> PipelineStatus:
        verified = self._verified(req)
        if self._phase() != "awaiting_approval":
            self._record("refused reject", verified.actor, "no approval is awaited")
            return self._status
        self._rejected = verified
        self._record("reject", verified.actor, verified.reason)
        await workflow.wait_condition(lambda: self._status.state in TERMINAL_STATES)
        return self._status

    @reject.validator
    def _validate_reject(self, req: SignedControl) -> None:
        self._check("reject", req)

    @workflow.signal(name="reject_signal")
    async def reject_signal(self, req: ControlRequest) -> None:
        """From the Temporal UI: a rejection only stops the line, so an unverified one is honoured."""
        actor = plain(req).actor
        if self._phase() != "awaiting_approval":
            self._record(
                "refused reject", f"{actor} (via Temporal, actor unverified)", "no approval is awaited"
            )
            return
        self._rejected = ControlRequest(actor=f"{actor} (via Temporal, actor unverified)", reason=req.reason)
        self._record("reject", self._rejected.actor, req.reason)

    # ----- a stage --------------------------------------------------------------------

    async def _window(self, stage: Stage, st: StageStatus) -> str | None:
        """Hold the stage (pending) while its release window is closed: a durable timer until the
        next opening, looked at again then (openings are computed to the minute) and after a
        pause. Why it cannot start at all (no opening within the horizon), or None: start now,
        or a rollback ended the wait."""
        # A stage without `window` issues no command and no marker here: that is every stage of
        # a pipeline started before the field existed (a Strict spec refuses unknown fields), so
        # their histories replay unchanged; the patch marks the runs that may wait.
        if stage.window is None or not workflow.patched("pipeline-stage-window"):
            return None
        waited = False
        while self._rollback is None:
            if self._paused:
                await workflow.wait_condition(lambda: not self._paused or self._rollback is not None)
                continue
            now = workflow.now()
            # A function of workflow time and the spec only, so it replays; the time zone rules
            # come from the worker's tz database (passed through: skyline.windows), which a
            # tzdata update could change only for the instants it re-rules.
            check = window_check(now, stage.window)
            if check.action == "fail":
                st.waiting_for = None
                return f"its release window never opens: {check.reason}"
            if check.action == "start" or check.until is None:
                if waited:
                    self._enter(st, "pending")
                    self._record("window opened", "skyline", stage.name)
                return None
            if st.waiting_for != check.reason:
                self._enter(st, "pending", check.reason)
                self._record("window closed", "skyline", f"{stage.name}: {check.reason}")
            waited = True
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._paused or self._rollback is not None,
                    timeout=max(check.until - now, timedelta(seconds=1)),
                )
        st.waiting_for = None
        return None

    async def _run_child(self, stage: Stage, st: StageStatus) -> bool:
        spec = self._spec
        fields = spec.model_dump(exclude=_PIPELINE_ONLY)
        if stage.strategy is not None:
            fields["strategy"] = stage.strategy.model_dump()
        summary = f"{spec.unit_key} → {', '.join(stage.apartments)} ({self._status.pipeline_id}/{stage.name})"
        strategy = (stage.strategy or spec.strategy).kind
        try:
            if st.kind == "rollout":
                child: Any = await workflow.start_child_workflow(
                    RolloutWorkflow.run,
                    RolloutInput.model_validate(
                        {"rollout_id": st.child_id, "spec": {**fields, "apartment": stage.apartments[0]}}
                    ),
                    id=st.child_id,
                    # Abandon: each child keeps its own safety if the pipeline is terminated.
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=summary,
                    search_attributes=indexing.child_rollout(
                        stage.apartments[0], spec.building, spec.version, spec.unit_id, strategy
                    ),
                )
            else:
                fleet = FleetSpec.model_validate(
                    {
                        **fields,
                        "apartments": stage.apartments,
                        "batch_size": stage.batch_size,
                        "batch_pause_seconds": stage.batch_pause_seconds,
                        "on_failure": "rollback_all" if spec.on_failure == "restore" else "keep",
                    }
                )
                child = await workflow.start_child_workflow(
                    FleetRolloutWorkflow.run,
                    FleetInput(fleet_id=st.child_id, spec=fleet),
                    id=st.child_id,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=summary,
                    search_attributes=indexing.child_fleet(
                        spec.building, spec.version, spec.unit_id, strategy
                    ),
                )
        except Exception as err:  # noqa: BLE001 - e.g. the building already has a rollout running
            st.reason = f"could not start: {failure_cause(err)}"
            return False
        self._child = child
        if self._paused:  # paused while the child was being started
            await child.signal("pause_signal", ControlRequest(actor="skyline", reason="pipeline: paused"))
        try:
            result: RolloutStatus | FleetStatus = await child
        except ChildWorkflowError as err:
            st.reason = failure_cause(err)
            return False
        finally:
            self._child = None
        st.child_state = result.state
        st.reason = result.reason
        if isinstance(result, RolloutStatus):
            if result.state == "succeeded":
                st.live = [result.apartment]
            if result.base_revision is not None:
                st.base_revisions[result.apartment] = result.base_revision
        else:
            for name, entry in result.apartments.items():
                if entry.state == "succeeded":
                    st.live.append(name)
                if entry.base_revision is not None:
                    st.base_revisions[name] = entry.base_revision
        return result.state == "succeeded"

    def _enter(self, st: StageStatus, state: Any, waiting_for: str | None = None) -> None:
        st.state = state
        st.waiting_for = waiting_for
        self._status.updated_at = workflow.now()
        self._details()

    async def _soak(self, stage: Stage, st: StageStatus) -> str | None:
        """A durable timer of `soak_seconds` of unpaused time (promote skips the rest); then the
        stage's apartments must still hold this pipeline's unit. Why not, or None."""
        remaining = stage.soak_seconds
        self._skip_soak = False
        # The judge keeps looking every analysis interval (workflows/soak_watch.py); pipelines
        # started before it soak on a timer alone.
        judged = remaining > 0 and bool(st.live) and workflow.patched("pipeline-soak-judged")
        strategy = stage.strategy or self._spec.strategy
        interval = strategy.analysis_interval_seconds if judged else remaining
        soak_began = workflow.now()
        looks: dict[str, list[Look]] = {apartment: [] for apartment in st.live}
        while remaining > 0 and self._rollback is None and not self._skip_soak:
            if self._paused:
                await workflow.wait_condition(lambda: not self._paused or self._rollback is not None)
                continue
            started = workflow.now()
            st.soak_until = started + timedelta(seconds=remaining)
            self._enter(st, "soaking", f"soak until {st.soak_until.isoformat(timespec='seconds')}")
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._paused or self._rollback is not None or self._skip_soak,
                    timeout=timedelta(seconds=min(remaining, interval)),
                )
            remaining -= (workflow.now() - started).total_seconds()
            if judged and not (self._paused or self._rollback is not None or self._skip_soak):
                for apartment in st.live:
                    harm = await harm_found(
                        apartment,
                        self._spec.building,
                        self._spec.unit_id,
                        self._spec.version,
                        strategy,
                        looks[apartment],
                        since_seconds=(workflow.now() - soak_began).total_seconds(),
                        soak_seconds=stage.soak_seconds,
                        last=remaining <= 0,
                    )
                    if harm is not None:
                        st.soak_until = None
                        return f"during the soak the judge found harm in {apartment}: {harm}"
        if remaining > 0 and self._skip_soak:
            self._record(
                "soak skipped", "skyline", f"{stage.name}: {remaining:g}s of soak left out (promote)"
            )
        self._skip_soak = False
        if stage.soak_seconds <= 0 or self._rollback is not None or not st.live:
            return None
        if not workflow.patched("pipeline-soak-holds"):
            return None  # pipelines started before the check: the soak was a timer only
        active = await workflow.execute_activity_method(
            ManifestActivities.active_units,
            ActiveUnitsInput(apartments=st.live, building=self._spec.building),
            summary=f"{stage.name}: does every apartment still hold {self._spec.unit_key}?",
            **options.PREPARE,
        )
        moved = {a: u for a, u in active.items() if u != self._spec.unit_key}
        if moved:
            return "during the soak " + "; ".join(
                f"{a} changed to {u or 'nothing'}" for a, u in sorted(moved.items())
            )
        return None

    def _payload(self, stage: Stage) -> dict[str, object]:
        return {
            "event": "pipeline_verify",
            "pipeline_id": self._status.pipeline_id,
            "unit_id": self._spec.unit_id,
            "version": self._spec.version,
            "building": self._spec.building,
            "stage": stage.name,
            "apartments": stage.apartments,
        }

    async def _verify(self, stage: Stage, st: StageStatus) -> str | None:
        """None when every verify webhook answered 2xx, else why not (after its retries)."""
        for hook in stage.verify:
            host = urlsplit(hook.url).hostname or "?"
            self._enter(st, "verifying", f"verify webhook on {host}")
            try:
                await workflow.execute_activity_method(
                    GateActivities.call_webhook,
                    WebhookInput(
                        event="pipeline_verify",
                        url=hook.url,
                        timeout_seconds=hook.timeout_seconds,
                        payload=self._payload(stage),
                    ),
                    summary=f"verify {stage.name} ({host})",
                    **options.webhook(hook.timeout_seconds, hook.retries),
                )
            except ActivityError as err:
                return f"verify {hook.url}: {cause(err)}"
            st.verified.append(f"{hook.url} answered 2xx")
            self._record("verified", "skyline", f"{stage.name}: {hook.url} answered 2xx")
            if self._rollback is not None:
                return None
        return None

    async def _approval(self, stage: Stage, st: StageStatus) -> str | None:
        gate = stage.approval
        if gate is None:
            return None
        expires = workflow.now() + timedelta(seconds=gate.expires_seconds)
        st.approval_expires_at = expires
        who = f"a {gate.role}" + (f" other than {self._status.started_by}" if gate.not_starter else "")
        self._enter(st, "awaiting_approval", f"{gate.count} approval(s) by {who}")
        try:
            await workflow.wait_condition(
                lambda: (
                    len(st.approvals) >= gate.count
                    or self._rejected is not None
                    or self._rollback is not None
                ),
                timeout=timedelta(seconds=gate.expires_seconds),
            )
        except TimeoutError:
            return f"approval expired after {gate.expires_seconds:g}s ({len(st.approvals)}/{gate.count})"
        if self._rejected is not None:
            return f"rejected by {self._rejected.actor}: {self._rejected.reason or 'no reason given'}"
        return None

    async def _gates(self, stage: Stage, st: StageStatus) -> str | None:
        """Why the stage failed its gates, or None (also when a rollback cut them short)."""
        problem = await self._soak(stage, st)
        if problem or self._rollback is not None:
            return problem
        problem = await self._verify(stage, st)
        if problem or self._rollback is not None:
            return problem
        return await self._approval(stage, st)

    # ----- stopping the line ----------------------------------------------------------

    async def _restore(self, st: StageStatus, why: str) -> None:
        """Each apartment of `st` back to its revision before this stage, only while it holds our unit."""
        info = workflow.info()
        restored = False
        for apartment in list(st.live):
            revision = st.base_revisions.get(apartment)
            if revision is None:
                continue
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
                    only_if_active=self._spec.unit_key,
                ),
                summary=f"restore {apartment}/{self._spec.building} to revision {revision}",
                **options.MANIFEST,
            )
            if not result.restored:
                # Someone else changed the building since (a hotfix, a new rollout): theirs to keep.
                self._record("kept", "skyline", f"{apartment}: {result.reason}")
                continue
            await sync_edge(
                apartment, result.revision, what=f"purge and verify {apartment} revision {result.revision}"
            )
            st.live.remove(apartment)
            restored = True
            self._record("restored", "skyline", f"{apartment}: {why}", revision=result.revision)
        if restored:
            st.state = "rolled_back"
        st.waiting_for = None

    async def _restore_up_to(self, last: int, why: str) -> None:
        for st in reversed(self._status.stages[: last + 1]):
            if st.live:
                await self._restore(st, why)

    async def _stop_the_line(self, index: int, problem: str) -> PipelineStatus:
        """Stage `index` failed: no later stage starts; earlier ones follow `on_failure`."""
        spec = self._spec
        stage, st = spec.stages[index], self._status.stages[index]
        self._enter(st, "failed")
        st.reason = problem
        self._record("stage failed", "skyline", f"{stage.name}: {problem}")
        if spec.on_failure == "restore":
            await self._restore_up_to(index, f"pipeline stopped: {stage.name} failed")
        later = [s.name for s in spec.stages[index + 1 :]]
        return self._finish(
            "failed",
            f"{stage.name} failed ({problem}); "
            + (f"not started: {', '.join(later)}" if later else "no later stage"),
        )

    @workflow.run
    async def run(self, inp: PipelineInput) -> PipelineStatus:
        spec = self._spec
        for index, stage in enumerate(spec.stages):
            await workflow.wait_condition(lambda: not self._paused or self._rollback is not None)
            if self._rollback is not None:
                break
            self._status.stage = index
            st = self._status.stages[index]
            closed = await self._window(stage, st)
            if self._rollback is not None:
                break  # the waiting stage never started: skipped when the pipeline ends
            if closed is not None:
                return await self._stop_the_line(index, closed)
            self._enter(st, "running")
            self._record("stage", "skyline", f"{stage.name}: {', '.join(stage.apartments)} ({st.kind})")
            ok = await self._run_child(stage, st)
            problem = None if ok else f"{st.kind} {st.child_id} {st.child_state or 'failed'}: {st.reason}"
            if ok:
                problem = await self._gates(stage, st)
            if self._rollback is not None:
                st.state = "succeeded" if ok else "failed"
                break
            if problem is not None:
                return await self._stop_the_line(index, problem)
            self._enter(st, "succeeded")
            self._record("stage succeeded", "skyline", stage.name)
        if self._rollback is not None:
            req = self._rollback
            await self._restore_up_to(self._status.stage, f"pipeline rollback: {req.reason}")
            return self._finish("rolled_back", f"{req.reason or 'rolled back'} (by {req.actor})")
        return self._finish("succeeded", f"{spec.unit_key} through {len(spec.stages)} stages")
