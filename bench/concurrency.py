"""Benchmark 3: many rollouts at once on distinct buildings.

N rollouts (four buildings per apartment: header, main, sidebar, footer),
each four steps (5/25/50/100 %) with 1 s bakes and a passing analysis per
step, then promotion: five manifest writes, five purge-and-verify rounds and
at least four Prometheus analyses each. Started through the API (20 requests
in flight), all at once; timed from the first request until the last rollout
ended (its final workflow time). The worker is restarted before each N so
its peak RSS (VmHWM) belongs to that N alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bench.context import Ctx, wait_visible
from bench.report import summary, table, write
from bench.scenario import (
    CATEGORIES,
    bounded_gather,
    create_apartment,
    make_bundle,
    rollout_body,
    start_rollout,
)
from skyline.rollout import RolloutStatus
from workflows.rollout import RolloutWorkflow

STEPS = [5, 25, 50, 100]
IN_FLIGHT = 20


async def _results(ctx: Ctx, ids: list[str], within: float) -> tuple[list[RolloutStatus], dict[str, int]]:
    """Final statuses of the rollouts that ended within `within` s, and how the others stand
    (they are terminated, so a bad run ends instead of hanging)."""
    handles = [ctx.temporal.get_workflow_handle_for(RolloutWorkflow.run, r) for r in ids]
    tasks = [asyncio.ensure_future(h.result()) for h in handles]
    await asyncio.wait(tasks, timeout=within)
    finals: list[RolloutStatus] = []
    unfinished: dict[str, int] = {}
    for handle, task in zip(handles, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            finals.append(task.result())
            continue
        task.cancel()
        try:
            state = f"unfinished ({(await handle.query(RolloutWorkflow.status)).state})"
        except Exception:  # a workflow task that keeps failing cannot answer queries
            state = "unfinished (stuck)"
        unfinished[state] = unfinished.get(state, 0) + 1
        with contextlib.suppress(Exception):
            await handle.terminate("benchmark deadline")
    return finals, unfinished


async def _one_level(ctx: Ctx, count: int) -> dict[str, Any]:
    ctx.rig.stop_worker()
    ctx.rig.start_worker()
    tag = uuid.uuid4().hex[:6]
    per = len(CATEGORIES)
    apartments = [f"cc-{tag}-{i:04d}" for i in range(math.ceil(count / per))]
    targets = [(a, b) for a in apartments for b in CATEGORIES][:count]
    bundle = make_bundle(ctx.work / "concurrency-bundle", "concurrency")
    flows = [(a, b, b, "1.1.0") for a, b in targets]
    for flow in flows:
        ctx.rum.add(*flow, per_second=10)
    await bounded_gather(IN_FLIGHT, [partial(create_apartment, ctx.api, a, CATEGORIES) for a in apartments])
    await wait_visible(ctx.rig.prometheus_url, flows[:: max(1, count // 20)], within=120)
    bodies = [rollout_body(a, b, bundle, "1.1.0", steps=STEPS, bake_seconds=1, checks=[]) for a, b in targets]

    started_wall = datetime.now(UTC)
    started = time.perf_counter()
    ids = await bounded_gather(IN_FLIGHT, [partial(start_rollout, ctx.api, body) for body in bodies])
    start_phase = time.perf_counter() - started
    finals, unfinished = await _results(ctx, ids, within=max(120.0, count * 1.0))
    observed = time.perf_counter() - started
    peak = ctx.rig.worker_peak_rss_bytes()
    ctx.rum.remove_where(f"cc-{tag}")

    states = dict(unfinished)
    for f in finals:
        states[f.state] = states.get(f.state, 0) + 1
    # the last rollout's own end time; with stragglers cut off, the deadline
    completion = observed
    if finals and not unfinished:
        completion = (max(f.updated_at for f in finals) - started_wall).total_seconds()
    durations = [(f.updated_at - f.started_at).total_seconds() for f in finals]
    steps_done = sum(len([h for h in f.history if h.action == "set weight"]) for f in finals)
    writes = sum(len(f.revisions) for f in finals)
    return {
        "count": count,
        "states": states,
        "start_phase_seconds": start_phase,
        "completion_seconds": completion,
        "observed_seconds": observed,
        "steps": steps_done,
        "steps_per_second": steps_done / completion,
        "manifest_writes": writes,
        "writes_per_second": writes / completion,
        "rollout_seconds": summary(durations),
        "worker_peak_rss_mib": peak / 2**20 if peak else None,
    }


async def run(ctx: Ctx, counts: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    if counts is None:
        counts = (10, 100, 1000) if ctx.full else (10, 100)
    results = [await _one_level(ctx, n) for n in counts]
    rows = []
    for i, r in enumerate(results):
        growth = ""
        if i > 0:
            prev = results[i - 1]
            exponent = math.log(r["completion_seconds"] / prev["completion_seconds"]) / math.log(
                r["count"] / prev["count"]
            )
            growth = f"x{r['completion_seconds'] / prev['completion_seconds']:.1f} for x{r['count'] // prev['count']} (~N^{exponent:.2f})"  # noqa: E501
        ok = r["states"].get("succeeded", 0)
        rows.append(
            [
                r["count"],
                f"{ok}/{r['count']}",
                f"{r['start_phase_seconds']:.1f}",
                f"{r['completion_seconds']:.1f}",
                f"{r['rollout_seconds']['p50']:.1f} / {r['rollout_seconds']['max']:.1f}",
                f"{r['steps_per_second']:.1f}",
                f"{r['writes_per_second']:.1f}",
                f"{r['worker_peak_rss_mib']:.0f}" if r["worker_peak_rss_mib"] else "?",
                growth,
            ]
        )
    notes = [
        "Four steps each, 1 s bake per step, analysis every 1 s; all started at once through the API. "
        "steps/s counts traffic steps (weights set); writes/s counts manifest revisions (steps + promotion).",
    ]
    if not ctx.full:
        notes.append(
            "1,000 concurrent rollouts is measured only with `python -m bench --full` (not this run)."
        )
    text = table(
        "Many rollouts at once (distinct buildings, 4 per apartment)",
        [
            "N",
            "succeeded",
            "start phase s",
            "completion s",
            "per rollout p50 / max s",
            "steps/s",
            "writes/s",
            "worker peak RSS MiB",
            "time growth",
        ],
        rows,
        notes,
    )
    write(
        "concurrency", {"counts": counts, "steps": STEPS, "bake_seconds": 1, "full": ctx.full}, results, text
    )
    return results
