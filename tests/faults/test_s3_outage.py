"""S3 goes away for 20 s in the middle of a step's manifest write: retries carry the rollout through.

The outage starts at the worst moment: the proxy in front of the S3 server
lets half of the body of the PUT of `manifest.json` through, then resets
every connection and refuses new ones for 20 s (the server process keeps
its data, as a restarted S3 would). Worker, API and edge all lose S3.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from adapters.manifest_store import head_key
from adapters.storage import s3_client
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import make_bundle, terminal, wait_status
from tests.faults.history import assert_history_intact, changes_of
from tests.faults.rollouts import VERSION, healthy_apartment, start_all

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

OUTAGE_SECONDS = 20.0


async def test_s3_outage_during_a_step_write_is_retried_without_a_torn_manifest(
    rig: Rig, rig_api: httpx.AsyncClient, client: Client, loads: SyntheticRum, tmp_path: Path
) -> None:
    assert rig.proxy is not None
    bucket = rig.settings.s3_bucket
    bundle = make_bundle(tmp_path / "bundle", "s3-outage")
    apartment = await healthy_apartment(rig, rig_api, loads, ["header"], prefix="s3out")
    [rollout_id] = await start_all(rig_api, bundle, apartment, ["header"], steps=[5, 50, 100], bake_seconds=2)
    await wait_status(client, rollout_id, lambda s: s.state == "progressing" and len(s.revisions) == 1, 60)

    # the next step's head write is the one cut
    cut = rig.proxy.cut_on(f"PUT /{bucket}/{head_key(apartment)}".encode(), down_for=OUTAGE_SECONDS)
    assert await asyncio.to_thread(cut.fired.wait, 30), "the step's manifest write never came"
    assert cut.fired_at is not None
    # part of the new manifest reached the server, then the connection was reset
    body = cut.forwarded.split(b"\r\n\r\n", 1)[-1]
    assert body.startswith(b"{") and b'"apartments"' in body, cut.forwarded[:200]
    with pytest.raises(ValueError):
        json.loads(body)
    during = await rig_api.get(f"/apartments/{apartment}/manifest")
    assert during.status_code >= 500 or during.status_code == 503, "S3 should be unreachable now"

    final = await wait_status(client, rollout_id, terminal, 120)
    ended = time.monotonic()
    assert final.state == "succeeded", (final.state, final.reason, final.paused_reason)
    assert ended - cut.fired_at >= OUTAGE_SECONDS

    # the activity that hit the outage was retried, not failed over to a rollback
    events = [e async for e in client.get_workflow_handle(rollout_id).fetch_history_events()]
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert max(attempts) >= 2, attempts
    assert not any(h.action == "restored" for h in final.history)

    history = assert_history_intact(s3_client(rig.client_settings()), bucket, apartment)
    assert len(changes_of(history, rollout_id)) == 4
    assert history[-1].apartments[apartment].buildings["header"].active_unit == f"header@{VERSION}"
