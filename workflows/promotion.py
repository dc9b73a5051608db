"""PromotionWorkflow: what a promotion schedule starts. Short-lived; records why it did not promote."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.schedules import (
        CheckPromotionInput,
        PromoteRolloutInput,
        ScheduleActivities,
    )
    from skyline.contracts import PromotionInput, PromotionResult
    from workflows import options

MAX_WAITS = 3


@workflow.defn
class PromotionWorkflow:
    def __init__(self) -> None:
        self._decision = "checking"

    @workflow.query
    def decision(self) -> str:
        """Why the schedule has (not yet) promoted: the last check's reason."""
        return self._decision

    @workflow.run
    async def run(self, inp: PromotionInput) -> PromotionResult:
        for _ in range(MAX_WAITS + 1):
            check = await workflow.execute_activity_method(
                ScheduleActivities.check_promotion,
                CheckPromotionInput(rollout_id=inp.rollout_id, apartment=inp.apartment),
                summary=f"may {inp.rollout_id} be promoted now?",
                **options.PREPARE,
            )
            self._decision = check.reason
            workflow.set_current_details(check.reason)
            if check.decision == "skip":
                return PromotionResult(promoted=False, reason=check.reason)
            if check.decision == "wait" and check.next_opening is not None:
                # A promotion outside the window waits for the next one (durably).
                await workflow.sleep(max(timedelta(seconds=1), check.next_opening - workflow.now()))
                continue
            result = await workflow.execute_activity_method(
                ScheduleActivities.promote_rollout,
                PromoteRolloutInput(
                    rollout_id=inp.rollout_id,
                    actor=inp.actor,
                    reason=check.reason,
                    actor_proof=inp.actor_proof,
                ),
                summary=f"promote {inp.rollout_id}",
                **options.PREPARE,
            )
            return PromotionResult(
                promoted=result.state == "succeeded", reason=f"{result.state}: {result.reason}"
            )
        return PromotionResult(promoted=False, reason="release windows kept closing; gave up for this run")
