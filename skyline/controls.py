"""What a control does in each phase of a rollout or a fleet: one table, no code paths.

Every control (pause, resume, promote, rollback) in every phase is exactly one of:

- `allowed`: applied now;
- `deferred`: accepted now and honoured at a stated later point (a rollback
  while the promotion is being written restores last-known-good right after
  the write);
- `refused`: answered 409 with the reason, and recorded in the audit when it
  arrived as a signal.

Never accepted and then dropped: the workflows ask `decide` in their update
validators and signal handlers, and their main loops look at the accepted
controls at every wait (workflows/controls.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Control = Literal["pause", "resume", "promote", "rollback"]
CONTROLS: tuple[Control, ...] = ("pause", "resume", "promote", "rollback")

RolloutPhase = Literal[
    "publishing",  # bundle being published and checked; no traffic has moved
    "publishing_paused",  # ... and a human paused it
    "progressing",  # traffic steps and bakes
    "paused",  # held by a human or by the judge
    "awaiting_decision",  # A/B test complete, or awaiting a scheduled promotion
    "waiting_for_hook",  # a confirm-promotion webhook has not said yes yet
    "promoting",  # the promotion is being written
    "rolling_back",  # last-known-good is being restored
    "ended",
]
FleetPhase = Literal[
    "publishing",
    "publishing_paused",
    "progressing",  # a batch of apartments is running
    "between_batches",  # waiting out the pause between batches
    "paused",
    "rolling_back",
    "ended",
]
ROLLOUT_PHASES: tuple[RolloutPhase, ...] = (
    "publishing",
    "publishing_paused",
    "progressing",
    "paused",
    "awaiting_decision",
    "waiting_for_hook",
    "promoting",
    "rolling_back",
    "ended",
)
FLEET_PHASES: tuple[FleetPhase, ...] = (
    "publishing",
    "publishing_paused",
    "progressing",
    "between_batches",
    "paused",
    "rolling_back",
    "ended",
)
PipelineControl = Literal["pause", "resume", "promote", "rollback", "approve", "reject"]
PIPELINE_CONTROLS: tuple[PipelineControl, ...] = (
    "pause",
    "resume",
    "promote",
    "rollback",
    "approve",
    "reject",
)
PipelinePhase = Literal[
    "awaiting_window",  # the next stage waits for its release window to open
    "running",  # a stage's rollout or fleet is under way
    "soaking",
    "verifying",  # a verify webhook is being called
    "awaiting_approval",
    "paused",
    "rolling_back",
    "ended",
]
PIPELINE_PHASES: tuple[PipelinePhase, ...] = (
    "awaiting_window",
    "running",
    "soaking",
    "verifying",
    "awaiting_approval",
    "paused",
    "rolling_back",
    "ended",
)
Kind = Literal["allowed", "deferred", "refused"]


@dataclass(frozen=True)
class Answer:
    kind: Kind
    reason: str = ""  # why refused, or when a deferred control takes effect

    @property
    def accepted(self) -> bool:
        return self.kind != "refused"


ALLOWED = Answer("allowed")


def _deferred(when: str) -> Answer:
    return Answer("deferred", when)


def _refused(reason: str) -> Answer:
    return Answer("refused", reason)


# {state}, {waiting_for} and {decision} are filled in by `decide`.
ROLLOUT_TABLE: dict[RolloutPhase, dict[Control, Answer]] = {
    "publishing": {
        "pause": _deferred("takes effect before any traffic moves"),
        "resume": _refused("cannot resume: the rollout is not paused (publishing)"),
        "promote": _refused("cannot promote: the bundle is still being published; no traffic has moved yet"),
        "rollback": _deferred("the rollout ends when publishing does; no traffic will move"),
    },
    "publishing_paused": {
        "pause": _refused("cannot pause: the rollout is already paused"),
        "resume": ALLOWED,
        "promote": _refused("cannot promote: the bundle is still being published; no traffic has moved yet"),
        "rollback": _deferred("the rollout ends when publishing does; no traffic will move"),
    },
    "progressing": {
        "pause": ALLOWED,
        "resume": _refused("cannot resume: the rollout is not paused ({state})"),
        "promote": ALLOWED,
        "rollback": ALLOWED,
    },
    "paused": {
        "pause": _refused("cannot pause: the rollout is already paused"),
        "resume": ALLOWED,
        "promote": ALLOWED,
        "rollback": ALLOWED,
    },
    "awaiting_decision": {
        "pause": _refused("cannot pause: the rollout is already paused"),
        "resume": _refused("cannot resume: {decision}; promote (full) or roll back"),
        "promote": ALLOWED,
        "rollback": ALLOWED,
    },
    "waiting_for_hook": {
        "pause": _refused("cannot pause: waiting for {waiting_for}; roll back to stop the rollout"),
        "resume": _refused("cannot resume: the rollout is not paused ({state})"),
        "promote": _refused("cannot promote: waiting for {waiting_for}"),
        "rollback": ALLOWED,
    },
    "promoting": {
        "pause": _refused("cannot pause: the promotion is being written; roll back to undo it"),
        "resume": _refused("cannot resume: the rollout is not paused (promoting)"),
        "promote": _refused("cannot promote: the rollout is already being promoted"),
        "rollback": _deferred("last-known-good is restored as soon as the promotion's write lands"),
    },
    "rolling_back": {
        "pause": _refused("cannot pause: a rollback is under way"),
        "resume": _refused("cannot resume: a rollback is under way"),
        "promote": _refused("cannot promote: a rollback is under way"),
        "rollback": _refused("cannot roll back: a rollback is already under way"),
    },
    "ended": {
        control: _refused(f"cannot {control}: the rollout has ended ({{state}})") for control in CONTROLS
    },
}

FLEET_TABLE: dict[FleetPhase, dict[Control, Answer]] = {
    "publishing": {
        "pause": _deferred("no batch starts until the fleet is resumed"),
        "resume": _refused("cannot resume: the fleet is not paused"),
        "promote": _refused("cannot promote: the bundle is still being published; no batch has started"),
        "rollback": _deferred("the fleet ends when publishing does; no apartment will be touched"),
    },
    "publishing_paused": {
        "pause": _refused("cannot pause: the fleet is already paused"),
        "resume": ALLOWED,
        "promote": _refused("cannot promote: the bundle is still being published; no batch has started"),
        "rollback": _deferred("the fleet ends when publishing does; no apartment will be touched"),
    },
    "progressing": {
        "pause": ALLOWED,
        "resume": _refused("cannot resume: the fleet is not paused"),
        "promote": _deferred("the next batch starts without its pause"),
        "rollback": ALLOWED,
    },
    "between_batches": {
        "pause": ALLOWED,
        "resume": _refused("cannot resume: the fleet is not paused"),
        "promote": ALLOWED,
        "rollback": ALLOWED,
    },
    "paused": {
        "pause": _refused("cannot pause: the fleet is already paused"),
        "resume": ALLOWED,
        "promote": _deferred("the next batch starts without its pause once the fleet is resumed"),
        "rollback": ALLOWED,
    },
    "rolling_back": {
        "pause": _refused("cannot pause: a rollback is under way"),
        "resume": _refused("cannot resume: a rollback is under way"),
        "promote": _refused("cannot promote: a rollback is under way"),
        "rollback": _refused("cannot roll back: a rollback is already under way"),
    },
    "ended": {
        control: _refused(f"cannot {control}: the fleet rollout has ended ({{state}})")
        for control in CONTROLS
    },
}


def _verb(control: str) -> str:
    return "roll back" if control == "rollback" else control


_NO_APPROVAL = "cannot {c}: no approval is awaited ({state})"

PIPELINE_TABLE: dict[PipelinePhase, dict[PipelineControl, Answer]] = {
    "awaiting_window": {
        "pause": ALLOWED,  # the stage does not start, even once its window opens, until resumed
        "resume": _refused("cannot resume: the pipeline is not paused"),
        # promote skips the rest of a soak, never a freeze: the window is the release policy
        "promote": _refused("cannot promote: waiting for {waiting_for}; a release window is never skipped"),
        "rollback": ALLOWED,  # the waiting stage is skipped; nothing reaches its apartments
        "approve": _refused(_NO_APPROVAL.format(c="approve", state="{state}")),
        "reject": _refused(_NO_APPROVAL.format(c="reject", state="{state}")),
    },
    "running": {
        "pause": ALLOWED,  # the running stage pauses too; no later stage starts
        "resume": _refused("cannot resume: the pipeline is not paused"),
        "promote": _refused("cannot promote: a stage is rolling out; promote its rollout or fleet"),
        "rollback": ALLOWED,
        "approve": _refused(_NO_APPROVAL.format(c="approve", state="{state}")),
        "reject": _refused(_NO_APPROVAL.format(c="reject", state="{state}")),
    },
    "soaking": {
        "pause": ALLOWED,  # the soak clock stops while paused
        "resume": _refused("cannot resume: the pipeline is not paused"),
        "promote": ALLOWED,  # skips the rest of the soak
        "rollback": ALLOWED,
        "approve": _refused(_NO_APPROVAL.format(c="approve", state="{state}")),
        "reject": _refused(_NO_APPROVAL.format(c="reject", state="{state}")),
    },
    "verifying": {
        "pause": _refused("cannot pause: waiting for {waiting_for}; roll back to stop the pipeline"),
        "resume": _refused("cannot resume: the pipeline is not paused"),
        "promote": _refused("cannot promote: waiting for {waiting_for}; a verify is never skipped"),
        "rollback": _deferred("the line stops as soon as the webhook answers"),
        "approve": _refused(_NO_APPROVAL.format(c="approve", state="{state}")),
        "reject": _refused(_NO_APPROVAL.format(c="reject", state="{state}")),
    },
    "awaiting_approval": {
        "pause": _refused("cannot pause: waiting for {waiting_for}; reject or roll back to stop"),
        "resume": _refused("cannot resume: the pipeline is not paused"),
        "promote": _refused("cannot promote: waiting for {waiting_for}; approvals are never skipped"),
        "rollback": ALLOWED,
        "approve": ALLOWED,
        "reject": ALLOWED,
    },
    "paused": {
        "pause": _refused("cannot pause: the pipeline is already paused"),
        "resume": ALLOWED,
        "promote": _refused("cannot promote: the pipeline is paused; resume it first"),
        "rollback": ALLOWED,
        "approve": _refused(_NO_APPROVAL.format(c="approve", state="paused")),
        "reject": _refused(_NO_APPROVAL.format(c="reject", state="paused")),
    },
    "rolling_back": {
        control: _refused(
            f"cannot {'roll back' if control == 'rollback' else control}: a rollback is under way"
        )
        for control in PIPELINE_CONTROLS
    },
    "ended": {
        control: _refused(f"cannot {_verb(control)}: the pipeline has ended ({{state}})")
        for control in PIPELINE_CONTROLS
    },
}


def decide(
    table: Mapping[Any, Mapping[Any, Answer]],
    phase: str,
    control: str,
    *,
    state: str = "",
    waiting_for: str = "",
    decision: str = "",
) -> Answer:
    answer = table[phase][control]
    if not answer.reason:
        return answer
    return Answer(answer.kind, answer.reason.format(state=state, waiting_for=waiting_for, decision=decision))
