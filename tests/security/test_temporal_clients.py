"""Issue 23 item 3: a control sent to Temporal directly cannot pass for the API's.

Anyone who reaches Temporal's frontend can send a rollout or a fleet an Update
naming any actor. The API signs its controls (skyline/control_proof.py); the
worker's update validator checks the proof. These tests send updates the way
an attacker on the Temporal port would (a plain client, no credentials) to the
real dev server and worker of the embedded stack, next to API actions by a
second API process with auth on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError

from api.auth import hash_token
from skyline import control_proof
from skyline.rollout import UNVERIFIED, ControlRequest, PromoteRequest
from stack.embedded import EmbeddedStack
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, wait_state
from tests.support.secured import api_process

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKENS = {"deployer": "tok-ctl-deployer", "admin": "tok-ctl-admin"}
NAMES = {"deployer": "dana", "admin": "root-ada"}


@pytest.fixture(scope="module")
def secured_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = json.dumps([f"{NAMES[r]}:{r}:{hash_token(t)}" for r, t in TOKENS.items()])
    log = tmp_path_factory.mktemp("control-api") / "api.log"
    with api_process(stack, log, {"SKYLINE_AUTH_TOKENS": tokens}, "control-api") as (url, _):
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def api(secured_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {TOKENS['deployer']}"}
    async with httpx.AsyncClient(base_url=secured_url, timeout=60, headers=headers) as client:
        yield client


async def parked_rollout(api: httpx.AsyncClient, tmp_path: Path) -> str:
    admin = {"authorization": f"Bearer {TOKENS['admin']}"}
    apartment = await create_apartment(api, headers=admin)
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.0.0"))},
        "strategy": parked_strategy(),
    }
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    rollout_id: str = started.json()["id"]
    await wait_state(api, rollout_id, {"progressing"})
    return rollout_id


def actors(status: dict[str, Any], action: str) -> list[str]:
    return [h["actor"] for h in status["history"] if h["action"] == action]


async def test_a_direct_update_is_audited_unverified_and_an_api_action_as_its_token(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path
) -> None:
    rollout_id = await parked_rollout(api, tmp_path)
    handle = temporal.get_workflow_handle(rollout_id)
    # What issue 23 reproduced: no credentials, an admin's name.
    await handle.execute_update("pause", ControlRequest(actor="rtadmin", reason="spoofed"))
    resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "rtadmin", "reason": "mine"})
    assert resumed.status_code == 200, resumed.text
    status = resumed.json()
    assert actors(status, "pause") == [f"rtadmin{UNVERIFIED}"]
    assert actors(status, "resume") == ["dana"]  # the token's name, not the body's
    rolled = await api.post(f"/rollouts/{rollout_id}/rollback", json={"reason": "done"})
    assert rolled.status_code == 200, rolled.text
    assert actors(rolled.json(), "rollback") == ["dana"]


async def test_forged_and_replayed_proofs_are_refused_and_leave_no_trace(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path
) -> None:
    rollout_id = await parked_rollout(api, tmp_path)
    handle = temporal.get_workflow_handle(rollout_id)
    forged = control_proof.sign(
        b"a key the attacker chose", rollout_id, "pause", ControlRequest(actor="rtadmin")
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("pause", forged)
    assert "signature does not match" in str(refused.value.cause)

    # A proof the API made, read back from the history, replayed: once to another control,
    # once as it was.
    paused = await api.post(f"/rollouts/{rollout_id}/pause", json={"reason": "looking"})
    assert paused.status_code == 200, paused.text
    sent = None
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            payload = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            sent = json.loads(payload.payloads[0].data)
    assert sent is not None and sent["proof"] is not None and sent["actor"] == "dana"
    altered = {**sent, "reason": "altered"}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("resume", altered)  # also another update name than signed
    assert "signature does not match" in str(refused.value.cause)
    resumed = await api.post(f"/rollouts/{rollout_id}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("pause", sent)
    assert "used already" in str(refused.value.cause)

    # Signed for another rollout: refused here.
    other = control_proof.sign(b"x" * 32, "rollout.other.header", "promote", PromoteRequest(actor="dana"))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("promote", other)

    status = (await api.get(f"/rollouts/{rollout_id}")).json()
    assert {a for h in status["history"] for a in [h["actor"]]} <= {"dana", "skyline"}
    assert actors(status, "pause") == ["dana"] and actors(status, "resume") == ["dana"]
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})


async def test_a_proof_signed_before_the_run_started_is_refused(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path, stack: EmbeddedStack
) -> None:
    """The same workflow id serves every rollout of a building: an old proof must not steer a new run."""
    rollout_id = await parked_rollout(api, tmp_path)
    key = stack.control_key().encode()
    early = datetime(2020, 1, 1, tzinfo=UTC)
    stale = control_proof.sign(key, rollout_id, "pause", ControlRequest(actor="dana"), now=early)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await temporal.get_workflow_handle(rollout_id).execute_update("pause", stale)
    assert "before this rollout run started" in str(refused.value.cause)
    # The key itself, used now, is what the API does: accepted as verified.
    fresh = control_proof.sign(key, rollout_id, "pause", ControlRequest(actor="dana"))
    await temporal.get_workflow_handle(rollout_id).execute_update("pause", fresh)
    status = (await api.get(f"/rollouts/{rollout_id}")).json()
    assert actors(status, "pause") == ["dana"]
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})


async def test_a_direct_update_to_a_fleet_is_audited_unverified(
    api: httpx.AsyncClient, temporal: Client, tmp_path: Path
) -> None:
    admin = {"authorization": f"Bearer {TOKENS['admin']}"}
    apartment = await create_apartment(api, headers=admin)
    body = {
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.0.0"))},
        "apartments": [apartment],
        "strategy": parked_strategy(),
    }
    created = await api.post("/fleets", json=body)
    assert created.status_code == 201, created.text
    fleet_id = created.json()["id"]
    await temporal.get_workflow_handle(fleet_id).execute_update(
        "pause", ControlRequest(actor="rtadmin", reason="spoofed")
    )
    rolled = await api.post(f"/fleets/{fleet_id}/rollback", json={"actor": "rtadmin", "reason": "stop"})
    assert rolled.status_code == 200, rolled.text
    status = rolled.json()
    assert actors(status, "pause") == [f"rtadmin{UNVERIFIED}"]
    assert actors(status, "rollback") == ["dana"]
