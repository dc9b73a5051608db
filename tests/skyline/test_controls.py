"""The control table, exhaustively: every phase x every control of rollouts and fleets."""

from __future__ import annotations

import pytest

from skyline.controls import (
    CONTROLS,
    FLEET_PHASES,
    FLEET_TABLE,
    ROLLOUT_PHASES,
    ROLLOUT_TABLE,
    Answer,
    Control,
    decide,
)

Table = dict[str, dict[Control, Answer]]
CASES = [("rollout", ROLLOUT_TABLE, p, c) for p in ROLLOUT_PHASES for c in CONTROLS] + [
    ("fleet", FLEET_TABLE, p, c) for p in FLEET_PHASES for c in CONTROLS
]


def test_the_tables_cover_every_phase_and_control_and_nothing_else() -> None:
    assert set(ROLLOUT_TABLE) == set(ROLLOUT_PHASES)
    assert set(FLEET_TABLE) == set(FLEET_PHASES)
    for table in (ROLLOUT_TABLE, FLEET_TABLE):
        for answers in table.values():
            assert set(answers) == set(CONTROLS)


@pytest.mark.parametrize(("kind", "table", "phase", "control"), CASES)
def test_every_answer_is_complete(kind: str, table: Table, phase: str, control: Control) -> None:
    answer = decide(
        table, phase, control, state="paused", waiting_for="a hook", decision="the A/B test is complete"
    )
    if answer.kind == "refused":
        # a refusal names the control and says why, in words a release manager reads in a 409
        assert answer.reason.startswith(
            f"cannot {'roll back' if control == 'rollback' and 'already' in answer.reason else control}"
        )
        assert "{" not in answer.reason
    elif answer.kind == "deferred":
        assert answer.reason, "a deferred control says when it takes effect"
    else:
        assert answer.reason == ""


@pytest.mark.parametrize(("table", "phases"), [(ROLLOUT_TABLE, ROLLOUT_PHASES), (FLEET_TABLE, FLEET_PHASES)])
def test_a_rollback_is_always_possible_until_one_runs_or_it_ended(
    table: Table, phases: tuple[str, ...]
) -> None:
    for phase in phases:
        answer = decide(table, phase, "rollback")
        if phase in ("rolling_back", "ended"):
            assert answer.kind == "refused"
        else:
            assert answer.accepted, phase


@pytest.mark.parametrize(("table", "phases"), [(ROLLOUT_TABLE, ROLLOUT_PHASES), (FLEET_TABLE, FLEET_PHASES)])
def test_nothing_is_accepted_after_the_end_or_during_a_rollback(
    table: Table, phases: tuple[str, ...]
) -> None:
    for phase in ("ended", "rolling_back"):
        assert all(not decide(table, phase, c).accepted for c in CONTROLS)


def test_pause_and_resume_are_exclusive() -> None:
    for table, phases in ((ROLLOUT_TABLE, ROLLOUT_PHASES), (FLEET_TABLE, FLEET_PHASES)):
        for phase in phases:
            pause, resume = decide(table, phase, "pause"), decide(table, phase, "resume")
            assert not (pause.accepted and resume.accepted), phase


def test_the_defects_stay_fixed() -> None:
    # a rollback while the promotion is written is honoured, a pause then is refused
    assert decide(ROLLOUT_TABLE, "promoting", "rollback").kind == "deferred"
    assert decide(ROLLOUT_TABLE, "promoting", "pause").kind == "refused"
    # a pause while a confirm-promotion hook has not answered would be dropped: refused
    assert decide(ROLLOUT_TABLE, "waiting_for_hook", "pause").kind == "refused"
    # a second rollback is refused
    assert (
        decide(ROLLOUT_TABLE, "rolling_back", "rollback").reason
        == "cannot roll back: a rollback is already under way"
    )
    # a fleet promote during a batch is kept for the next pause, not dropped
    assert decide(FLEET_TABLE, "progressing", "promote").kind == "deferred"
    assert decide(ROLLOUT_TABLE, "ended", "pause", state="succeeded").reason == (
        "cannot pause: the rollout has ended (succeeded)"
    )
