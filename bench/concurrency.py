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

from temporalio.client import WorkflowHandle

from bench.context import Ctx, wait_visible
from bench.cpu import CpuSnapshot
from bench.report import summary, table, write
from bench.rig import COMPONENTS
from bench.scenario import (
    CATEGORIES,
    bounded_gather,
    create_apartment,
    make_bundle,
    rollout_body,
    start_rollout,
)
from bench.timeline import breakdown, reason_key
from skyline.rollout import RolloutStatus
from skyline.settings import Settings
from workflows.rollout import RolloutWorkflow

STEPS = [5, 25, 50, 100]
IN_FLIGHT = 20


def _why(s: RolloutStatus) -> str:
    """What holds (or ended) one rollout, figures blanked so equal causes group."""
    text = s.paused_reason or s.reason or (s.last_analysis.reason if s.last_analysis else None)
    return reason_key(text or s.waiting_for) or "no reason recorded"


async def _stuck(handle: WorkflowHandle[Any, Any]) -> str:
    """A workflow that cannot answer a query: name its pending activity and last failure."""
    try:
        described = await handle.describe()
    except Exception as exc:
        return f"stuck (describe failed: {type(exc).__name__})"
    for pending in described.raw_description.pending_activities:
        failure = reason_key(pending.last_failure.message) or "no failure"
        return f"stuck in {pending.activity_type.name} (attempt {pending.attempt}: {failure})"
    return "stuck (no pending activity: failing workflow task)"


async def _results(
    ctx: Ctx, ids: list[str], within: float
) -> tuple[list[RolloutStatus], dict[str, int], dict[str, int]]:
    """Final statuses of the rollouts that ended within `within` s, how the others stand and
    why (they are terminated, so a bad run ends instead of hanging)."""
    handles = [ctx.temporal.get_workflow_handle_for(RolloutWorkflow.run, r) for r in ids]
    tasks = [asyncio.ensure_future(h.result()) for h in handles]
    await asyncio.wait(tasks, timeout=within)
    finals: list[RolloutStatus] = []
    unfinished: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for handle, task in zip(handles, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            final = task.result()
            finals.append(final)
            if final.state != "succeeded":
                why = f"{final.state}: {_why(final)}"
                reasons[why] = reasons.get(why, 0) + 1
            continue
        task.cancel()
        try:
            current = await handle.query(RolloutWorkflow.status)
            state = f"unfinished ({current.state})"
            why = f"{current.state}: {_why(current)}"
        except Exception:  # a workflow task that keeps failing cannot answer queries
            state = "unfinished (stuck)"
            why = await _stuck(handle)
        unfinished[state] = unfinished.get(state, 0) + 1
        reasons[why] = reasons.get(why, 0) + 1
        with contextlib.suppress(Exception):
            await handle.terminate("benchmark deadline")
    return finals, unfinished, reasons


async def _one_level(ctx: Ctx, count: int) -> dict[str, Any]:
    ctx.rig.stop_worker()
    ctx.rig.start_worker()
    tag = uuid.uuid4().hex[:6]
    per = len(CATEGORIES)
    apartments = [f"cc-{tag}-{i:04d}" for i in range(math.ceil(count / per))]
    targets = [(a, b) for a in apartments for b in CATEGORIES][:count]
    bundle = make_bundle(ctx.work / "concurrency-bundle", "concurrency")
    publish_from = time.perf_counter()
    flows = [(a, b, b, "1.1.0") for a, b in targets]
    for flow in flows:
        ctx.rum.add(*flow, per_second=10)
    await bounded_gather(IN_FLIGHT, [partial(create_apartment, ctx.api, a, CATEGORIES) for a in apartments])
    await wait_visible(ctx.rig.prometheus_url, flows[:: max(1, count // 20)], within=120)
    bodies = [rollout_body(a, b, bundle, "1.1.0", steps=STEPS, bake_seconds=1, checks=[]) for a, b in targets]

    setup_seconds = time.perf_counter() - publish_from
    pids = {name: ctx.rig.pid(name) for name in (*COMPONENTS, *ctx.rig.worker_names)}
    cpu_before = CpuSnapshot.take(pids)
    started_wall = datetime.now(UTC)
    started = time.perf_counter()
    ids = await bounded_gather(IN_FLIGHT, [partial(start_rollout, ctx.api, body) for body in bodies])
    start_phase = time.perf_counter() - started
    finals, unfinished, reasons = await _results(ctx, ids, within=max(120.0, count * 1.0))
    observed = time.perf_counter() - started
    cpu = CpuSnapshot.take(pids).since(cpu_before)
    peak = ctx.rig.worker_peak_rss_bytes()
    spent = await breakdown(ctx.temporal, ids)
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
        "unfinished_reasons": reasons,
        "setup_seconds": setup_seconds,
        "start_phase_seconds": start_phase,
        "completion_seconds": completion,
        "observed_seconds": observed,
        "steps": steps_done,
        "steps_per_second": steps_done / completion,
        "manifest_writes": writes,
        "writes_per_second": writes / completion,
        "rollout_seconds": summary(durations),
        "worker_peak_rss_mib": peak / 2**20 if peak else None,
        "time_spent": spent,
        "cpu_seconds": cpu,
    }


async def run(ctx: Ctx, counts: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    if counts is None:
        counts = ctx.counts or ((10, 100, 1000) if ctx.full else (10, 100))
    results = [await _one_level(ctx, n) for n in counts]
    sandboxed = Settings().worker_sandbox  # as the worker reads it from this environment
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
        f"{ctx.rig.workers} worker process{'es' if ctx.rig.workers > 1 else ''} (--workers), "
        f"workflow sandbox {'on' if sandboxed else 'off'} (SKYLINE_WORKER_SANDBOX).",
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
    text += _reasons_table(results) + _cpu_table(results) + _spent_table(results)
    params = {
        "counts": counts,
        "steps": STEPS,
        "bake_seconds": 1,
        "full": ctx.full,
        "worker_sandbox": sandboxed,
        "workers": ctx.rig.workers,
    }
    write("concurrency", params, results, text)
    return results


def _reasons_table(results: list[dict[str, Any]]) -> str:
    rows = [
        [r["count"], why, n]
        for r in results
        for why, n in sorted(r["unfinished_reasons"].items(), key=lambda kv: -kv[1])
    ]
    if not rows:
        return "\n\nEvery rollout of every level succeeded: no unfinished reasons."
    return table("Rollouts that did not succeed, by reason", ["N", "reason", "rollouts"], rows, [])


def _cpu_table(results: list[dict[str, Any]]) -> str:
    """CPU seconds by process from the first start to the last rollout's end: whether the
    wall is the machine's CPU (busy near 100 %) and whose."""
    names = sorted({n for r in results for n in r["cpu_seconds"] if n != "machine busy %"})
    rows = [
        [r["count"], f"{r['cpu_seconds']['machine busy %']:.0f}"]
        + [f"{r['cpu_seconds'].get(n, 0):.0f}" for n in names]
        for r in results
    ]
    return table(
        "CPU seconds by process while the rollouts ran",
        ["N", "machine busy %", *names],
        rows,
        [
            "Each process with its children, from the first start request to the last rollout's end; "
            "machine busy % is every core's non-idle share over that span (2 cores: 200 CPU s per "
            "100 s of wall at 100 %).",
        ],
    )


def _spent_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        for name, s in r["time_spent"].items():
            rows.append(
                [
                    r["count"],
                    name,
                    s["n"],
                    f"{s['p50'] * 1000:.0f}",
                    f"{s['p95'] * 1000:.0f}",
                    f"{s['max'] * 1000:.0f}",
                    f"{s['total'] / max(1, s['rollouts']):.2f}",
                ]
            )
    return table(
        "Where the time goes (from up to 100 sampled workflow histories per level)",
        ["N", "span", "n", "p50 ms", "p95 ms", "max ms", "s per rollout"],
        rows,
        [
            "`<activity> wait` is scheduled -> started (a task waiting for a worker slot: the queue's "
            "backlog); `<activity> run` is started -> closed; `workflow task wait/run` likewise for "
            "workflow code; `timer` is the bakes and analysis intervals the strategy asked for. "
            "Judging runs as a local activity inside the workflow task.",
            "setup s (apartments, flows visible in Prometheus) is outside the timed part; the bundle "
            "is published by each rollout's own publish_bundle activity (content-addressed).",
        ],
    )
