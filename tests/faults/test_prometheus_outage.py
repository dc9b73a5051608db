"""Prometheus stops during a bake: the judge holds (metrics unavailable), never promotes blind,
and carries on when a human resumes it after Prometheus is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from bench.context import wait_visible
from bench.loads import SyntheticRum
from bench.rig import Rig
from bench.scenario import edge_manifest, make_bundle, status, terminal, wait_status
from tests.faults.rollouts import VERSION, healthy_apartment, start_all

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


async def test_prometheus_down_pauses_as_inconclusive_then_resume_completes(
    rig: Rig,
    rig_api: httpx.AsyncClient,
    rig_edge: httpx.AsyncClient,
    client: Client,
    loads: SyntheticRum,
    tmp_path: Path,
) -> None:
    bucket = rig.settings.s3_bucket
    bundle = make_bundle(tmp_path / "bundle", "prometheus-outage")
    apartment = await healthy_apartment(rig, rig_api, loads, ["header"], prefix="prom", active="1.0.0")
    [rollout_id] = await start_all(
        rig_api, bundle, apartment, ["header"],
        steps=[5, 50, 100], bake_seconds=4, consecutive_error_limit=1, inconclusive_limit=0,
    )  # fmt: skip
    await wait_status(
        client,
        rollout_id,
        lambda s: (
            s.state == "progressing" and s.last_analysis is not None and s.last_analysis.verdict == "pass"
        ),
        60,
    )

    await asyncio.to_thread(rig.stop_component, "prometheus")
    try:
        paused = await wait_status(client, rollout_id, lambda s: s.state != "progressing", 60)
        assert paused.state == "paused", (paused.state, paused.reason)
        assert paused.paused_reason is not None and paused.paused_reason.startswith(
            "held: metrics unavailable"
        )
        assert paused.last_analysis is not None and paused.last_analysis.verdict in {"error", "inconclusive"}
        assert (
            "metrics unavailable" in paused.last_analysis.reason
            or "Prometheus" in paused.last_analysis.reason
        )
        held = paused.weight

        # Held, not promoted: over more than a whole bake nothing moves.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = await status(client, rollout_id)
            assert (now.state, now.weight) == ("paused", held)
            await asyncio.sleep(0.5)
        served = (await edge_manifest(rig_edge, bucket, apartment)).apartments[apartment].buildings["header"]
        assert served.active_unit == "header@1.0.0"
        canary = served.units[f"header@{VERSION}"]
        assert canary.rollout is not None and canary.rollout.percentage == held
    finally:
        await asyncio.to_thread(rig.start_component, "prometheus")

    await wait_visible(rig.prometheus_url, [(apartment, "header", "header", VERSION)], min_requests=5)
    resumed = await rig_api.post(f"/rollouts/{rollout_id}/resume", json={"actor": "oncall", "reason": "back"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "progressing"

    final = await wait_status(client, rollout_id, terminal, 90)
    assert final.state == "succeeded", (final.state, final.reason, final.paused_reason)
    after_resume = [a for a in final.analyses if a.at is not None and a.at > paused.updated_at]
    assert after_resume and after_resume[-1].verdict == "pass"
    served = (await edge_manifest(rig_edge, bucket, apartment)).apartments[apartment].buildings["header"]
    assert served.active_unit == f"header@{VERSION}"
