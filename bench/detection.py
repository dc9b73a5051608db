"""Benchmark 2: from the canary's error rate breaching to the edge serving last-known-good.

Each trial is a rollout baking at 5 % on healthy synthetic traffic (every
analysis passes). At t0, a random moment of its analysis cycle, its failure
ratio jumps from 0 to 50 %; timed until the failing analysis ("detected")
and until the edge verifiably serves the restored building (the workflow
records "restored" once its read-back through the edge matched). Both
instants are workflow times (wall clock of this machine), t0 is the
benchmark's wall clock.

What bounds it: Prometheus must scrape the breach (scrape interval), then the
next analysis must run (analysis interval), then one manifest write + purge.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from functools import partial
from typing import Any

from bench.context import Ctx, wait_visible
from bench.report import ms, summary, table, write
from bench.scenario import (
    bounded_gather,
    create_apartment,
    edge_manifest,
    make_bundle,
    rollout_body,
    start_rollout,
    terminal,
    wait_status,
)
from skyline.rollout import RolloutStatus

ERROR_RATIO = 0.5
WINDOW_SECONDS = 10


def _baking_on_passes(s: RolloutStatus) -> bool:
    return s.state == "progressing" and s.last_analysis is not None and s.last_analysis.verdict == "pass"


async def _one_interval(ctx: Ctx, interval: float, trials: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    apartments = [f"dt-{tag}-{i:02d}" for i in range(trials)]
    bundle = make_bundle(ctx.work / "detection-bundle", "detection")
    flows = [(a, "header", "header", "1.1.0") for a in apartments]
    for flow in flows:
        ctx.rum.add(*flow, per_second=20)
    await bounded_gather(10, [partial(create_apartment, ctx.api, a, ["header"]) for a in apartments])
    await wait_visible(ctx.rig.prometheus_url, flows, min_requests=5, window_seconds=WINDOW_SECONDS)
    bodies = [
        rollout_body(
            a,
            "header",
            bundle,
            "1.1.0",
            bake_seconds=3600,
            analysis_interval_seconds=interval,
            analysis_window_seconds=WINDOW_SECONDS,
            min_requests=5,
        )
        for a in apartments
    ]
    ids = await bounded_gather(10, [partial(start_rollout, ctx.api, b) for b in bodies])
    await bounded_gather(10, [partial(wait_status, ctx.temporal, r, _baking_on_passes, 120) for r in ids])

    detected: list[float] = []
    served: list[float] = []
    phase = random.Random(7)
    for flow, rollout_id in zip(flows, ids, strict=True):
        # The rollouts started together, so their analyses tick in step; a trial
        # starting right after the previous one's rollback would always land just
        # after a tick (the worst case). A random phase gives the real spread.
        await asyncio.sleep(phase.uniform(0, interval))
        t0 = time.time()
        ctx.rum.set_error_ratio(*flow, ERROR_RATIO)
        final = await wait_status(ctx.temporal, rollout_id, terminal, 120, interval=0.1)
        if final.state != "rolled_back":
            raise RuntimeError(f"{rollout_id} ended {final.state}: {final.reason}")
        failed = next(a for a in final.analyses if a.verdict == "fail" and a.at is not None)
        restored = next(h for h in final.history if h.action == "restored")
        assert failed.at is not None
        detected.append(failed.at.timestamp() - t0)
        served.append(restored.at.timestamp() - t0)
        manifest = await edge_manifest(ctx.edge, ctx.settings.s3_bucket, flow[0])
        if manifest.apartments[flow[0]].buildings["header"].canary() is not None:
            raise RuntimeError(f"{flow[0]}: the edge still serves a canary after the rollback")
    ctx.rum.remove_where(f"dt-{tag}")
    return {
        "interval": interval,
        "detected": summary(detected),
        "served": summary(served),
        "raw": {"detected": detected, "served": served},
    }


async def run(ctx: Ctx, intervals: tuple[float, ...] = (1.0, 5.0), trials: int = 5) -> list[dict[str, Any]]:
    results = [await _one_interval(ctx, interval, trials) for interval in intervals]
    rows = [
        [
            f"{r['interval']:g} s",
            ms(r["detected"]["p50"]),
            ms(r["detected"]["max"]),
            ms(r["served"]["p50"]),
            ms(r["served"]["max"]),
        ]
        for r in results
    ]
    text = table(
        f"Detection to rollback: error rate 0 → {ERROR_RATIO:.0%} until the edge serves last-known-good "
        f"({trials} trials per interval, ms)",
        ["analysis interval", "detected p50", "detected max", "edge serves LKG p50", "edge serves LKG max"],
        rows,
        [
            f"Prometheus scrapes every {ctx.rig.scrape_interval}; analysis window {WINDOW_SECONDS} s; "
            "max_error_rate 1 %; auto_rollback on.",
        ],
    )
    params = {
        "intervals": intervals,
        "trials": trials,
        "error_ratio": ERROR_RATIO,
        "scrape_interval": ctx.rig.scrape_interval,
        "window_seconds": WINDOW_SECONDS,
    }
    write("detection", params, results, text)
    return results
