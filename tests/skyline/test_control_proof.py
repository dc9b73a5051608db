"""The API's proof of a control's actor (skyline/control_proof.py), as the update validator checks it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skyline import control_proof
from skyline.control_proof import CLOCK_SKEW, MAX_AGE, SignedControl, SignedPromote
from skyline.rollout import ControlRequest, PromoteRequest

KEY, OLD_KEY = b"k" * 32, b"o" * 32
WF = "rollout.shop.header"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STARTED = NOW - timedelta(hours=1)


def check(
    req: ControlRequest, *, update: str = "pause", keys: tuple[bytes, ...] = (KEY,), **kw: object
) -> str | None:
    assert isinstance(req, SignedControl | SignedPromote)
    args: dict[str, object] = {"now": NOW, "run_started": STARTED, "seen": frozenset(), **kw}
    return control_proof.problem(keys, WF, update, req, **args)  # type: ignore[arg-type]


def test_a_proof_binds_key_workflow_update_and_every_field() -> None:
    signed = control_proof.sign(KEY, WF, "pause", ControlRequest(actor="dana", reason="why"), NOW)
    assert check(signed) is None
    assert check(signed, keys=(OLD_KEY, KEY)) is None  # rotating: the previous key still checks
    assert "does not match" in (check(signed, keys=(OLD_KEY,)) or "")
    assert "does not match" in (check(signed, update="rollback") or "")
    assert "does not match" in (
        control_proof.problem(
            (KEY,), "rollout.x.header", "pause", signed, now=NOW, run_started=STARTED, seen=()
        )
        or ""
    )
    for field, value in (("actor", "rtadmin"), ("reason", "other")):
        assert "does not match" in (check(signed.model_copy(update={field: value})) or "")
    promote = control_proof.sign(KEY, WF, "promote", PromoteRequest(actor="dana", full=False), NOW)
    assert isinstance(promote, SignedPromote)
    assert check(promote, update="promote") is None
    assert "does not match" in (check(promote.model_copy(update={"full": True}), update="promote") or "")


def test_no_proof_is_no_refusal_and_no_key_refuses_every_proof() -> None:
    assert check(SignedControl(actor="rtadmin")) is None  # accepted; the handler marks it unverified
    signed = control_proof.sign(KEY, WF, "pause", ControlRequest(actor="dana"), NOW)
    assert "holds no SKYLINE_CONTROL_KEY" in (check(signed, keys=()) or "")


def test_time_and_nonce_bound_a_proof_to_one_use_in_one_run() -> None:
    def at(when: datetime) -> ControlRequest:
        return control_proof.sign(KEY, WF, "pause", ControlRequest(actor="dana"), when)

    early = STARTED + timedelta(minutes=1)
    assert check(at(STARTED - CLOCK_SKEW + timedelta(seconds=1)), now=early) is None
    refused = check(at(STARTED - CLOCK_SKEW - timedelta(seconds=1)), now=early)
    assert "before this rollout run started" in (refused or "")
    assert "too long ago" in (check(at(NOW - MAX_AGE - timedelta(seconds=1))) or "")
    assert "too long ago" in (check(at(NOW + CLOCK_SKEW + timedelta(seconds=1))) or "")
    signed = at(NOW)
    assert isinstance(signed, SignedControl) and signed.proof is not None
    assert "used already" in (check(signed, seen=frozenset({signed.proof.nonce})) or "")


def test_seal_signs_with_the_first_key_or_leaves_the_request_unproven() -> None:
    req = ControlRequest(actor="dana")
    assert control_proof.seal((), WF, "pause", req) is req
    sealed = control_proof.seal((KEY, OLD_KEY), WF, "pause", req, NOW)
    assert check(sealed, keys=(KEY,)) is None
    assert control_proof.plain(sealed) == req and type(control_proof.plain(sealed)) is ControlRequest


def test_a_schedule_names_its_actor_only_with_the_apis_word() -> None:
    proof = control_proof.schedule_proof(KEY, WF, "schedule:dana")
    assert control_proof.schedule_proof_checks((OLD_KEY, KEY), WF, "schedule:dana", proof)
    assert not control_proof.schedule_proof_checks((KEY,), WF, "schedule:rtadmin", proof)
    assert not control_proof.schedule_proof_checks((KEY,), "rollout.x.header", "schedule:dana", proof)
    assert not control_proof.schedule_proof_checks((KEY,), WF, "schedule:dana", None)
    assert not control_proof.schedule_proof_checks((), WF, "schedule:dana", proof)
