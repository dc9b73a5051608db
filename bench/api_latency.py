"""Benchmark 5: POST /rollouts and GET /rollouts/{id} latency at 1 and 20 concurrent clients.

Each POST starts a real rollout on a fresh building (validation reads the
manifest from S3, then Temporal starts the workflow; the worker picks it up
at once). GETs read rollouts parked at their first weight (Temporal describe
plus the `status` query, answered by the worker).

Peer, measured in the same run: the same Temporal calls from a Python client
with no HTTP, FastAPI or validation in between (start_workflow on a queue no
worker polls, so the peer's workflows add no load, then terminated; describe
plus query for GET). The ratio is what the API layer costs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx

from bench.context import Ctx
from bench.report import ms, summary, table, write
from bench.scenario import (
    CATEGORIES,
    PARKED,
    bounded_gather,
    create_apartment,
    make_bundle,
    parked,
    rollout_body,
    wait_status,
)
from skyline.rollout import RolloutInput, RolloutSpec
from workflows.rollout import RolloutWorkflow

CONCURRENCY = (1, 20)
POSTS_PER_CLIENT = {1: 30, 20: 5}
GETS_PER_CLIENT = {1: 100, 20: 25}
NO_WORKER_QUEUE = "bench-no-worker"


Op = Callable[[int, int], Awaitable[None]]


async def _clients(concurrency: int, per_client: int, api: Op, peer: Op) -> tuple[list[float], list[float]]:
    """`concurrency` clients, each timing `per_client` calls of the API and of the peer,
    interleaved (order alternating) so both see the same background load."""
    timings: tuple[list[float], list[float]] = ([], [])

    async def client(c: int) -> None:
        for k in range(per_client):
            order = ((0, api), (1, peer)) if k % 2 == 0 else ((1, peer), (0, api))
            for which, op in order:
                started = time.perf_counter()
                await op(c, k)
                timings[which].append(time.perf_counter() - started)

    await asyncio.gather(*(client(c) for c in range(concurrency)))
    return timings


async def run(ctx: Ctx) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    bundle = make_bundle(ctx.work / "api-bundle", "api")
    posts = sum(c * POSTS_PER_CLIENT[c] for c in CONCURRENCY)
    apartments = [f"api-{tag}-{i:03d}" for i in range(-(-posts // len(CATEGORIES)))]
    targets = [(a, b) for a in apartments for b in CATEGORIES][:posts]
    await bounded_gather(10, [partial(create_apartment, ctx.api, a, CATEGORIES) for a in apartments])

    results: dict[str, Any] = {}
    started_ids: list[str] = []
    peer_ids: list[str] = []
    offset = 0
    for concurrency in CONCURRENCY:
        per = POSTS_PER_CLIENT[concurrency]
        batch = targets[offset : offset + concurrency * per]
        offset += len(batch)
        # one connection per client, as separate release managers would have
        clients = [httpx.AsyncClient(base_url=ctx.rig.api_url, timeout=60) for _ in range(concurrency)]

        async def post(
            c: int, k: int, batch: list[tuple[str, str]] = batch, clients: list[httpx.AsyncClient] = clients
        ) -> None:
            a, b = batch[c * POSTS_PER_CLIENT[len(clients)] + k]
            body = rollout_body(a, b, bundle, "1.1.0", **PARKED)
            response = await clients[c].post("/rollouts", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"POST /rollouts: {response.status_code} {response.text}")
            started_ids.append(response.json()["id"])

        async def peer_start(
            c: int, k: int, batch: list[tuple[str, str]] = batch, conc: int = concurrency
        ) -> None:
            a, b = batch[c * POSTS_PER_CLIENT[conc] + k]
            spec = RolloutSpec.model_validate(rollout_body(a, b, bundle, "1.1.0", **PARKED))
            peer_id = f"bench-peer.{a}.{b}"
            await ctx.temporal.start_workflow(
                RolloutWorkflow.run,
                RolloutInput(rollout_id=peer_id, spec=spec),
                id=peer_id,
                task_queue=NO_WORKER_QUEUE,
            )
            peer_ids.append(peer_id)

        api_times, peer_times = await _clients(concurrency, per, post, peer_start)
        results[f"post_c{concurrency}"] = summary(api_times)
        results[f"post_peer_c{concurrency}"] = summary(peer_times)
        # let the rollouts just started settle before the next measurement
        await bounded_gather(20, [partial(wait_status, ctx.temporal, r, parked, 180) for r in started_ids])
        for client in clients:
            await client.aclose()

    for peer_id in peer_ids:
        await ctx.temporal.get_workflow_handle(peer_id).terminate("benchmark peer")

    for concurrency in CONCURRENCY:
        clients = [httpx.AsyncClient(base_url=ctx.rig.api_url, timeout=60) for _ in range(concurrency)]

        def pick(c: int, k: int) -> str:
            return started_ids[(c * 7919 + k) % len(started_ids)]

        async def get(c: int, k: int, clients: list[httpx.AsyncClient] = clients) -> None:
            response = await clients[c].get(f"/rollouts/{pick(c, k)}")
            if response.status_code != 200:
                raise RuntimeError(f"GET /rollouts: {response.status_code} {response.text}")

        async def peer_get(c: int, k: int) -> None:
            handle = ctx.temporal.get_workflow_handle_for(RolloutWorkflow.run, pick(c, k))
            await handle.describe()
            await handle.query(RolloutWorkflow.status)

        api_times, peer_times = await _clients(concurrency, GETS_PER_CLIENT[concurrency], get, peer_get)
        results[f"get_c{concurrency}"] = summary(api_times)
        results[f"get_peer_c{concurrency}"] = summary(peer_times)
        for client in clients:
            await client.aclose()

    rows = []
    for op in ("post", "get"):
        for concurrency in CONCURRENCY:
            api, peer = results[f"{op}_c{concurrency}"], results[f"{op}_peer_c{concurrency}"]
            label = "POST /rollouts" if op == "post" else "GET /rollouts/{id}"
            rows.append(
                [
                    label,
                    concurrency,
                    api["n"],
                    ms(api["p50"]),
                    ms(api["p95"]),
                    ms(api["p99"]),
                    ms(peer["p50"]),
                    ms(peer["p99"]),
                    f"{api['p50'] / peer['p50']:.1f}x",
                ]
            )
    text = table(
        "API latency (ms)",
        ["request", "clients", "n", "p50", "p95", "p99", "peer p50", "peer p99", "API / peer p50"],
        rows,
        [
            "Peer: the same Temporal calls from a Python client (start_workflow; describe + status query), "
            "no HTTP, FastAPI or validation. Each POST starts a real rollout."
        ],
    )
    params = {
        "concurrency": CONCURRENCY,
        "posts_per_client": POSTS_PER_CLIENT,
        "gets_per_client": GETS_PER_CLIENT,
    }
    write("api", params, results, text)
    return results
