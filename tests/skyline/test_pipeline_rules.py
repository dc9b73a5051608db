"""The pipeline's control table (every phase x every control), its approval rule and its spec checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from skyline.controls import PIPELINE_CONTROLS, PIPELINE_PHASES, PIPELINE_TABLE, decide
from skyline.pipeline import (
    WINDOW_HORIZON_DAYS,
    Approval,
    ApprovalRecord,
    PipelineSpec,
    approval_problem,
    window_check,
)
from skyline.windows import PromotionWindows


def test_the_table_covers_every_phase_and_control_and_nothing_else() -> None:
    assert set(PIPELINE_TABLE) == set(PIPELINE_PHASES)
    for answers in PIPELINE_TABLE.values():
        assert set(answers) == set(PIPELINE_CONTROLS)


@pytest.mark.parametrize(("phase", "control"), [(p, c) for p in PIPELINE_PHASES for c in PIPELINE_CONTROLS])
def test_every_answer_is_complete(phase: str, control: str) -> None:
    answer = decide(PIPELINE_TABLE, phase, control, state="progressing", waiting_for="1 approval(s)")
    if answer.kind == "refused":
        assert answer.reason.startswith(f"cannot {'roll back' if control == 'rollback' else control}")
        assert "{" not in answer.reason
    elif answer.kind == "deferred":
        assert answer.reason
    else:
        assert answer.reason == ""


def test_rollback_until_one_runs_and_approvals_only_while_awaited() -> None:
    for phase in PIPELINE_PHASES:
        rollback = decide(PIPELINE_TABLE, phase, "rollback")
        assert rollback.accepted == (phase not in ("rolling_back", "ended")), phase
        for control in ("approve", "reject"):
            assert decide(PIPELINE_TABLE, phase, control).accepted == (phase == "awaiting_approval")
        pause, resume = decide(PIPELINE_TABLE, phase, "pause"), decide(PIPELINE_TABLE, phase, "resume")
        assert not (pause.accepted and resume.accepted), phase
    # a verify is never skipped and approvals are never promoted past
    assert not decide(PIPELINE_TABLE, "verifying", "promote").accepted
    assert not decide(PIPELINE_TABLE, "awaiting_approval", "promote").accepted
    assert decide(PIPELINE_TABLE, "soaking", "promote").kind == "allowed"


def test_a_window_wait_is_never_promoted_past_but_can_be_paused_and_rolled_back() -> None:
    waiting = "release freeze (fri 16:00 to mon 09:00 Asia/Seoul); next opens 2026-12-07T00:00:00+00:00"
    promote = decide(PIPELINE_TABLE, "awaiting_window", "promote", state="progressing", waiting_for=waiting)
    assert promote.kind == "refused"
    assert promote.reason == f"cannot promote: waiting for {waiting}; a release window is never skipped"
    assert decide(PIPELINE_TABLE, "awaiting_window", "pause").kind == "allowed"
    assert decide(PIPELINE_TABLE, "awaiting_window", "rollback").kind == "allowed"
    assert not decide(PIPELINE_TABLE, "awaiting_window", "resume").accepted


def _problem(
    gate: Approval, actor: str, role: str = "deployer", verified: bool = True, by: str = ""
) -> str | None:
    approvals = [ApprovalRecord(actor=by, role="admin", at=datetime.now(UTC))] if by else []
    return approval_problem(
        gate, starter="alice", approvals=approvals, actor=actor, role=role, verified=verified
    )


def test_who_may_approve() -> None:
    gate = Approval(role="deployer", count=2, not_starter=True)
    assert _problem(gate, "bob") is None
    assert _problem(gate, "bob", role="admin") is None
    assert "needs deployer" in (_problem(gate, "bob", role="viewer") or "")
    assert "started this pipeline" in (_problem(gate, "alice") or "")
    assert _problem(Approval(not_starter=False), "alice") is None
    assert "verified actor" in (_problem(gate, "bob", verified=False) or "")
    assert "approved this stage already" in (_problem(gate, "bob", by="bob") or "")
    assert "needs admin" in (_problem(Approval(role="admin"), "bob", role="deployer") or "")


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"upload_id": "ab"},
        "stages": [{"name": "staging", "apartments": ["s"]}, {"name": "prod", "apartments": ["a", "b"]}],
        **extra,
    }


def test_spec_checks() -> None:
    assert PipelineSpec.model_validate(_spec()).on_failure == "keep"
    for bad, words in (
        ({"stages": []}, "at least 1"),
        ({"stages": [{"name": "x", "apartments": ["a"]}, {"name": "x", "apartments": ["b"]}]}, "twice"),
        ({"stages": [{"name": "x", "apartments": ["a"]}, {"name": "y", "apartments": ["a"]}]}, "two stages"),
        ({"stages": [{"name": "x", "apartments": ["A!"]}]}, "must be"),
        ({"on_failure": "rollback_all"}, "keep"),
        ({"stages": [{"name": "x", "apartments": ["a"], "verify": [{"url": "ftp://x"}]}]}, "pattern"),
    ):
        with pytest.raises(ValidationError) as refused:
            PipelineSpec.model_validate(_spec(**bad))
        assert words in str(refused.value), (bad, str(refused.value))


SEOUL_WEEKEND = {
    "freeze": [
        {"start_day": "fri", "start": "16:00", "end_day": "mon", "end": "09:00", "timezone": "Asia/Seoul"}
    ]
}
# Friday 2026-12-04 18:30 in Seoul; the freeze ends Monday 2026-12-07 09:00 Seoul = 00:00 UTC
FRIDAY_EVENING = datetime(2026, 12, 4, 9, 30, 17, tzinfo=UTC)


def test_window_check_starts_without_a_window_or_while_open() -> None:
    assert window_check(FRIDAY_EVENING, None).action == "start"
    thursday = FRIDAY_EVENING - timedelta(days=1)
    assert window_check(thursday, PromotionWindows.model_validate(SEOUL_WEEKEND)).action == "start"


def test_window_check_waits_out_a_freeze_until_it_ends() -> None:
    check = window_check(FRIDAY_EVENING, PromotionWindows.model_validate(SEOUL_WEEKEND))
    assert check.action == "wait"
    assert check.until == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert check.reason == (
        "release freeze (fri 16:00 to mon 09:00 Asia/Seoul); next opens 2026-12-07T00:00:00+00:00"
    )
    # at the opening itself (the minute the wait's timer fires) the stage starts
    assert window_check(check.until, PromotionWindows.model_validate(SEOUL_WEEKEND)).action == "start"


def test_window_check_waits_for_the_next_release_window() -> None:
    weekdays = {
        "release": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}]
    }
    check = window_check(FRIDAY_EVENING, PromotionWindows.model_validate(weekdays))
    assert check.action == "wait" and check.reason.startswith("outside the release window")
    assert check.until == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin


def test_window_check_fails_when_nothing_opens_within_the_horizon() -> None:
    whole_week = {
        "freeze": [
            {"start_day": "mon", "start": "00:00", "end_day": "thu", "end": "00:00"},
            {"start_day": "thu", "start": "00:00", "end_day": "mon", "end": "00:00"},
        ]
    }
    check = window_check(FRIDAY_EVENING, PromotionWindows.model_validate(whole_week))
    assert check.action == "fail" and check.until is None
    assert check.reason.endswith(f"no window opens in the next {WINDOW_HORIZON_DAYS} days")


def test_a_stage_window_is_checked_like_an_apartments_promotion_windows() -> None:
    stage = {"name": "x", "apartments": ["a"], "window": SEOUL_WEEKEND}
    spec = PipelineSpec.model_validate(_spec(stages=[stage]))
    assert spec.stages[0].window == PromotionWindows.model_validate(SEOUL_WEEKEND)
    assert PipelineSpec.model_validate(_spec()).stages[0].window is None
    freeze = SEOUL_WEEKEND["freeze"][0]
    for bad, words in (
        ({**freeze, "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({**freeze, "start": "25:00"}, "pattern"),
        ({**freeze, "start_day": "someday"}, "start_day"),
    ):
        with pytest.raises(ValidationError) as refused:
            PipelineSpec.model_validate(_spec(stages=[{**stage, "window": {"freeze": [bad]}}]))
        assert words in str(refused.value), (bad, str(refused.value))
    # bounded: the workflow searches two weeks minute by minute
    many = {"freeze": [freeze] * 6, "release": [{"start": "09:00", "end": "17:00"}] * 5}
    with pytest.raises(ValidationError, match="at most 10 release and freeze windows per stage"):
        PipelineSpec.model_validate(_spec(stages=[{**stage, "window": many}]))
    many["release"] = many["release"][:4]
    assert PipelineSpec.model_validate(_spec(stages=[{**stage, "window": many}])).stages[0].window
