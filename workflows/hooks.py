"""Webhooks of a rollout: pre-rollout and confirm-promotion gates, post-rollout and rollback notices.

Payloads are signed by the worker (activities/gates.py) and never carry a
response body back: only the status code or a short reason reaches the
status and the history.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities, WebhookInput
    from skyline.rollout import Webhook
    from workflows import options
    from workflows.report import webhook_payload
    from workflows.rollout_state import RolloutBook


# How an activity that failed for good reaches workflow code: a regular activity as an
# ActivityError, a local activity as its own ApplicationError (temporalio 1.35; a local
# activity's timeout does come as an ActivityError). Both are the activity failing.
ACTIVITY_FAILED = (ActivityError, ApplicationError)


def cause(err: BaseException) -> str:
    """The innermost message of an activity failure."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    return str(err)


class HookSteps(RolloutBook):
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
            return cause(err)
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
