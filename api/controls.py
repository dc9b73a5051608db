"""Sending a control (pause, promote, approve, …) to a running workflow, as every route does.

The API seals the request with its control proof (skyline/control_proof.py: the
worker records the actor as verified only with it) and sends it as a Temporal
update; the workflow's control table applies, defers or refuses it, and a
refusal is a 409 `invalid_control` saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError

from api.auth import Principal
from api.errors import ApiError
from skyline import control_proof
from skyline.rollout import ControlRequest

Result = TypeVar("Result")


def as_caller(who: Principal, req: ControlRequest) -> ControlRequest:
    """The request in the caller's name (a token's own name wins over the body's actor)."""
    return req.model_copy(update={"actor": who.actor(req.actor)})


async def send_control(
    temporal: Client,
    keys: Sequence[bytes],
    workflow_id: str,
    update: str,
    req: ControlRequest,
    result_type: type[Result],
) -> Result:
    signed = control_proof.seal(keys, workflow_id, update, req)
    handle = temporal.get_workflow_handle(workflow_id, result_type=result_type)
    try:
        result: Result = await handle.execute_update(update, signed, result_type=result_type)
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "invalid_control", str(exc.cause)) from exc
    return result
