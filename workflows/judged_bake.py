"""One step's bake under the sequential judge: look every interval, do what the judge says.

The workflow gathers figures (an activity reading Prometheus), appends the
look, and asks the judge (a local activity, so its answer is in the history).
It acts only on the answer:

- rollback: harm established; roll back (or pause for a human without auto_rollback);
- promote: only at the end of the bake; the step is done;
- hold: pause with the judge's reason; `resume` keeps baking for one more bake
  period and asks again, `promote` goes on regardless, `rollback` rolls back;
- continue: wait for the next look.

A/B tests are experiments: their duration ends them, a hold does not stop
them, and established harm stops them early.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.judging import JudgeLookInput, JudgeLookResult, judge_step_look
    from activities.metrics import GatherFiguresInput, MetricsActivities
    from skyline.ab_model import EXPERIMENT_OVER
    from skyline.figures import EarlierStep, Look, StepDocument, StepInfo
    from skyline.rollout import MAX_LOOKS_KEPT, AnalysisRun, ControlRequest, StepLooks
    from skyline.rollout import Verdict as RunVerdict
    from skyline.strategies import AnalysisSettings
    from workflows import options
    from workflows.hooks import cause
    from workflows.rollout_state import MAX_ANALYSES_KEPT, Outcome, RolloutBook


RUN_VERDICT: dict[str, RunVerdict] = {
    "rollback": "fail",
    "promote": "pass",
    "continue": "pass",
    "hold": "inconclusive",
}


def _end(record: StepLooks, outcome: Outcome, reason: str) -> Outcome:
    record.decision = {"next": "promote", "full": "promote", "rollback": "rollback"}[outcome]
    record.reason = reason
    return outcome


class JudgedBake(RolloutBook):
    """The bake of every rollout started since the sequential judge."""

    def _earlier(self) -> list[EarlierStep]:
        out: list[EarlierStep] = []
        for step in self._status.looks:
            final = step.final()
            if step.decision == "promote" and final is not None and final.canary is not None:
                out.append(EarlierStep(weight=step.weight, canary=final.canary, baseline=final.baseline))
        return out

    async def _look(self, started: float, at_seconds: float, ends_bake: bool) -> Look:
        spec, strategy = self._spec, self._spec.strategy
        baseline = self._prep.baseline_version if self._prep else None
        now = workflow.now().timestamp()
        need_reference = self._status.reference is None and baseline is not None and not self._reference_tried
        inp = GatherFiguresInput(
            apartment=spec.apartment,
            building=spec.building,
            unit=spec.unit_id,
            canary_version=spec.version,
            baseline_version=baseline,
            since_seconds=max(1.0, now - started),
            at_seconds=at_seconds,
            window_seconds=strategy.analysis_window_seconds,
            checks=strategy.checks,
            reference_offset_seconds=(now - self._status.started_at.timestamp()) if need_reference else None,
            settle=ends_bake,
            vitals=list(strategy.vitals),
        )
        try:
            result = await workflow.execute_activity_method(
                MetricsActivities.gather_figures,
                inp,
                summary=f"look at {self._status.weight:g}%",
                **options.METRICS,
            )
        except ActivityError as err:
            return Look(at_seconds=at_seconds, error=f"metrics unavailable: {cause(err)}")
        if need_reference:
            self._reference_tried = True
            if result.reference is not None and result.reference.loads > 0:
                self._status.reference = result.reference
        return result.look

    async def _judge(self, record: StepLooks) -> JudgeLookResult:
        analysis = self._spec.strategy.model_dump(mode="json", include=set(AnalysisSettings.model_fields))
        self._status.analysis = analysis
        doc = StepDocument(
            analysis=analysis,
            step=StepInfo(
                index=record.index, weight=record.weight, bake_seconds=record.bake_seconds, last=record.last
            ),
            earlier=self._earlier(),
            looks=record.looks,
            reference=self._status.reference,
        )
        return await workflow.execute_local_activity(
            judge_step_look,
            JudgeLookInput(
                document=doc,
                look=len(record.looks) - 1,
                health_weights=dict(self._spec.strategy.health_weights)
                if self._spec.strategy.health_weights
                else None,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            summary="judge",
        )

    def _keep_run(self, verdict: JudgeLookResult, look: Look) -> AnalysisRun:
        run = AnalysisRun(
            at=workflow.now(),
            step=self._status.step,
            weight=self._status.weight,
            verdict="error" if look.error else RUN_VERDICT[verdict.decision],
            checks=verdict.checks,
            reason=verdict.reason,
            health_score=verdict.health_score,
            health_components=verdict.health_components,
        )
        self._status.last_analysis = run
        self._status.basis = verdict.basis
        self._telemetry.verdict(run.verdict)
        self._status.analyses = [*self._status.analyses, run][-MAX_ANALYSES_KEPT:]
        return run

    async def _judged_bake(self, bake_seconds: float, experiment: bool) -> Outcome:
        strategy = self._spec.strategy
        started = workflow.now().timestamp()
        last = self._status.step == len(self._plan) - 1 and not experiment
        record = StepLooks(
            index=self._status.step, weight=self._status.weight, bake_seconds=bake_seconds, last=last
        )
        self._status.looks = [*self._status.looks, record]
        remaining = bake_seconds
        while True:
            self._check_deadline()
            if self._rollback is not None:
                return _end(record, "rollback", "rolled back")
            if self._promote is not None:
                return _end(
                    record, "full" if self._promote.full else "next", f"promoted by {self._promote.actor}"
                )
            if self._paused:
                await self._hold_while_paused()
                continue
            if remaining > 0:
                waited_from = workflow.now()
                wait = self._deadline_timeout(min(strategy.analysis_interval_seconds, remaining))
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._interrupted() or self._paused, timeout=wait)
                remaining -= (workflow.now() - waited_from).total_seconds()
                if self._interrupted() or self._paused:
                    continue
            at_seconds = max(0.0, record.bake_seconds - max(remaining, 0.0))
            look = await self._look(started, at_seconds, ends_bake=remaining <= 0)
            record.looks.append(look)
            if len(record.looks) > MAX_LOOKS_KEPT:
                del record.looks[1]  # keep the first look and the most recent ones
            verdict = await self._judge(record)
            self._keep_run(verdict, look)
            if verdict.decision == "rollback":
                if strategy.auto_rollback:
                    self._rollback = ControlRequest(
                        actor="skyline", reason=f"analysis failed: {verdict.reason}"
                    )
                    return _end(record, "rollback", verdict.reason)
                self._pause_for(f"analysis failed: {verdict.reason}")
                continue
            if experiment and remaining <= 0:
                # Its duration ends an experiment, whatever the judge concluded at its end (the
                # report reads this reason; the same "next" either way, so no new commands).
                return _end(record, "next", EXPERIMENT_OVER)
            if verdict.decision == "promote":
                return _end(record, "next", verdict.reason)
            if verdict.decision == "hold" and not experiment:
                record.reason = verdict.reason
                self._pause_for(
                    f"held: {verdict.reason}. Resume to keep baking for another {bake_seconds:g}s, "
                    "promote to go on, or roll back"
                )
                await self._hold_while_paused()
                if not self._interrupted():
                    # a human looked and asked for more evidence: one more bake period, then judge again
                    remaining = max(remaining, 0.0) + bake_seconds
                    record.bake_seconds += bake_seconds
