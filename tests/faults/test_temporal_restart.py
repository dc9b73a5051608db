"""Restart the Temporal dev server mid-rollout, on the same SQLite file: the rollout resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from adapters.storage import s3_client
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import make_bundle, terminal, wait_status
from tests.faults.history import assert_history_intact, changes_of
from tests.faults.rollouts import VERSION, healthy_apartment, start_all

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


async def test_rollout_resumes_after_temporal_restart(
    rig: Rig, rig_api: httpx.AsyncClient, client: Client, loads: SyntheticRum, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle", "temporal-restart")
    apartment = await healthy_apartment(rig, rig_api, loads, ["header"], prefix="tmprl")
    [rollout_id] = await start_all(rig_api, bundle, apartment, ["header"], steps=[5, 50, 100], bake_seconds=3)
    at_first_step = await wait_status(
        client, rollout_id, lambda s: s.state == "progressing" and len(s.revisions) == 1, 60
    )
    run_id = (await client.get_workflow_handle(rollout_id).describe()).run_id
    temporal_pid = rig.pid("temporal")

    await asyncio.to_thread(rig.restart_component, "temporal")
    assert rig.pid("temporal") != temporal_pid
    assert rig.pid("worker") is not None, "the worker exited while Temporal was away"

    final = await wait_status(client, rollout_id, terminal, 120)
    assert final.state == "succeeded", (final.state, final.reason, final.paused_reason)
    # the same run carried on from where it was, it did not start over
    assert (await client.get_workflow_handle(rollout_id).describe()).run_id == run_id
    assert final.revisions[0] == at_first_step.revisions[0]
    assert [h.action for h in final.history].count("published") == 1
    history = assert_history_intact(s3_client(rig.client_settings()), rig.settings.s3_bucket, apartment)
    assert len(changes_of(history, rollout_id)) == 4  # 5 %, 50 %, 100 %, promotion
    assert history[-1].apartments[apartment].buildings["header"].active_unit == f"header@{VERSION}"
