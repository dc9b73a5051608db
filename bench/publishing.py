"""Benchmark 4: publishing a 2,000-file (~50 MB) bundle, Skyline against `aws s3 sync`.

Both run as a command against the same local S3 server, through one
byte-counting TCP proxy (request bytes on the wire, headers included), in
alternating order over two cold rounds into fresh destinations, then a
re-publish of the unchanged bundle to the first destination, then an
incremental release: the next version, in which 5 % of the files changed (a
bundler renames each changed chunk and its map, and rewrites the entry), into
the units of the cold rounds for Skyline and to a new version prefix for
`aws s3 sync`, alternating, one round per cold unit. Skyline uploads
with `upload_concurrency` threads (default 8), awscli with its default
`max_concurrent_requests` (10). Wall time includes each tool's interpreter
start-up; Skyline's in-process time is shown too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bundles import generate_bundle, next_release
from bench.context import Ctx
from bench.report import table, write
from bench.tcpproxy import TcpProxy
from stack.embedded import PROJECT_ROOT
from stack.processes import free_port

MB = 10**6


def _aws() -> str:
    beside = Path(sys.executable).parent / "aws"
    return str(beside) if beside.exists() else "aws"


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout


def _count_objects(ctx: Ctx, prefix: str) -> int:
    from adapters.storage import s3_client

    s3 = s3_client(ctx.settings)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ctx.settings.s3_bucket, Prefix=prefix):
        total += len(page.get("Contents", []))
    return total


async def run(ctx: Ctx, rounds: int = 2) -> dict[str, Any]:
    stats = generate_bundle(ctx.work / "big-bundle")
    bucket = ctx.settings.s3_bucket
    proxy = TcpProxy(free_port(), ctx.rig.ports.s3).start()
    endpoint = f"http://127.0.0.1:{proxy.listen_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYLINE_"))}
    skyline_env = {**base_env, **ctx.rig.env(), "SKYLINE_S3_ENDPOINT_URL": endpoint}
    aws_env = {
        **base_env,
        "AWS_ACCESS_KEY_ID": ctx.settings.aws_access_key_id.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": ctx.settings.aws_secret_access_key.get_secret_value(),
        "AWS_DEFAULT_REGION": ctx.settings.s3_region,
        # never read a developer's ~/.aws
        "AWS_CONFIG_FILE": str(ctx.work / "aws-config-none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(ctx.work / "aws-credentials-none"),
    }

    def skyline(unit: str, root: Path = stats.root) -> dict[str, Any]:
        proxy.reset_counters()
        argv = [sys.executable, "-m", "bench.publish_cli", str(root), unit]
        wall, out = _timed(argv, skyline_env)
        result: dict[str, Any] = json.loads(out)
        return {
            "seconds": wall,
            "in_process_seconds": result["in_process_seconds"],
            "sent": proxy.bytes_up,
            "received": proxy.bytes_down,
            "uploaded": result["uploaded"],
            "skipped": result["skipped"],
            "uploaded_bytes": result["uploaded_bytes"],
            "layout": result["layout"],
            "prefix": result["prefix"],
        }

    def aws(dest: str, root: Path = stats.root) -> dict[str, Any]:
        proxy.reset_counters()
        argv = [
            _aws(),
            "s3",
            "sync",
            str(root),
            f"s3://{bucket}/{dest}",
            "--endpoint-url",
            endpoint,
            "--only-show-errors",
            "--no-progress",
        ]
        wall, _ = _timed(argv, aws_env)
        return {"seconds": wall, "sent": proxy.bytes_up, "received": proxy.bytes_down}

    try:
        cold: dict[str, list[dict[str, Any]]] = {"skyline": [], "aws": []}
        for i in range(rounds):
            order = ("skyline", "aws") if i % 2 == 0 else ("aws", "skyline")
            for tool in order:
                if tool == "skyline":
                    cold["skyline"].append(skyline(f"bench-publish-{i}"))
                else:
                    cold["aws"].append(aws(f"peer/bench-publish-{i}/"))
        warm = {"skyline": skyline("bench-publish-0"), "aws": aws("peer/bench-publish-0/")}
        release = next_release(stats.root, ctx.work / "big-bundle-next")
        incremental: dict[str, list[dict[str, Any]]] = {"skyline": [], "aws": []}
        for i in range(rounds):
            order = ("aws", "skyline") if i % 2 == 0 else ("skyline", "aws")
            for tool in order:
                if tool == "skyline":
                    incremental["skyline"].append(skyline(f"bench-publish-{i}", release.root))
                else:
                    run = aws(f"peer/bench-publish-{i}-next/", release.root)
                    run["uploaded"] = _count_objects(ctx, f"peer/bench-publish-{i}-next/")
                    incremental["aws"].append(run)
    finally:
        proxy.close()
    uploaded_by_aws = _count_objects(ctx, "peer/bench-publish-0/")
    if uploaded_by_aws != stats.files or cold["skyline"][0]["uploaded"] != stats.files:
        raise RuntimeError(
            f"incomplete upload: aws {uploaded_by_aws}, skyline {cold['skyline'][0]['uploaded']}"
        )

    def best(tool: str) -> dict[str, Any]:
        return min(cold[tool], key=lambda r: r["seconds"])

    sk, aw = best("skyline"), best("aws")
    rows = [
        [
            "Skyline publisher",
            f"{sk['seconds']:.2f} ({sk['in_process_seconds']:.2f} in process)",
            f"{stats.bytes / MB / sk['seconds']:.1f}",
            f"{sk['sent'] / MB:.1f}",
            f"{warm['skyline']['seconds']:.2f}",
            f"{warm['skyline']['sent'] / 1000:.1f}",
            warm["skyline"]["uploaded"],
        ],
        [
            "aws s3 sync",
            f"{aw['seconds']:.2f}",
            f"{stats.bytes / MB / aw['seconds']:.1f}",
            f"{aw['sent'] / MB:.1f}",
            f"{warm['aws']['seconds']:.2f}",
            f"{warm['aws']['sent'] / 1000:.1f}",
            "0 (sync skips)",
        ],
        [
            "ratio Skyline / aws",
            f"{sk['seconds'] / aw['seconds']:.2f}x",
            "",
            f"{sk['sent'] / aw['sent']:.2f}x",
            f"{warm['skyline']['seconds'] / warm['aws']['seconds']:.2f}x",
            f"{warm['skyline']['sent'] / max(1, warm['aws']['sent']):.2f}x",
            "",
        ],
    ]
    kinds = ", ".join(f"{k}: {n} files {b / MB:.1f} MB" for k, (n, b) in sorted(stats.by_kind.items()))
    text = table(
        f"Bundle publishing: {stats.files} files, {stats.bytes / MB:.1f} MB to the local S3 "
        f"(best of {rounds} cold)",
        [
            "tool",
            "cold publish s",
            "MB/s",
            "MB sent",
            "re-publish s",
            "re-publish kB sent",
            "re-publish uploads",
        ],
        rows,
        [
            f"Bundle: {kinds}. Sent = request bytes through the proxy, headers included. Wall times include "
            "interpreter start-up of each command."
        ],
    )
    si = min(incremental["skyline"], key=lambda r: r["seconds"])
    ai = min(incremental["aws"], key=lambda r: r["seconds"])
    if si["layout"] != "shared" or si["uploaded"] > release.changed:
        raise RuntimeError(f"incremental release re-sent unchanged files: {si}")
    text += "\n" + table(
        f"Incremental release: {release.changed} of {release.files} files changed "
        f"({release.changed_bytes / MB:.1f} MB), best of {rounds}",
        ["tool", "files sent", "MB sent", "seconds"],
        [
            ["Skyline publisher (shared unit directory)", si["uploaded"], f"{si['sent'] / MB:.2f}",
             f"{si['seconds']:.2f} ({si['in_process_seconds']:.2f} in process)"],
            ["aws s3 sync to a new version prefix", ai["uploaded"], f"{ai['sent'] / MB:.2f}",
             f"{ai['seconds']:.2f}"],
            ["aws / Skyline", f"{ai['uploaded'] / max(1, si['uploaded']):.1f}x fewer",
             f"{ai['sent'] / max(1, si['sent']):.1f}x fewer", f"{ai['seconds'] / si['seconds']:.2f}x faster"],
        ],
        [
            "The next version renames each changed chunk and its map (new content hash) and rewrites the "
            "entry; every other file is byte-identical. Skyline sends only what changed (docs/bundles.md); "
            "browsers keep the unchanged files' URLs."
        ],
    )  # fmt: skip
    params = {
        "files": stats.files,
        "bytes": stats.bytes,
        "by_kind": stats.by_kind,
        "rounds": rounds,
        "incremental_changed_files": release.changed,
        "incremental_changed_bytes": release.changed_bytes,
    }
    results = {
        "cold": cold,
        "warm": warm,
        "incremental": incremental,
        "ratio_cold_seconds": sk["seconds"] / aw["seconds"],
        "incremental_bytes_ratio_aws_over_skyline": ai["sent"] / max(1, si["sent"]),
        "incremental_speedup_over_aws": ai["seconds"] / si["seconds"],
    }
    write("publishing", params, results, text)
    return results
