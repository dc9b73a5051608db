"""A rollout in flight finishes after its storage server is SIGKILLed and comes back.

The embedded S3 server journals every acknowledged write (stack/s3server.py);
here it dies mid-rollout with a 5 % canary live, comes back on the same
journal, and the rollout is promoted to the end: the revisions keep growing
from where they were and the building holds the new unit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from stack.embedded import EmbeddedStack
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, wait_for, wait_state

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


async def test_a_rollout_in_flight_finishes_after_the_storage_server_is_killed(
    api: httpx.AsyncClient, stack: EmbeddedStack, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "1.1.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "1.1.0"))},
        "strategy": parked_strategy(),
        "actor": "alice",
    }
    created = await api.post("/rollouts", json=body)
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]
    live = await wait_for(api, rollout_id, lambda s: s["state"] == "progressing" and s["revisions"])
    assert live["weight"] == 5
    before = max(live["revisions"])

    os.kill(stack.pids()["s3"], signal.SIGKILL)
    dead = [p for p in stack.dead()]
    deadline = time.monotonic() + 10
    while not dead and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        dead = stack.dead()
    assert dead, "the storage server survived SIGKILL"
    await asyncio.to_thread(stack.restart, "s3")

    promoted = await api.post(
        f"/rollouts/{rollout_id}/promote", json={"actor": "carol"}, params={"full": "true"}
    )
    assert promoted.status_code == 200, promoted.text
    final = await wait_state(api, rollout_id, {"succeeded", "rolled_back", "failed"}, timeout=120)
    assert final["state"] == "succeeded", final["reason"]
    assert min(r for r in final["revisions"] if r > before) == before + 1  # still growing from where it was
    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    assert manifest["apartments"][apartment]["buildings"]["header"]["active_unit"] == "header@1.1.0"
    assert int(manifest["version"]) == max(final["revisions"])
