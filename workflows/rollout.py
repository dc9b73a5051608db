"""RolloutWorkflow: one progressive rollout of one unit into one building.

Deterministic orchestration only: every side effect is an activity, time is
`workflow.now()`. Controls arrive as Updates (validated, answered) or as the
same-named signals the Temporal UI can send; both funnel into `_control`.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cdn import CdnActivities, SyncManifestInput
    from activities.gates import GateActivities, WebhookInput
    from activities.manifests import (
        ApplyManifestChangeInput,
        ClearPreviewInput,
        ManifestActivities,
        PrepareRolloutInput,
        PrepareRolloutResult,
        WritePreviewInput,
    )
    from activities.metrics import MetricsActivities, RunAnalysisInput
    from activities.publish import PublishActivities, PublishBundleResult, UnpublishBundleInput
    from activities.schedules import ScheduleActivities
    from skyline.ab_report import build_ab_report, render_ab_report
    from skyline.manifest import ManifestChange, RolloutConfig, RolloutCriteria, Unit
    from skyline.manifest_ops import PromoteUnit, RestoreBuilding, SetCanary
    from skyline.observability import RolloutTelemetry
    from skyline.rollout import (
        TERMINAL_STATES,
        AnalysisRun,
        ControlRequest,
        HistoryEntry,
        PromoteRequest,
        RolloutInput,
        RolloutState,
        RolloutStatus,
        Webhook,
        promotion_schedule_id,
        via_temporal,
    )
    from skyline.strategies import ABTestStrategy, BlueGreenStrategy, PlanStep, plan_steps
    from skyline.windows import PromotionBlocked
    from workflows import options
    from workflows import search_attributes as search
    from workflows.deadline import ProgressDeadline
    from workflows.details import current_details
    from workflows.judged_bake import judged_bake
    from workflows.publishing import publish_unit
    from workflows.report import webhook_payload

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
            steps=[step.weight for step in plan_steps(spec.strategy)],
            strategy=spec.strategy.kind,
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
        self._plan: list[PlanStep] = plan_steps(spec.strategy)
        self._decision_pending: str | None = None
        self._indexed: tuple[str, float] = ("publishing", 0.0)
        self._deadline = ProgressDeadline(spec.max_duration_seconds, now)
        self._prepublished = inp.prepublished
        self._published: PublishBundleResult | None = None
        self._telemetry = RolloutTelemetry(spec.apartment)
        self._reference_tried = False
        self._preview_written: str | None = None  # change id of the blue-green preview, until cleared
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
        if action == "resume" and self._decision_pending:
            return f"cannot resume: {self._decision_pending}; promote (full) or roll back"
        if action == "promote" and self._status.waiting_for:
            return f"cannot promote: waiting for {self._status.waiting_for}"
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
            self._deadline.hold(workflow.now())  # a human's pause does not eat the deadline
            self._set_state("paused")
            self._status.paused_reason = f"paused by {req.actor}: {req.reason or 'no reason given'}"
        elif action == "resume":
            self._paused = False
            self._deadline.release(workflow.now())
            self._status.paused_reason = None
            self._set_state(self._resume_state)
        elif action == "promote":
            assert isinstance(req, PromoteRequest)
            self._promote = req
            self._promotions_requested += 1
            if self._paused:
                self._paused = False
                self._deadline.release(workflow.now())
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
        self._control("pause", via_temporal(req))

    @workflow.signal(name="resume_signal")
    def resume_signal(self, req: ControlRequest) -> None:
        self._control("resume", via_temporal(req))

    @workflow.signal(name="promote_signal")
    def promote_signal(self, req: PromoteRequest) -> None:
        self._control("promote", via_temporal(req))

    @workflow.signal(name="promotion_blocked_signal")
    def promotion_blocked_signal(self, blocked: PromotionBlocked | None) -> None:
        """The promotion schedule's check: why a freeze or release window blocks it (None: it does not)."""
        previous = self._status.promotion_blocked
        if self._status.state in TERMINAL_STATES:
            return
        self._status.promotion_blocked = blocked
        if blocked is not None and (previous is None or previous.reason != blocked.reason):
            self._record(f"promotion blocked by {blocked.kind}", "schedule", blocked.reason)
        elif blocked is None and previous is not None:
            self._record("promotion unblocked", "schedule", "the release window is open")

    @workflow.signal(name="rollback_signal")
    def rollback_signal(self, req: ControlRequest) -> None:
        self._control("rollback", via_temporal(req))

    # ----- bookkeeping -----------------------------------------------------------------

    def _set_state(self, state: RolloutState) -> None:
        self._status.state = state
        if state != "paused":
            self._resume_state = state
        self._status.updated_at = workflow.now()
        self._index()

    def _index(self) -> None:
        """Keep the UI's list filterable by state and weight (only when they change)."""
        current = (self._status.state, float(self._status.weight))
        # Only rollouts started with Skyline's attributes (the API always sets them)
        # are indexed: a namespace without them registered would fail every upsert.
        indexed = workflow.info().typed_search_attributes.get(search.APARTMENT) is not None
        if indexed and current != self._indexed:
            self._indexed = current
            workflow.upsert_search_attributes(
                [search.STATE.value_set(current[0]), search.WEIGHT.value_set(current[1])]
            )
        workflow.set_current_details(current_details(self._status))

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
        workflow.set_current_details(current_details(self._status))

    def _finish(self, state: RolloutState, reason: str) -> RolloutStatus:
        self._status.promotion_blocked = None
        self._paused = False
        self._status.paused_reason = None
        self._status.reason = reason
        self._set_state(state)
        self._record(state, "skyline", reason)
        self._telemetry.finished(state)
        return self._status

    def _report_ab(self) -> None:
        """An A/B test's report, whenever it ends (pure: computed from the status, no commands)."""
        if not isinstance(self._spec.strategy, ABTestStrategy):
            return
        report = build_ab_report(self._status)
        self._status.ab_report = report
        self._status.report = render_ab_report(report)
        workflow.set_current_details(current_details(self._status))

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
        self._index()
        return result.revision

    async def _analyse(self) -> AnalysisRun:
        spec, strategy = self._spec, self._spec.strategy
        baseline = self._prep.baseline_version if self._prep else None
        inp = RunAnalysisInput(
            apartment=spec.apartment,
            building=spec.building,
            unit=spec.unit_id,
            canary_version=spec.version,
            baseline_version=baseline,
            window_seconds=strategy.analysis_window_seconds,
            checks=strategy.effective_checks(),
            alpha=strategy.alpha,
            weight=self._status.weight,
            health_weights=dict(strategy.health_weights) if strategy.health_weights else None,
            min_health_score=strategy.min_health_score,
        )
        try:
            result = await workflow.execute_activity_method(
                MetricsActivities.run_analysis,
                inp,
                summary=f"analysis at {self._status.weight:g}%",
                **options.METRICS,
            )
            verdict, checks, reason = result.verdict, result.checks, result.reason
            health, parts = result.health_score, result.health_components
        except ActivityError as err:
            verdict, checks, reason = "error", [], f"metrics unavailable: {_cause(err)}"
            health, parts = None, {}
        run = AnalysisRun(
            health_score=health,
            health_components=parts,
            at=workflow.now(),
            step=self._status.step,
            weight=self._status.weight,
            verdict=verdict,
            checks=checks,
            reason=reason,
        )
        self._status.last_analysis = run
        self._telemetry.verdict(verdict)
        self._status.analyses = [*self._status.analyses, run][-MAX_ANALYSES_KEPT:]
        return run

    # ----- the rollout -----------------------------------------------------------------

    def _interrupted(self) -> bool:
        return self._rollback is not None or self._promote is not None

    def _deadline_timeout(self, cap: float | None = None) -> timedelta | None:
        left = self._deadline.left(workflow.now())
        bounds = [b for b in (left, cap) if b is not None]
        return timedelta(seconds=max(0.0, min(bounds))) if bounds else None

    def _check_deadline(self) -> None:
        """Past the deadline: roll back, or pause when auto_rollback is off (once)."""
        left = self._deadline.left(workflow.now())
        if left is None or left > 0 or self._rollback is not None:
            return
        self._deadline.fired = True
        reason = (
            f"progress deadline exceeded: {self._spec.max_duration_seconds:g}s of active time "
            "(time paused by a human not counted)"
        )
        if self._spec.strategy.auto_rollback:
            self._rollback = ControlRequest(actor="skyline", reason=reason)
        else:
            self._pause_for(reason)

    async def _hold_while_paused(self) -> None:
        while self._paused and not self._interrupted():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: not self._paused or self._interrupted(), timeout=self._deadline_timeout()
                )
            self._check_deadline()

    async def _bake(self, bake_seconds: float, experiment: bool = False) -> Outcome:
        """Observe the current weight; rollouts started before the sequential judge keep their old bake."""
        if workflow.patched("sequential-judge"):
            return await judged_bake(self, bake_seconds, experiment)
        return await self._bake_legacy(bake_seconds, experiment)

    async def _bake_legacy(self, bake_seconds: float, experiment: bool = False) -> Outcome:
        """Observe the current weight: analysis every interval, controls at any time.

        Argo Rollouts' limits apply: more failed analyses than failure_limit act
        (roll back, or pause without auto_rollback), more inconclusive ones than
        inconclusive_limit pause, and more than consecutive_error_limit errors in
        a row (Prometheus unreachable) count as inconclusive. At the end of a
        bake only a passing analysis moves on. An experiment (A/B) only stops
        early on failure; its duration, not its verdicts, ends it.
        """
        strategy = self._spec.strategy
        remaining = bake_seconds
        failures = inconclusive = errors_in_row = 0
        last = "none"
        while True:
            self._check_deadline()
            if self._rollback is not None:
                return "rollback"
            if self._promote is not None:
                return "full" if self._promote.full else "next"
            if self._paused:
                await self._hold_while_paused()
                inconclusive = errors_in_row = 0  # a human looked and resumed: count afresh
                continue
            if remaining <= 0 and (last == "pass" or experiment):
                return "next"
            if remaining > 0:
                started = workflow.now()
                wait = self._deadline_timeout(min(strategy.analysis_interval_seconds, remaining))
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._interrupted() or self._paused, timeout=wait)
                remaining -= (workflow.now() - started).total_seconds()
                if self._interrupted() or self._paused:
                    continue
            run = await self._analyse()
            last = run.verdict
            if run.verdict == "fail":
                failures += 1
                if failures > strategy.failure_limit:
                    if strategy.auto_rollback:
                        self._rollback = ControlRequest(
                            actor="skyline", reason=f"analysis failed: {run.reason}"
                        )
                        return "rollback"
                    failures = 0
                    self._pause_for(f"analysis failed: {run.reason}")
                    continue
            elif run.verdict == "pass":
                errors_in_row = 0
                continue
            elif run.verdict == "error":
                errors_in_row += 1
                if errors_in_row <= strategy.consecutive_error_limit and remaining > 0:
                    continue
                errors_in_row = 0
            if experiment:
                continue
            inconclusive += 1
            # Never promote blind: at the end of a bake only a pass moves on.
            if inconclusive > strategy.inconclusive_limit or remaining <= 0:
                self._pause_for(f"analysis inconclusive: {run.reason}")

    async def _publish(self) -> Unit:
        def published_at(result: PublishBundleResult) -> None:
            self._published = result

        return await publish_unit(
            self._spec, lambda action, reason: self._record(action, "skyline", reason), published_at
        )

    async def _unpublish_untrafficked(self) -> None:
        """A bundle this rollout published that never reached traffic does not stay public.

        Not a fleet's (it owns its bundle), and the activity keeps a prefix that any
        manifest revision references (an identical earlier build shares it).
        """
        published = self._published
        if published is None or self._prepublished is not None or self._status.revisions:
            return
        if not workflow.patched("unpublish-untrafficked"):
            return
        self._published, prefix = None, published.prefix
        try:
            result = await workflow.execute_activity_method(
                PublishActivities.unpublish_bundle,
                UnpublishBundleInput(
                    prefix=prefix,
                    # Every file uploaded by this rollout: only manifests written since can use them.
                    since=self._status.started_at if published.skipped == 0 else None,
                    keys=published.uploaded_keys if published.layout == "shared" else None,
                    entry_key=published.entry_key if published.layout == "shared" else None,
                ),
                summary=f"unpublish {prefix}",
                **options.UNPUBLISH,
            )
        except ActivityError as err:
            self._record("unpublish failed", "skyline", f"{prefix} left in storage: {_cause(err)}")
            return
        if result.kept_reason:
            self._record("unpublish skipped", "skyline", f"{prefix} kept: {result.kept_reason}")
        else:
            self._record("unpublished", "skyline", f"{result.deleted} files removed from {prefix}")

    def _hooks(self, event: str) -> list[Webhook]:
        return [hook for hook in self._spec.webhooks if hook.event == event]

    async def _call_hook(self, hook: Webhook) -> str | None:
        """None when the hook answered 2xx, else why not (after its retries)."""
        try:
            await workflow.execute_activity_method(
                GateActivities.call_webhook,
                WebhookInput(
                    event=hook.event,
                    url=hook.url,
                    timeout_seconds=hook.timeout_seconds,
                    payload=webhook_payload(self._status, hook.event),
                ),
                summary=f"webhook {hook.event}",
                **options.webhook(hook.timeout_seconds, hook.retries),
            )
        except ActivityError as err:
            return _cause(err)
        self._record(f"webhook {hook.event}", "skyline", f"{hook.url} answered 2xx")
        return None

    async def _notify(self, event: str) -> None:
        """Best effort: a failing post-rollout or rollback hook is recorded, never blocks."""
        for hook in self._hooks(event):
            problem = await self._call_hook(hook)
            if problem:
                self._record(f"webhook {event} failed", "skyline", problem)

    async def _confirm_promotion(self) -> bool:
        """Hold until every confirm-promotion hook answers 2xx; False if rolled back meanwhile."""
        for hook in self._hooks("confirm_promotion"):
            refused: str | None = None
            while True:
                problem = await self._call_hook(hook)
                if problem is None:
                    break
                if problem != refused:  # in the audit trail once per distinct answer, not every retry
                    refused = problem
                    self._record("webhook confirm_promotion refused", "skyline", f"{hook.url}: {problem}")
                self._status.waiting_for = f"confirm-promotion webhook ({problem})"
                self._status.updated_at = workflow.now()
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._rollback is not None,
                        timeout=self._deadline_timeout(self._spec.strategy.analysis_interval_seconds),
                    )
                self._check_deadline()
                if self._rollback is not None:
                    self._status.waiting_for = None
                    return False
        self._status.waiting_for = None
        return True

    def _rollout_config(self, weight: float) -> RolloutConfig:
        kind = self._spec.strategy.kind
        seed_strategy = {"linear": "gradual", "exponential": "gradual", "blue_green": "immediate"}.get(
            kind, kind
        )
        return RolloutConfig(
            strategy=seed_strategy,
            percentage=weight,
            rollout_id=self._status.rollout_id,
            duration=self._plan[max(self._status.step, 0)].bake_seconds / 60,
            criteria=self._spec.targeting or RolloutCriteria(),
        )

    async def _apply_weight(self, index: int, unit: Unit) -> None:
        weight = self._plan[index].weight
        self._status.step = index
        self._status.weight = weight
        revision = await self._write(
            SetCanary(building=self._spec.building, unit=unit, rollout=self._rollout_config(weight)),
            f"{unit.id} at {weight:g}%",
        )
        self._record("set weight", "skyline", f"{weight:g}% of users get {unit.id}", revision)
        self._telemetry.step(weight)

    async def _do_rollback(self) -> RolloutStatus:
        req = self._rollback or ControlRequest(actor="skyline", reason="rollback")
        reason = f"{req.reason or 'rolled back'} (by {req.actor})"
        if self._prep is None or not self._status.revisions:
            await self._unpublish_untrafficked()
            self._finish("rolled_back", f"{reason}; no traffic had moved, manifest untouched")
        else:
            revision = await self._write(
                RestoreBuilding(building=self._spec.building, snapshot=self._prep.snapshot),
                f"rollback of {self._spec.unit_key}: {req.reason}",
            )
            self._status.weight = 0
            self._record(
                "restored", req.actor, f"building restored from revision {self._prep.base_revision}", revision
            )
            self._finish("rolled_back", reason)
        self._report_ab()
        await self._notify("rollback")
        return self._status

    async def _promote_unit(self, unit: Unit) -> RolloutStatus:
        if not await self._confirm_promotion():
            return await self._do_rollback()
        self._set_state("promoting")
        revision = await self._write(
            PromoteUnit(building=self._spec.building, unit_id=unit.id), f"promote {unit.id}"
        )
        self._status.weight = 100
        self._record("promoted", "skyline", f"{unit.id} is the active unit", revision)
        self._promotions_done = self._promotions_requested
        self._finish("succeeded", f"{unit.id} promoted to active unit")
        self._report_ab()
        await self._notify("post_rollout")
        return self._status

    async def _await_decision(self, unit: Unit, why: str) -> RolloutStatus:
        """Hold at the current weight until a human (or a schedule) promotes or rolls back."""
        self._decision_pending = why
        self._pause_for(f"{why}: promote (full) to make {unit.id} active, or roll back")
        self._deadline.hold(workflow.now())  # waiting for a human or a schedule by design
        await workflow.wait_condition(self._interrupted)
        self._deadline.release(workflow.now())
        self._decision_pending = None
        if self._rollback is not None:
            return await self._do_rollback()
        self._promote = None
        return await self._promote_unit(unit)

    async def _blue_green(self, unit: Unit) -> RolloutStatus:
        """Preview, smoke, then one write switches everyone; switching back is one write too."""
        strategy = self._spec.strategy
        assert isinstance(strategy, BlueGreenStrategy)
        self._changes += 1
        info = workflow.info()
        change = ManifestChange(
            id=f"{info.workflow_id}/{info.run_id}/preview",
            actor=self._spec.actor,
            reason="blue-green preview",
        )
        await self._write_preview_prelude(unit)
        preview = await workflow.execute_activity_method(
            ManifestActivities.write_preview_manifest,
            WritePreviewInput(
                apartment=self._spec.apartment,
                change=change,
                mutation=PromoteUnit(building=self._spec.building, unit_id=unit.id),
            ),
            summary="write the preview manifest",
            **options.MANIFEST,
        )
        await workflow.execute_activity_method(
            CdnActivities.sync_manifest_to_edge,
            SyncManifestInput(
                apartment=self._spec.apartment, revision=preview.base_revision, key=preview.key
            ),
            summary="purge and verify the preview manifest",
            **options.EDGE_SYNC,
        )
        self._preview_written = change.id
        self._record("preview", "skyline", f"preview manifest at {preview.key} serves {unit.id}")
        if strategy.preview_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._interrupted() and not self._paused,
                    timeout=timedelta(seconds=strategy.preview_seconds),
                )
        await self._hold_while_paused()
        if self._rollback is not None:
            return await self._do_rollback()
        self._promote = None
        started = workflow.now()
        self._status.step = 0
        revision = await self._write(
            PromoteUnit(building=self._spec.building, unit_id=unit.id), f"blue-green switch to {unit.id}"
        )
        self._status.weight = 100
        switch_seconds = (workflow.now() - started).total_seconds()
        self._record("switched", "skyline", f"0 → 100% in one write, live in {switch_seconds:.2f}s", revision)
        self._telemetry.step(100)
        self._promotions_done = self._promotions_requested
        outcome = await self._bake(self._plan[0].bake_seconds)
        if outcome == "rollback":
            return await self._do_rollback()
        self._finish("succeeded", f"{unit.id} switched in and baked")
        await self._notify("post_rollout")
        return self._status

    async def _clear_preview(self) -> None:
        """A blue-green that ended leaves no stale preview: it serves production, 'no candidate'."""
        written = self._preview_written
        if written is None or not workflow.patched("preview-cleared"):
            return
        self._preview_written = None
        info = workflow.info()
        why = f"no candidate: {self._spec.unit_key} {self._status.state.replace('_', ' ')}"
        try:
            cleared = await workflow.execute_activity_method(
                ManifestActivities.clear_preview_manifest,
                ClearPreviewInput(
                    apartment=self._spec.apartment,
                    written=written,
                    change=ManifestChange(
                        id=f"{info.workflow_id}/{info.run_id}/preview-cleared", actor="skyline", reason=why
                    ),
                ),
                summary="clear the preview manifest",
                **options.MANIFEST,
            )
            if cleared.cleared and cleared.revision is not None:
                await workflow.execute_activity_method(
                    CdnActivities.sync_manifest_to_edge,
                    SyncManifestInput(
                        apartment=self._spec.apartment, revision=cleared.revision, key=cleared.key
                    ),
                    summary="purge and verify the cleared preview",
                    **options.EDGE_SYNC,
                )
        except ActivityError as err:
            self._record(
                "preview not cleared", "skyline", f"the preview may still serve the candidate: {_cause(err)}"
            )
            return
        if cleared.cleared:
            self._record("preview cleared", "skyline", f"{cleared.key} serves production ({why})")
        else:
            self._record("preview left", "skyline", f"{cleared.key} was rewritten by another rollout since")

    async def _write_preview_prelude(self, unit: Unit) -> None:
        """The new unit must be in the building before the preview can point at it."""
        self._status.step = 0
        revision = await self._write(
            SetCanary(building=self._spec.building, unit=unit, rollout=self._rollout_config(0)),
            f"{unit.id} staged at 0% for blue-green",
        )
        self._record("staged", "skyline", f"{unit.id} in the manifest at 0%", revision)

    async def _traffic_steps(self, unit: Unit) -> RolloutStatus:
        experiment = isinstance(self._spec.strategy, ABTestStrategy)
        index = 0
        while True:
            self._check_deadline()
            await self._hold_while_paused()
            if self._rollback is not None:
                return await self._do_rollback()
            if self._promote is not None and self._promote.full:
                self._promote = None
                return await self._promote_unit(unit)
            self._promote = None
            await self._apply_weight(index, unit)
            self._promotions_done = self._promotions_requested
            outcome = await self._bake(self._plan[index].bake_seconds, experiment)
            if outcome == "rollback":
                return await self._do_rollback()
            if experiment and outcome == "next" and self._promote is None:
                self._report_ab()
                return await self._await_decision(unit, "the A/B test is complete")
            last = index == len(self._plan) - 1
            if (
                last
                and outcome == "next"
                and self._promote is None
                and self._spec.promotion.mode == "scheduled"
            ):
                return await self._await_decision(unit, "awaiting scheduled promotion")
            if outcome == "full" or index == len(self._plan) - 1:
                self._promote = None
                return await self._promote_unit(unit)
            index += 1
            self._promote = None

    @workflow.run
    async def run(self, inp: RolloutInput) -> RolloutStatus:
        self._telemetry.started()
        status = await self._run()
        await self._clear_preview()
        if self._spec.promotion.mode == "scheduled":
            # The schedule has nothing left to promote; best effort, it may never have existed.
            with contextlib.suppress(ActivityError):
                await workflow.execute_activity_method(
                    ScheduleActivities.delete_schedule,
                    promotion_schedule_id(status.rollout_id),
                    summary="delete the promotion schedule",
                    **options.PREPARE,
                )
        return status

    async def _run(self) -> RolloutStatus:
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
                    dependencies=spec.dependencies,
                    compatibility=spec.compatibility,
                ),
                summary="validate against the current manifest",
                **options.PREPARE,
            )
            self._status.base_revision = self._prep.base_revision
            self._status.baseline_unit = self._prep.baseline_unit
            unit = self._prepublished or await self._publish()
            self._status.canary = unit
        except ActivityError as err:
            await self._unpublish_untrafficked()
            return self._finish("failed", f"{_cause(err)}; manifest untouched")
        for hook in self._hooks("pre_rollout"):
            problem = await self._call_hook(hook)
            if problem:
                await self._unpublish_untrafficked()
                return self._finish("failed", f"pre-rollout webhook refused: {problem}; manifest untouched")
        self._resume_state = "progressing"
        if not self._paused:
            self._set_state("progressing")
        try:
            if isinstance(spec.strategy, BlueGreenStrategy):
                return await self._blue_green(unit)
            return await self._traffic_steps(unit)
        except ActivityError as err:
            self._rollback = ControlRequest(actor="skyline", reason=f"step failed: {_cause(err)}")
            try:
                return await self._do_rollback()
            except ActivityError as again:
                return self._finish("failed", f"step failed and rollback failed: {_cause(again)}")
