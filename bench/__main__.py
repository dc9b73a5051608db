"""`python -m bench [--full] [--only NAME,...]`: every benchmark on one isolated stack.

Starts its own embedded stack on free ports with its own state dir (never
the one `make run` or the tests use), a synthetic browser-load scrape
target, and runs the benchmarks in order. Each prints a table and writes
bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench import (
    api_latency,
    cli_startup,
    concurrency,
    detection,
    forgery,
    ingest,
    publishing,
    rollback,
    sandbox,
)
from bench import loader as loader_bench
from bench.context import Ctx
from bench.judgement import run as judgement
from bench.loads import SyntheticRum
from bench.rig import Rig
from stack.processes import free_port

BENCHMARKS: dict[str, Callable[[Ctx], Awaitable[Any]]] = {
    "rollback": rollback.run,
    "detection": detection.run,
    "concurrency": concurrency.run,
    "publishing": publishing.run,
    "api": api_latency.run,
    "forgery": forgery.run,
    "ingest": ingest.run,
}
# Run only when named in --only: ~11 minutes of synthetic sessions (bench/forgery.py).
# ingest: ~2 minutes of wrk saturating the machine (bench/ingest.py).
ON_REQUEST = frozenset({"forgery", "ingest"})
# Offline benchmarks: no stack needed, run before the stack starts.
OFFLINE: dict[str, Callable[[], Any]] = {
    "judgement": judgement.main,
    "loader": loader_bench.main,
    "cli": cli_startup.main,
    "sandbox": sandbox.main,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also run 1,000 concurrent rollouts (heavy)")
    every = [*OFFLINE, *BENCHMARKS]
    default = [n for n in every if n not in ON_REQUEST]
    parser.add_argument(
        "--only",
        default=",".join(default),
        help=f"subset of {','.join(every)} (forgery, ingest only when named)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs) afterwards")
    parser.add_argument(
        "--counts",
        default=None,
        help="concurrency: rollout counts, comma-separated (default 10,100; --full: 10,100,1000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the task queue (default 1; the concurrency table says how many)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers takes at least 1, not {args.workers}")
    return args


async def _run(
    names: list[str], rig: Rig, rum: SyntheticRum, work: Path, full: bool, counts: tuple[int, ...] | None
) -> None:
    async with (
        httpx.AsyncClient(base_url=rig.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=rig.edge_url, timeout=30) as edge,
    ):
        ctx = Ctx(rig, rum, api, edge, await rig.temporal(), rig.client_settings(), work, full, counts)
        for name in names:
            started = time.monotonic()
            print(f"\n[bench] {name} ...", flush=True)
            await BENCHMARKS[name](ctx)
            print(f"[bench] {name} took {time.monotonic() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        counts = tuple(int(c) for c in args.counts.split(",") if c.strip()) if args.counts else None
    except ValueError:
        print(f"error: --counts takes whole numbers, not {args.counts!r}", file=sys.stderr)
        return 2
    unknown = set(names) - BENCHMARKS.keys() - OFFLINE.keys()
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for name in [n for n in names if n in OFFLINE]:
        started = time.monotonic()
        print(f"\n[bench] {name} ...", flush=True)
        OFFLINE[name]()
        print(f"[bench] {name} took {time.monotonic() - started:.0f} s", flush=True)
    names = [n for n in names if n in BENCHMARKS]
    if not names:
        return 0
    state = Path(tempfile.mkdtemp(prefix="skyline-bench-"))
    print(
        f"[bench] state dir {state}; 1,000 concurrent rollouts: {'yes' if args.full else 'no (use --full)'}"
    )
    rum = SyntheticRum(free_port())
    rig = Rig(state, scrape_targets=[rum.address], scrape_interval="1s", workers=args.workers)
    try:
        started = time.monotonic()
        rig.start()
        print(f"[bench] stack up in {time.monotonic() - started:.1f} s", flush=True)
        asyncio.run(_run(names, rig, rum, state / "bundles" / "work", args.full, counts))
    finally:
        rig.stop()
        rum.close()
        if args.keep:
            print(f"[bench] logs kept in {state / 'logs'}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
