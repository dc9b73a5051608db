"""The judge as a local activity: its answer is recorded in the workflow's history.

Running the pure judge (skyline/judge.py) inside an activity rather than in
workflow code means a rollout in flight replays the decisions it was given,
whatever later versions of the judge would say. A local activity, because it
does no I/O: its input (the step so far) is not stored in the history, only
its small result.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from skyline.figures import StepDocument
from skyline.health import components, health_score
from skyline.judge import Basis, Decision, judge_look
from skyline.rollout import CheckResult


class JudgeLookInput(BaseModel):
    document: StepDocument
    look: int
    health_weights: dict[str, float] | None = None


class JudgeLookResult(BaseModel):
    decision: Decision
    reason: str
    basis: Basis
    checks: list[CheckResult]
    health_score: float | None = None
    health_components: dict[str, float] = {}


@activity.defn
def judge_step_look(inp: JudgeLookInput) -> JudgeLookResult:
    verdict = judge_look(inp.document, inp.look)
    health = health_score(components(verdict.checks, inp.document.step.weight), inp.health_weights)
    return JudgeLookResult(
        decision=verdict.decision,
        reason=verdict.reason,
        basis=verdict.basis,
        checks=verdict.checks,
        health_score=health.score,
        health_components=health.components,
    )
