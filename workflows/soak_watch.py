"""The judge keeps looking during a pipeline stage's soak (issue 26).

After a stage's rollout promoted, its unit serves every user of the stage's apartments, so
there is no baseline beside it: each look reads the unit's own figures since the soak began
and the judge decides on the stage's guards (error rate, latency, vitals) as it does at a
100 % step. Only established harm (the judge's `rollback`) fails the stage; `hold` and
`continue` keep soaking, and `promote` does not end a soak early (its length is the stage's
promise).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.judging import JudgeLookInput, judge_step_look
    from activities.metrics import GatherFiguresInput, MetricsActivities
    from skyline.figures import Look, StepDocument, StepInfo
    from skyline.rollout import MAX_LOOKS_KEPT
    from skyline.strategies import AnalysisSettings, Strategy
    from workflows import options
    from workflows.hooks import cause


async def harm_found(
    apartment: str,
    building: str,
    unit: str,
    version: str,
    strategy: Strategy,
    looks: list[Look],
    since_seconds: float,
    soak_seconds: float,
    last: bool,
) -> str | None:
    """One look at `apartment` appended to `looks`; the judge's reason when it establishes harm."""
    inp = GatherFiguresInput(
        apartment=apartment,
        building=building,
        unit=unit,
        canary_version=version,
        baseline_version=None,  # promoted: nothing else serves the building
        since_seconds=max(1.0, since_seconds),
        at_seconds=since_seconds,
        window_seconds=strategy.analysis_window_seconds,
        checks=strategy.checks,
        settle=last,
        vitals=list(strategy.vitals),
    )
    try:
        result = await workflow.execute_activity_method(
            MetricsActivities.gather_figures, inp, summary=f"soak look at {apartment}", **options.METRICS
        )
        look = result.look
    except ActivityError as err:
        look = Look(at_seconds=since_seconds, error=f"metrics unavailable: {cause(err)}")
    looks.append(look)
    if len(looks) > MAX_LOOKS_KEPT:
        del looks[1]  # keep the first look and the most recent ones, as a bake does
    doc = StepDocument(
        analysis=strategy.model_dump(mode="json", include=set(AnalysisSettings.model_fields)),
        step=StepInfo(index=0, weight=100, bake_seconds=soak_seconds, last=True),
        looks=looks,
    )
    verdict = await workflow.execute_local_activity(
        judge_step_look,
        JudgeLookInput(
            document=doc,
            look=len(looks) - 1,
            health_weights=dict(strategy.health_weights) if strategy.health_weights else None,
        ),
        start_to_close_timeout=timedelta(seconds=30),
        summary=f"judge the soak of {apartment}",
    )
    return verdict.reason if verdict.decision == "rollback" else None
