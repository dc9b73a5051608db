"""The pipeline's control table (every phase x every control), its approval rule and its spec checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from skyline.controls import PIPELINE_CONTROLS, PIPELINE_PHASES, PIPELINE_TABLE, decide
from skyline.pipeline import Approval, ApprovalRecord, PipelineSpec, approval_problem


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
