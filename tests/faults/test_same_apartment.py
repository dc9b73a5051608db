"""50 rollouts on 50 buildings of one apartment at once: no update is lost in the shared manifest."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from adapters.storage import s3_client
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import bounded_gather, make_bundle, terminal, wait_status
from tests.faults.history import assert_history_intact, changes_of
from tests.faults.rollouts import VERSION, healthy_apartment, start_all

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

BUILDINGS = [f"b{i:02d}" for i in range(50)]
STEPS = [50, 100]  # two weights and the promotion: three writes per rollout on one head


@pytest.mark.timeout(600)
async def test_fifty_buildings_of_one_apartment_at_once_lose_no_update(
    rig: Rig, rig_api: httpx.AsyncClient, client: Client, loads: SyntheticRum, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bundle", "same-apartment")
    apartment = await healthy_apartment(rig, rig_api, loads, BUILDINGS, prefix="crowd")
    ids = await start_all(rig_api, bundle, apartment, BUILDINGS, steps=STEPS, bake_seconds=1)
    finals = await bounded_gather(50, [partial(wait_status, client, r, terminal, 420) for r in ids])
    assert [(f.building, f.state) for f in finals] == [(b, "succeeded") for b in BUILDINGS], [
        (f.building, f.reason) for f in finals if f.state != "succeeded"
    ]

    history = assert_history_intact(s3_client(rig.client_settings()), rig.settings.s3_bucket, apartment)
    assert len(history) == 1 + len(BUILDINGS) * (len(STEPS) + 1)
    for building in BUILDINGS:
        assert len(changes_of(history, f"rollout.{apartment}.{building}")) == len(STEPS) + 1, building
    final = history[-1].apartments[apartment].buildings
    lost = [b for b in BUILDINGS if final[b].active_unit != f"{b}@{VERSION}"]
    assert not lost, f"updates lost for {lost}"
    assert all(final[b].units[f"{b}@{VERSION}"].status == "stable" for b in BUILDINGS)
