"""SIGKILL the worker at random moments of 20 rollouts: all finish, every step lands exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from adapters.storage import s3_client
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import CATEGORIES, bounded_gather, make_bundle, terminal, wait_status
from tests.faults.history import assert_history_intact, changes_of
from tests.faults.rollouts import VERSION, healthy_apartment, start_all

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

APARTMENTS = 5  # x 4 buildings = 20 rollouts, four writers contending per apartment
KILLS = 3


async def test_worker_sigkilled_mid_rollouts_loses_and_repeats_nothing(
    rig: Rig, rig_api: httpx.AsyncClient, client: Client, loads: SyntheticRum, tmp_path: Path
) -> None:
    seed = int(os.environ.get("SKYLINE_FAULT_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    # printed before any wait can fail: SKYLINE_FAULT_SEED=<seed> replays this schedule
    print(f"worker-kill seed {seed}")
    bundle = make_bundle(tmp_path / "bundle", "worker-kill")
    apartments = [await healthy_apartment(rig, rig_api, loads, prefix="kill") for _ in range(APARTMENTS)]
    ids: list[str] = []
    for apartment in apartments:
        ids += await start_all(rig_api, bundle, apartment, CATEGORIES, bake_seconds=1)

    kills: list[float] = []
    started = time.monotonic()
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.3, 2.5))  # a random moment of the rollouts, not a wait
        await asyncio.to_thread(rig.kill_worker)
        kills.append(round(time.monotonic() - started, 2))
        await asyncio.to_thread(rig.start_worker)

    finals = await bounded_gather(20, [partial(wait_status, client, r, terminal, 180) for r in ids])
    last_kill = started + kills[-1]
    recovered = time.monotonic() - last_kill
    context = f"seed {seed}, kills at {kills} s, all ended {recovered:.0f} s after the last"
    print(context)  # recovery time is bounded by the activity timeouts a crash leaves to expire
    assert [f.state for f in finals] == ["succeeded"] * len(ids), (
        context,
        [(f.rollout_id, f.state, f.reason) for f in finals if f.state != "succeeded"],
    )

    s3 = s3_client(rig.client_settings())
    bucket = rig.settings.s3_bucket
    for apartment in apartments:
        history = assert_history_intact(s3, bucket, apartment)
        # creation, then per rollout four weights and the promotion
        assert len(history) == 1 + len(CATEGORIES) * 5, (context, apartment, len(history))
        for building in CATEGORIES:
            workflow_id = f"rollout.{apartment}.{building}"
            written = changes_of(history, workflow_id)
            assert [c.rsplit("/", 1)[1] for c in written] == ["1", "2", "3", "4", "5"], (context, written)
            weights = [
                m.apartments[apartment].buildings[building].units[f"{building}@{VERSION}"].rollout
                for m in history
                if m.change is not None and m.change.id in written[:4]
            ]
            assert [w.percentage for w in weights if w is not None] == [5, 25, 50, 100], context
        final = history[-1].apartments[apartment].buildings
        assert {b: final[b].active_unit for b in CATEGORIES} == {b: f"{b}@{VERSION}" for b in CATEGORIES}
    for final_status in finals:
        assert len(final_status.revisions) == 5, (context, final_status.rollout_id, final_status.revisions)
