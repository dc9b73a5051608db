"""Who sent a control: the API proves its actor to the workflow, anyone else is "unverified".

Anyone who can reach Temporal's frontend can send a rollout an Update naming
any actor. So the API signs each control it sends: an HMAC-SHA256, with a key
the API and the worker hold (`SKYLINE_CONTROL_KEY`; never in a workflow input
or history), over the workflow id, the update's name, the request's fields, the
time it was signed and a random nonce. The update's validator checks it
(workflows/controls.py):

- no proof: accepted, and the audit says "(via Temporal, actor unverified)",
  exactly like a signal from the Temporal UI;
- a proof that checks: accepted, the actor is the API's token name;
- a proof that does not check (wrong key, altered field, another workflow, a
  nonce this run has seen, signed before this run started or long ago):
  refused, nothing written to the history.

Validators do not run when a history is replayed (temporalio: `run_validator`
is false on replay), so the handler never looks at the key: an accepted update
that carries a proof was checked when it arrived, one without was not. The
verdict is a function of the history alone, and replays the same with any key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Container, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import Field

from skyline.rollout import ControlRequest, PromoteRequest, Strict

PROOF_VERSION = "skyline-control-v1"
# The clocks of the API's host and of Temporal's may disagree by this much.
CLOCK_SKEW = timedelta(seconds=30)
# A proof older than this is refused (an update is delivered in seconds or not at all).
MAX_AGE = timedelta(minutes=10)


class ControlProof(Strict):
    issued_at_ms: int = Field(ge=0, description="when the API signed, milliseconds since the epoch (UTC)")
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    mac: str = Field(pattern=r"^[0-9a-f]{64}$")


class SignedControl(ControlRequest):
    """What a control update carries: the request, and the API's proof when the API sent it."""

    proof: ControlProof | None = None


class SignedPromote(PromoteRequest):
    proof: ControlProof | None = None


class ApproveRequest(ControlRequest):
    """An approval of a pipeline stage; `role` is the approver's, as the API authenticated it."""

    role: str = Field(default="viewer", max_length=20)


class SignedApproval(ApproveRequest):
    proof: ControlProof | None = None


def plain(req: ControlRequest) -> ControlRequest:
    """The request without its proof (what the workflow keeps and forwards)."""
    kind: type[ControlRequest] = ControlRequest
    if isinstance(req, PromoteRequest):
        kind = PromoteRequest
    elif isinstance(req, ApproveRequest):
        kind = ApproveRequest
    return kind.model_validate(req.model_dump(exclude={"proof"}))


def _message(workflow_id: str, update: str, req: ControlRequest, issued_at_ms: int, nonce: str) -> bytes:
    fields = json.dumps(req.model_dump(mode="json", exclude={"proof"}), sort_keys=True, separators=(",", ":"))
    return "\n".join((PROOF_VERSION, workflow_id, update, fields, str(issued_at_ms), nonce)).encode()


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(
    key: bytes, workflow_id: str, update: str, req: ControlRequest, now: datetime | None = None
) -> SignedControl | SignedPromote | SignedApproval:
    """`req` with a proof that `update` of `workflow_id` with exactly these fields comes from a key holder."""
    issued_at_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    nonce = secrets.token_hex(16)
    mac = _mac(key, _message(workflow_id, update, req, issued_at_ms, nonce))
    proof = ControlProof(issued_at_ms=issued_at_ms, nonce=nonce, mac=mac)
    fields = req.model_dump(exclude={"proof"})
    if isinstance(req, PromoteRequest):
        return SignedPromote(**fields, proof=proof)
    if isinstance(req, ApproveRequest):
        return SignedApproval(**fields, proof=proof)
    return SignedControl(**fields, proof=proof)


def seal(
    keys: Sequence[bytes], workflow_id: str, update: str, req: ControlRequest, now: datetime | None = None
) -> ControlRequest:
    """What the API sends: `req` signed with the first key, or as it is without one (then unverified)."""
    return sign(keys[0], workflow_id, update, req, now) if keys else req


def schedule_proof(key: bytes, rollout_id: str, actor: str) -> str:
    """The API's word that `actor` scheduled the promotion of `rollout_id` (in the schedule's input)."""
    return _mac(key, "\n".join((PROOF_VERSION, "schedule", rollout_id, actor)).encode())


def schedule_proof_checks(keys: Sequence[bytes], rollout_id: str, actor: str, proof: str | None) -> bool:
    """Whether a promotion schedule's actor was named by the API (else a Temporal client started it)."""
    if not proof:
        return False
    return any(hmac.compare_digest(schedule_proof(k, rollout_id, actor), proof) for k in keys)


def problem(
    keys: Sequence[bytes],
    workflow_id: str,
    update: str,
    req: SignedControl | SignedPromote | SignedApproval,
    *,
    now: datetime,
    run_started: datetime,
    seen: Container[str],
) -> str | None:
    """Why the proof `req` carries is refused, or None when it checks (or there is none)."""
    proof = req.proof
    if proof is None:
        return None
    if not keys:
        return "control proof refused: this worker holds no SKYLINE_CONTROL_KEY"
    message = _message(workflow_id, update, req, proof.issued_at_ms, proof.nonce)
    if not any(hmac.compare_digest(_mac(key, message), proof.mac) for key in keys):
        return (
            "control proof refused: the signature does not match "
            "(another key than the worker's SKYLINE_CONTROL_KEY, or an altered request)"
        )
    issued = datetime.fromtimestamp(proof.issued_at_ms / 1000, UTC)
    if issued < run_started - CLOCK_SKEW:
        return "control proof refused: signed before this rollout run started (or the API's clock is off)"
    if issued > now + CLOCK_SKEW or now - issued > MAX_AGE:
        return "control proof refused: signed too long ago (or the API's clock is off)"
    if proof.nonce in seen:
        return "control proof refused: this proof was used already"
    return None


# The keys the worker checks proofs with: loaded once at worker start (worker/main.py) and read
# by update validators. Module state, not workflow state: it never reaches a history.
_held: tuple[bytes, ...] = ()


def hold(keys: Sequence[bytes]) -> None:
    global _held
    _held = tuple(k for k in keys if k)


def held() -> tuple[bytes, ...]:
    return _held
