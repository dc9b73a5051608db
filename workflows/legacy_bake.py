"""The bake of rollouts started before the sequential judge (replay only).

Rollouts in flight when Skyline moved to the sequential judge (skyline/judge.py)
keep this bake: `RolloutWorkflow._bake` chooses it when the history has no
"sequential-judge" patch marker, so their saved histories replay unchanged.
New rollouts never run it. Do not change it; delete it once no such rollout
can still be running (their progress deadline has passed).
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.metrics import MetricsActivities, RunAnalysisInput
    from skyline.rollout import AnalysisRun, ControlRequest
    from workflows import options
    from workflows.hooks import cause
    from workflows.rollout_state import MAX_ANALYSES_KEPT, Outcome, RolloutBook


class LegacyBake(RolloutBook):
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
            verdict, checks, reason = "error", [], f"metrics unavailable: {cause(err)}"
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
