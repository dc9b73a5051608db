"""Benchmark 1: emergency rollback latency, against a plain S3-write-plus-PURGE floor.

Skyline: POST /rollouts/{id}/rollback on a rollout parked at 5 %; the API
answers once the workflow has restored the last-known-good building, purged
the edge and read the manifest back through it. Timed from sending the
request to the answer; the edge is then read to confirm it serves last-known-good.

Floor: a script with warm clients doing the same I/O with no workflow and no
API: read the head, write the restored revision and the head (conditional
writes), PURGE, read back through the edge until it serves the new revision.
Trials alternate (Skyline, floor) on the same apartment, so drift hits both.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from adapters.manifest_store import head_key, revision_key
from adapters.storage import IMMUTABLE, MANIFEST_CACHE_CONTROL, edge_client, s3_client
from bench.context import Ctx
from bench.report import ms, summary, table, write
from bench.scenario import (
    PARKED,
    bounded_gather,
    create_apartment,
    edge_manifest,
    make_bundle,
    parked,
    rollout_body,
    start_rollout,
    wait_status,
)
from skyline.manifest import ApartmentManifest, Building, ManifestChange
from skyline.manifest_ops import RestoreBuilding, apply_mutation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SEED_002_AUTOMATIC_S = 30.0
SEED_002_BLUE_GREEN_S = 10.0
TARGET_P99_S = 0.5


def floor_once(
    s3: S3Client, http: httpx.Client, bucket: str, edge: str, apartment: str, lkg: Building
) -> float:
    """One plain restore: the writes, the PURGE and the read-back Skyline does, nothing else."""
    started = time.perf_counter()
    head = s3.get_object(Bucket=bucket, Key=head_key(apartment))
    current = ApartmentManifest.from_json_bytes(head["Body"].read())
    change = ManifestChange(id=f"floor/{uuid.uuid4()}", actor="floor", reason="restore")
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    nxt = apply_mutation(current, apartment, RestoreBuilding(building="header", snapshot=lkg), change, stamp)
    body = nxt.to_json_bytes()
    meta = {"skyline-revision": nxt.version, "skyline-change-id": change.id}
    s3.put_object(
        Bucket=bucket,
        Key=head_key(apartment),
        Body=body,
        ContentType="application/json",
        CacheControl=MANIFEST_CACHE_CONTROL,
        Metadata=meta,
        IfMatch=head["ETag"],
    )
    s3.put_object(
        Bucket=bucket,
        Key=revision_key(apartment, nxt.revision),
        Body=body,
        ContentType="application/json",
        CacheControl=IMMUTABLE,
        Metadata=meta,
        IfNoneMatch="*",
    )
    url = f"{edge}/{bucket}/{head_key(apartment)}"
    for _ in range(100):
        purged = http.request("PURGE", url)
        if purged.status_code != 200:
            raise RuntimeError(f"PURGE answered {purged.status_code}")
        served = http.get(url)
        if served.headers.get("x-amz-meta-skyline-revision") == nxt.version:
            return time.perf_counter() - started
    raise RuntimeError(f"edge never served revision {nxt.version} of {apartment}")


async def run(ctx: Ctx, trials: int = 50) -> dict[str, Any]:
    bucket = ctx.settings.s3_bucket
    tag = uuid.uuid4().hex[:6]
    apartments = [f"rb-{tag}-{i:03d}" for i in range(trials)]
    bundle = make_bundle(ctx.work / "rollback-bundle", "rollback")
    await bounded_gather(10, [partial(create_apartment, ctx.api, a, ["header"]) for a in apartments])
    bodies = [rollout_body(a, "header", bundle, "1.1.0", **PARKED) for a in apartments]
    ids = await bounded_gather(10, [partial(start_rollout, ctx.api, b) for b in bodies])
    await bounded_gather(10, [partial(wait_status, ctx.temporal, r, parked, 180) for r in ids])

    s3 = s3_client(ctx.settings)
    http = edge_client()
    skyline: list[float] = []
    floor: list[float] = []
    for apartment, rollout_id in zip(apartments, ids, strict=True):
        created = s3.get_object(Bucket=bucket, Key=revision_key(apartment, 1))
        lkg = (
            ApartmentManifest.from_json_bytes(created["Body"].read())
            .apartments[apartment]
            .buildings["header"]
        )

        started = time.perf_counter()
        response = await ctx.api.post(
            f"/rollouts/{rollout_id}/rollback", json={"actor": "bench", "reason": "rollback trial"}
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json()["state"] != "rolled_back":
            raise RuntimeError(f"rollback of {rollout_id}: {response.status_code} {response.text}")
        served = await edge_manifest(ctx.edge, bucket, apartment)
        if served.apartments[apartment].buildings["header"] != lkg:
            raise RuntimeError(f"{apartment}: the edge does not serve last-known-good after the rollback")
        skyline.append(elapsed)
        floor.append(floor_once(s3, http, bucket, ctx.rig.edge_url, apartment, lkg))
    http.close()

    sk, fl = summary(skyline), summary(floor)
    rows = [
        [
            "Skyline (API → workflow → S3 → PURGE → verify)",
            ms(sk["p50"]),
            ms(sk["p95"]),
            ms(sk["p99"]),
            ms(sk["max"]),
        ],
        [
            "floor (plain S3 write + PURGE + verify)",
            ms(fl["p50"]),
            ms(fl["p95"]),
            ms(fl["p99"]),
            ms(fl["max"]),
        ],
        [
            "ratio Skyline / floor",
            f"{sk['p50'] / fl['p50']:.1f}x",
            f"{sk['p95'] / fl['p95']:.1f}x",
            f"{sk['p99'] / fl['p99']:.1f}x",
            "",
        ],
    ]
    verdict = "met" if sk["p99"] < TARGET_P99_S else "NOT met"
    text = table(
        f"Emergency rollback: request → edge serves last-known-good ({trials} trials, ms)",
        ["path", "p50", "p95", "p99", "max"],
        rows,
        [
            f"Seed 002 asks < {SEED_002_AUTOMATIC_S:g} s (automatic) and < {SEED_002_BLUE_GREEN_S:g} s "
            f"(blue-green switch); aim p99 < {TARGET_P99_S * 1000:g} ms: {verdict}.",
        ],
    )
    results = {
        "skyline_seconds": sk,
        "floor_seconds": fl,
        "ratio_p50": sk["p50"] / fl["p50"],
        "ratio_p99": sk["p99"] / fl["p99"],
        "target_p99_seconds": TARGET_P99_S,
        "target_met": sk["p99"] < TARGET_P99_S,
        "raw": {"skyline": skyline, "floor": floor},
    }
    write("rollback", {"trials": trials, "weight_at_rollback": 5}, results, text)
    return results
