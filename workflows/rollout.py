"""RolloutWorkflow: one progressive rollout of one unit into one building.

Deterministic orchestration only: every side effect is an activity, time is
`workflow.now()`. Controls arrive as Updates (validated, answered) or as the
same-named signals the Temporal UI can send; both funnel into `_control`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cdn import CdnActivities, SyncManifestInput
    from activities.manifests import (
        ApplyManifestChangeInput,
        ManifestActivities,
        PrepareRolloutInput,
        PrepareRolloutResult,
    )
    from activities.metrics import MetricsActivities, QueryMetricsInput
    from activities.publish import (
        PublishActivities,
        PublishBundleInput,
        VerifyBundleInput,
    )
    from skyline.analysis import canary_queries, judge
    from skyline.manifest import ManifestChange, RolloutConfig, Unit, UnitMetadata
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from skyline.rollout import (
        TERMINAL_STATES,
        AnalysisRun,
        ControlRequest,
        HistoryEntry,
        PromoteRequest,
        RolloutInput,
        RolloutState,
        RolloutStatus,
    )
    from workflows import options

Outcome = Literal["next", "full", "rollback"]
MAX_ANALYSES_KEPT = 50


def _cause(err: BaseException) -> str:
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    return str(err)


@workflow.defn
class RolloutWorkflow:
    @workflow.init
    def __init__(self, inp: RolloutInput) -> None:
        spec = inp.spec
        now = workflow.now()
        self._spec = spec
        self._status = RolloutStatus(
            rollout_id=inp.rollout_id,
            apartment=spec.apartment,
            building=spec.building,
            unit_id=spec.unit_id,
            version=spec.version,
            state="publishing",
            steps=spec.strategy.steps,
            step=-1,
            weight=0,
            started_at=now,
            updated_at=now,
        )
        self._resume_state: RolloutState = "publishing"
        self._paused = False
        self._rollback: ControlRequest | None = None
        self._promote: PromoteRequest | None = None
        self._promotions_requested = 0
        self._promotions_done = 0
        self._changes = 0
        self._prep: PrepareRolloutResult | None = None
        self._record("start", spec.actor, spec.reason)

    # ----- queries, updates, signals -------------------------------------------------

    @workflow.query
    def status(self) -> RolloutStatus:
        return self._status

    def _refusal(self, action: str) -> str | None:
        state = self._status.state
        if state in TERMINAL_STATES:
            return f"cannot {action}: the rollout has ended ({state})"
        if action == "pause" and self._paused:
            return "cannot pause: the rollout is already paused"
        if action == "resume" and not self._paused:
            return f"cannot resume: the rollout is not paused ({state})"
        if action == "promote" and state == "publishing":
            return "cannot promote: the bundle is still being published; no traffic has moved yet"
        if action == "promote" and state == "promoting":
            return "cannot promote: the rollout is already being promoted"
        if action in ("promote", "pause") and self._rollback is not None:
            return f"cannot {action}: a rollback is under way"
        return None

    def _check(self, action: str) -> None:
        refusal = self._refusal(action)
        if refusal:
            raise ApplicationError(refusal, type="InvalidControl", non_retryable=True)

    def _control(self, action: str, req: ControlRequest) -> bool:
        """Apply a control if it makes sense now; signals that do not are recorded and dropped."""
        refusal = self._refusal(action)
        if refusal:
            self._record(f"refused {action}", req.actor, refusal)
            return False
        if action == "pause":
            self._paused = True
            self._set_state("paused")
            self._status.paused_reason = f"paused by {req.actor}: {req.reason or 'no reason given'}"
        elif action == "resume":
            self._paused = False
            self._status.paused_reason = None
            self._set_state(self._resume_state)
        elif action == "promote":
            assert isinstance(req, PromoteRequest)
            self._promote = req
            self._promotions_requested += 1
            if self._paused:
                self._paused = False
                self._status.paused_reason = None
                self._set_state(self._resume_state)
        elif action == "rollback":
            self._rollback = req
        full = isinstance(req, PromoteRequest) and req.full
        self._record("promote full" if full else action, req.actor, req.reason)
        return True

    @workflow.update
    async def pause(self, req: ControlRequest) -> RolloutStatus:
        self._control("pause", req)
        return self._status

    @pause.validator
    def _validate_pause(self, req: ControlRequest) -> None:
        self._check("pause")

    @workflow.update
    async def resume(self, req: ControlRequest) -> RolloutStatus:
        self._control("resume", req)
        return self._status

    @resume.validator
    def _validate_resume(self, req: ControlRequest) -> None:
        self._check("resume")

    @workflow.update
    async def promote(self, req: PromoteRequest) -> RolloutStatus:
        """Answers once the next weight (or the promotion) is live at the edge."""
        if self._control("promote", req):
            ticket = self._promotions_requested
            await workflow.wait_condition(
                lambda: self._promotions_done >= ticket or self._status.state in TERMINAL_STATES
            )
        return self._status

    @promote.validator
    def _validate_promote(self, req: PromoteRequest) -> None:
        self._check("promote")

    @workflow.update
    async def rollback(self, req: ControlRequest) -> RolloutStatus:
        """Emergency rollback: answers once last-known-good is served at the edge."""
        if self._control("rollback", req):
            await workflow.wait_condition(lambda: self._status.state in TERMINAL_STATES)
        return self._status

    @rollback.validator
    def _validate_rollback(self, req: ControlRequest) -> None:
        self._check("rollback")

    @workflow.signal(name="pause_signal")
    def pause_signal(self, req: ControlRequest) -> None:
        self._control("pause", req)

    @workflow.signal(name="resume_signal")
    def resume_signal(self, req: ControlRequest) -> None:
        self._control("resume", req)

    @workflow.signal(name="promote_signal")
    def promote_signal(self, req: PromoteRequest) -> None:
        self._control("promote", req)

    @workflow.signal(name="rollback_signal")
    def rollback_signal(self, req: ControlRequest) -> None:
        self._control("rollback", req)

    # ----- bookkeeping -----------------------------------------------------------------

    def _set_state(self, state: RolloutState) -> None:
        self._status.state = state
        if state != "paused":
            self._resume_state = state
        self._status.updated_at = workflow.now()

    def _record(self, action: str, actor: str, reason: str, revision: int | None = None) -> None:
        self._status.history.append(
            HistoryEntry(
                at=workflow.now(),
                action=action,
                actor=actor,
                reason=reason,
                state=self._status.state,
                step=self._status.step,
                weight=self._status.weight,
                revision=revision,
            )
        )
        self._status.updated_at = workflow.now()

    def _finish(self, state: RolloutState, reason: str) -> RolloutStatus:
        self._paused = False
        self._status.paused_reason = None
        self._status.reason = reason
        self._set_state(state)
        self._record(state, "skyline", reason)
        return self._status

    def _pause_for(self, reason: str) -> None:
        self._paused = True
        self._status.paused_reason = reason
        self._set_state("paused")
        self._record("pause", "skyline", reason)

    # ----- side effects through activities ------------------------------------------

    async def _write(self, mutation: SetCanary | PromoteUnit | RestoreBuilding, why: str) -> int:
        self._changes += 1
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}/{self._changes}",
            actor=self._spec.actor,
            reason=why,
        )
        result = await workflow.execute_activity_method(
            ManifestActivities.apply_manifest_change,
            ApplyManifestChangeInput(apartment=self._spec.apartment, change=change, mutation=mutation),
            summary=why,
            **options.MANIFEST,
        )
        await workflow.execute_activity_method(
            CdnActivities.sync_manifest_to_edge,
            SyncManifestInput(apartment=self._spec.apartment, revision=result.revision),
            summary=f"purge and verify revision {result.revision}",
            **options.EDGE_SYNC,
        )
        self._status.revisions.append(result.revision)
        return result.revision

    async def _analyse(self) -> AnalysisRun:
        spec, strategy = self._spec, self._spec.strategy
        queries = canary_queries(
            spec.apartment, spec.building, spec.unit_id, spec.version, strategy.analysis_window_seconds
        )
        try:
            result = await workflow.execute_activity_method(
                MetricsActivities.query_canary_metrics,
                QueryMetricsInput(queries=queries),
                summary=f"analysis at {self._status.weight:g}%",
                **options.METRICS,
            )
            values, errors = result.values, result.errors
        except ActivityError as err:
            values = {q.name: None for q in queries}
            errors = {q.name: f"metrics unavailable: {_cause(err)}" for q in queries}
        verdict, checks, reason = judge(values, errors, strategy)
        run = AnalysisRun(
            at=workflow.now(),
            step=self._status.step,
            weight=self._status.weight,
            verdict=verdict,
            checks=checks,
            reason=reason,
        )
        self._status.last_analysis = run
        self._status.analyses = [*self._status.analyses, run][-MAX_ANALYSES_KEPT:]
        return run

    # ----- the rollout -----------------------------------------------------------------

    def _interrupted(self) -> bool:
        return self._rollback is not None or self._promote is not None

    async def _hold_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._paused or self._interrupted())

    async def _bake(self) -> Outcome:
        """Observe the current weight; analysis every interval, controls at any time."""
        strategy = self._spec.strategy
        remaining = strategy.bake_seconds
        inconclusive = 0
        last: str = "none"
        while True:
            if self._rollback is not None:
                return "rollback"
            if self._promote is not None:
                return "full" if self._promote.full else "next"
            if self._paused:
                await self._hold_while_paused()
                inconclusive = 0  # a human looked and resumed: count afresh
                continue
            if remaining <= 0 and last == "pass":
                return "next"
            if remaining > 0:
                started = workflow.now()
                wait = min(strategy.analysis_interval_seconds, remaining)
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._interrupted() or self._paused, timeout=timedelta(seconds=wait)
                    )
                remaining -= (workflow.now() - started).total_seconds()
                if self._interrupted() or self._paused:
                    continue
            run = await self._analyse()
            last = run.verdict
            if run.verdict == "fail":
                if strategy.auto_rollback:
                    self._rollback = ControlRequest(actor="skyline", reason=f"analysis failed: {run.reason}")
                    return "rollback"
                self._pause_for(f"analysis failed: {run.reason}")
            elif run.verdict == "pass":
                inconclusive = 0
            else:
                inconclusive += 1
                # Never promote blind: at the end of a bake only a pass moves on.
                if inconclusive > strategy.inconclusive_limit or remaining <= 0:
                    self._pause_for(f"analysis inconclusive: {run.reason}")

    def _canary_unit(self, url: str, integrity: str, size: int, prefix: str, files: int) -> Unit:
        spec = self._spec
        return Unit(
            id=spec.unit_key,
            name=spec.unit_id,
            version=spec.version,
            framework=spec.framework,
            url=url,
            checksum=integrity,
            size=size,
            dependencies=spec.dependencies,
            compatibility=spec.compatibility,
            status="canary",
            metadata=UnitMetadata(
                bundle_prefix=prefix,
                entry=spec.entry,
                files=files,
                published_at=workflow.now().isoformat(),
            ),
        )

    async def _publish(self) -> Unit:
        spec = self._spec
        inp = PublishBundleInput(
            unit_id=spec.unit_id, version=spec.version, entry=spec.entry, source=spec.bundle
        )
        published = await workflow.execute_activity_method(
            PublishActivities.publish_bundle, inp, summary=f"publish {spec.unit_key}", **options.PUBLISH
        )
        await workflow.execute_activity_method(
            PublishActivities.verify_bundle_at_edge,
            VerifyBundleInput(entry_url=published.entry_url, integrity=published.integrity),
            summary="verify the entry at the edge",
            **options.VERIFY,
        )
        self._record(
            "published",
            "skyline",
            f"{published.files} files ({published.uploaded} uploaded, {published.skipped} already "
            f"there) at {published.prefix}; edge serves {published.integrity}",
        )
        return self._canary_unit(
            published.entry_url,
            published.integrity,
            published.size,
            published.prefix,
            published.files,
        )

    async def _apply_weight(self, index: int, unit: Unit) -> None:
        weight = self._spec.strategy.steps[index]
        self._status.step = index
        self._status.weight = weight
        rollout = RolloutConfig(
            strategy="canary",
            percentage=weight,
            rollout_id=self._status.rollout_id,
            duration=self._spec.strategy.bake_seconds / 60,
        )
        revision = await self._write(
            SetCanary(building=self._spec.building, unit=unit, rollout=rollout),
            f"{unit.id} at {weight:g}%",
        )
        self._record("set weight", "skyline", f"{weight:g}% of users get {unit.id}", revision)

    async def _do_rollback(self) -> RolloutStatus:
        req = self._rollback or ControlRequest(actor="skyline", reason="rollback")
        reason = f"{req.reason or 'rolled back'} (by {req.actor})"
        if self._prep is None or not self._status.revisions:
            return self._finish("rolled_back", f"{reason}; no traffic had moved, manifest untouched")
        revision = await self._write(
            RestoreBuilding(building=self._spec.building, snapshot=self._prep.snapshot),
            f"rollback of {self._spec.unit_key}: {req.reason}",
        )
        self._status.weight = 0
        self._record(
            "restored", req.actor, f"building restored from revision {self._prep.base_revision}", revision
        )
        return self._finish("rolled_back", reason)

    async def _promote_unit(self, unit: Unit) -> RolloutStatus:
        self._set_state("promoting")
        revision = await self._write(
            PromoteUnit(building=self._spec.building, unit_id=unit.id), f"promote {unit.id}"
        )
        self._status.weight = 100
        self._record("promoted", "skyline", f"{unit.id} is the active unit", revision)
        self._promotions_done = self._promotions_requested
        return self._finish("succeeded", f"{unit.id} promoted to active unit")

    @workflow.run
    async def run(self, inp: RolloutInput) -> RolloutStatus:
        spec = self._spec
        try:
            self._prep = await workflow.execute_activity_method(
                ManifestActivities.prepare_rollout,
                PrepareRolloutInput(
                    apartment=spec.apartment,
                    building=spec.building,
                    unit_id=spec.unit_id,
                    version=spec.version,
                    force=spec.force,
                ),
                summary="validate against the current manifest",
                **options.PREPARE,
            )
            self._status.base_revision = self._prep.base_revision
            self._status.baseline_unit = self._prep.baseline_unit
            unit = await self._publish()
            self._status.canary = unit
        except ActivityError as err:
            return self._finish("failed", f"{_cause(err)}; manifest untouched")
        try:
            index = 0
            steps = spec.strategy.steps
            self._resume_state = "progressing"
            if not self._paused:
                self._set_state("progressing")
            while True:
                await self._hold_while_paused()
                if self._rollback is not None:
                    return await self._do_rollback()
                if self._promote is not None and self._promote.full:
                    self._promote = None
                    return await self._promote_unit(unit)
                self._promote = None
                await self._apply_weight(index, unit)
                self._promotions_done = self._promotions_requested
                outcome = await self._bake()
                if outcome == "rollback":
                    return await self._do_rollback()
                if outcome == "full" or index == len(steps) - 1:
                    self._promote = None
                    return await self._promote_unit(unit)
                index += 1
                self._promote = None
        except ActivityError as err:
            self._rollback = ControlRequest(actor="skyline", reason=f"step failed: {_cause(err)}")
            try:
                return await self._do_rollback()
            except ActivityError as again:
                return self._finish("failed", f"step failed and rollback failed: {_cause(again)}")
        except asyncio.CancelledError:
            raise
