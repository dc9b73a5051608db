"""Benchmark: ingest. POST /beacons and GET /beacon-token under wrk, against a bare endpoint.

The app under test (`INGEST_APP`, default `collector.main:app` when that module
exists, else `api.main:app`) runs as its own uvicorn processes with the stack's
environment (S3, Redis: the shared evidence store), with the settings of the
stack's API (`--no-proxy-headers`, and `--no-access-log` as a collector runs by
default, SKYLINE_COLLECTOR_ACCESS_LOG; uvicorn's defaults otherwise). The peer is a
bare FastAPI app under the same uvicorn settings whose POST /beacons reads the
same body and json-parses it, and whose GET /beacon-token answers a small JSON
object: what any Python endpoint costs on this machine, so the ratio is what
Skyline's checks cost.

For 1 and 2 server processes, back to back in one run (the machine's noise is
shared by both sides of each ratio):

1. GET /beacon-token on the target, wrk keeping every token it is given (each a
   new session), then on the bare app;
2. POST /beacons with 3 beacons (header, main, footer of one apartment, each
   with its own token in turn: about one or two requests per session, like a
   page load), on the target, then on the bare app.

Two processes are two uvicorn processes on two ports, each driven by its own
wrk with half the connections: how the collector scales (replicas behind the
edge), with an even split (uvicorn --workers shares one listening socket and
the kernel's wake-ups are uneven under a saturating load). The per-client rate
limits and the network token budget are raised for the run (wrk is one
client); the session cap is the default, and refused requests are reported.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bench.context import Ctx
from bench.cpu import cpu_seconds
from bench.report import table, write
from stack.embedded import PROJECT_ROOT
from stack.processes import ManagedProcess, free_port, wait_until
from stack.system_packages import ensure_bench

SECONDS = int(os.environ.get("INGEST_SECONDS", "10"))  # per cell; shorter for a smoke run
CONNECTIONS = 16
PROCESSES = (1, 2)
SCRIPT = Path(__file__).resolve().parent / "ingest.lua"
BUILDINGS = ("header", "main", "footer")
# The limits a single wrk client would hit at once (20 requests/s per address): off for the run.
UNLIMITED = {
    "SKYLINE_BEACON_RATE_PER_SECOND": "1000000",
    "SKYLINE_BEACON_BURST": "1000000",
    "SKYLINE_BEACON_NETWORK_TOKENS_PER_MINUTE": "1000000000",
}
# Targets (issue 25): per process at least 0.6x the bare endpoint's requests/s, p99 within
# 3x of the bare one's, and two processes at least 1.6x one.
MIN_RATIO, MAX_P99_RATIO, MIN_SCALING = 0.6, 3.0, 1.6

# ------------------------------------------------------------------ the peer

bare = FastAPI()


@bare.get("/healthz")
async def _bare_health() -> dict[str, str]:
    return {"status": "ok"}


@bare.post("/beacons")
async def _bare_beacons(request: Request) -> Response:
    payload: Any = json.loads(await request.body())
    return JSONResponse({"accepted": len(payload["beacons"])}, 202)


@bare.get("/beacon-token")
async def _bare_token(apartment: str = "") -> Response:
    body = {"token": secrets.token_urlsafe(96), "apartment": apartment, "session": secrets.token_hex(8)}
    return JSONResponse(body, 200, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------ servers and wrk


def default_app() -> str:
    """The collector once it exists (issue 25), else the API."""
    if importlib.util.find_spec("collector") is not None and importlib.util.find_spec("collector.main"):
        return "collector.main:app"
    return "api.main:app"


@dataclass
class Run:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU time per request, microseconds

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Servers:
    ports: list[int]
    pids: list[int]


@contextmanager
def servers(app: str, count: int, env: dict[str, str], logs: Path) -> Iterator[Servers]:
    ports = [free_port() for _ in range(count)]
    processes = []
    try:
        for port in ports:
            argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                    "--no-proxy-headers", "--no-access-log"]  # fmt: skip
            name = f"{app.split(':')[0]}-{port}"
            process = ManagedProcess(name, argv, logs / f"{name}.log", {**os.environ, **env}, PROJECT_ROOT)
            process.start()
            processes.append(process)
            wait_until(partial(_ok, f"http://127.0.0.1:{port}/healthz"), 60, name, process, interval=0.2)
        yield Servers(ports, [p.pid for p in processes if p.pid is not None])
    finally:
        for process in processes:
            process.stop(timeout=10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wrk(target: Servers, mode: str, apartment: str, tokens: Path, seconds: int) -> Run:
    """One wrk per port, CONNECTIONS split between them, run at once; their sum (latency: the
    slowest instance's percentiles; CPU: the servers' CPU time per request, which a busy
    machine disturbs less than requests/s)."""
    ports = target.ports
    each = max(1, CONNECTIONS // len(ports))
    cpu = sum(cpu_seconds(pid) for pid in target.pids)
    procs = []
    for k, port in enumerate(ports):
        env = {
            **os.environ,
            "INGEST_MODE": mode,
            "INGEST_APARTMENT": apartment,
            "INGEST_THREADS": "1",
            "INGEST_TOKENS_OUT" if mode == "token" else "INGEST_TOKENS_IN": f"{tokens}.{k}",
        }
        argv = ["wrk", "-t1", f"-c{each}", f"-d{seconds}s", "-s", str(SCRIPT), f"http://127.0.0.1:{port}"]
        procs.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        line = next((x for x in out.splitlines() if x.startswith("INGEST ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {out}\n{err}")
        runs.append(json.loads(line.removeprefix("INGEST ")))
    cpu = sum(cpu_seconds(pid) for pid in target.pids) - cpu
    if mode == "token":
        for k in range(len(ports)):  # wrk's thread 0 wrote `<file>.<k>.0`
            Path(f"{tokens}.{k}.0").rename(f"{tokens}.{k}")
    return Run(
        requests=sum(r["requests"] for r in runs),
        seconds=max(r["duration_us"] for r in runs) / 1e6,
        non2xx=sum(r["non2xx"] for r in runs),
        socket_errors=sum(r["socket_errors"] for r in runs),
        p50_ms=max(r["p50_us"] for r in runs) / 1000,
        p99_ms=max(r["p99_us"] for r in runs) / 1000,
        cpu_us=cpu / max(1, sum(r["requests"] for r in runs)) * 1e6,
    )


# ------------------------------------------------------------------ the run


async def _apartment(api: httpx.AsyncClient, tag: str) -> str:
    apartment = f"ingest-{tag}"
    buildings: dict[str, Any] = {}
    for b in BUILDINGS:
        unit = {
            "id": f"{b}@1.0.0",
            "name": b,
            "version": "1.0.0",
            "framework": "react",
            "url": f"https://cdn.example/{b}/1.0.0/index.js",
            "checksum": "sha384-stable",
            "size": 100,
            "status": "stable",
        }
        buildings[b] = {"name": b, "category": b, "active_unit": unit["id"], "units": {unit["id"]: unit}}
    body = {"id": apartment, "apartment": {"name": apartment, "buildings": buildings}, "actor": "bench"}
    response = await api.post("/apartments", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"creating apartment {apartment}: {response.status_code} {response.text}")
    return apartment


def measure(app: str, env: dict[str, str], apartment: str, work: Path, seconds: int) -> dict[str, Any]:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for count in PROCESSES:
        tokens = work / f"tokens-{count}"
        with servers(app, count, env, logs) as target, servers("bench.ingest:bare", count, {}, logs) as peer:
            for ports in (target, peer):  # warm up: imports, the manifest cache, connections
                wrk(ports, "token", apartment, work / "warm-up", 1)
            token = wrk(target, "token", apartment, tokens, seconds)
            token_bare = wrk(peer, "token", apartment, work / f"bare-tokens-{count}", seconds)
            post = wrk(target, "beacons", apartment, tokens, seconds)
            post_bare = wrk(peer, "beacons", apartment, tokens, seconds)
        out[str(count)] = {
            "token": asdict(token),
            "token_bare": asdict(token_bare),
            "beacons": asdict(post),
            "beacons_bare": asdict(post_bare),
            "sessions": sum(len(Path(f"{tokens}.{k}").read_text().splitlines()) for k in range(count)),
        }
    return out


def _rate(run: dict[str, Any]) -> float:
    return float(run["requests"]) / float(run["seconds"])


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    one, two = results["1"], results["2"]
    v: dict[str, Any] = {}
    for endpoint in ("beacons", "token"):
        for count in ("1", "2"):
            r = results[count]
            ratio = _rate(r[endpoint]) / _rate(r[f"{endpoint}_bare"])
            p99 = r[endpoint]["p99_ms"] / r[f"{endpoint}_bare"]["p99_ms"]
            v[f"{endpoint}_{count}_ratio"] = round(ratio, 2)
            v[f"{endpoint}_{count}_p99_ratio"] = round(p99, 2)
            v[f"{endpoint}_{count}_cpu_ratio"] = round(
                r[endpoint]["cpu_us"] / r[f"{endpoint}_bare"]["cpu_us"], 2
            )
        v[f"{endpoint}_scaling"] = round(_rate(two[endpoint]) / _rate(one[endpoint]), 2)
        v[f"{endpoint}_bare_scaling"] = round(
            _rate(two[f"{endpoint}_bare"]) / _rate(one[f"{endpoint}_bare"]), 2
        )
    v["meets"] = {
        "ratio >= 0.6": v["beacons_1_ratio"] >= MIN_RATIO,
        "p99 <= 3x": v["beacons_1_p99_ratio"] <= MAX_P99_RATIO,
        "two >= 1.6x one": v["beacons_scaling"] >= MIN_SCALING,
    }
    return v


def render(app: str, results: dict[str, Any], v: dict[str, Any]) -> str:
    rows = []
    for count in ("1", "2"):
        r = results[count]
        for endpoint, label in (("beacons", "POST /beacons (3)"), ("token", "GET /beacon-token")):
            mine, peer = r[endpoint], r[f"{endpoint}_bare"]
            rows.append(
                [
                    count,
                    label,
                    f"{_rate(mine):,.0f}",
                    f"{mine['p50_ms']:.1f}",
                    f"{mine['p99_ms']:.1f}",
                    f"{mine['non2xx']:,}",
                    f"{_rate(peer):,.0f}",
                    f"{peer['p50_ms']:.1f}",
                    f"{peer['p99_ms']:.1f}",
                    f"{v[f'{endpoint}_{count}_ratio']:.2f}x",
                    f"{v[f'{endpoint}_{count}_p99_ratio']:.1f}x",
                    f"{mine['cpu_us']:.0f} / {peer['cpu_us']:.0f}",
                ]
            )
    notes = [
        f"target {app}; wrk {CONNECTIONS} connections, {SECONDS} s per cell; two processes: two uvicorn "
        "processes on two ports, one wrk each with half the connections.",
        f"two processes / one: POST {v['beacons_scaling']:.2f}x (bare {v['beacons_bare_scaling']:.2f}x), "
        f"GET {v['token_scaling']:.2f}x (bare {v['token_bare_scaling']:.2f}x).",
        f"sessions (tokens kept from the GET run) for the POST run: {results['1']['sessions']:,} and "
        f"{results['2']['sessions']:,}; refused POSTs are the non-2xx column.",
        "CPU us/req: the server processes' CPU time per request, target / bare (less disturbed "
        "by other load on the machine than req/s).",
        "targets (issue 25): "
        + ", ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in v["meets"].items())
        + " (POST, one process).",
    ]
    header = ["procs", "endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx", "bare req/s", "bare p50",
              "bare p99", "ratio", "p99 ratio", "CPU us/req (bare)"]  # fmt: skip
    return table("Ingest: beacon endpoints vs a bare FastAPI endpoint (wrk)", header, rows, notes)


async def run(ctx: Ctx) -> dict[str, Any]:
    ensure_bench()
    app = os.environ.get("INGEST_APP") or default_app()
    apartment = await _apartment(ctx.api, secrets.token_hex(3))
    env = {**ctx.rig.env(), **UNLIMITED}
    work = ctx.work / "ingest"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = await asyncio.to_thread(measure, app, env, apartment, work, SECONDS)
    v = verdicts(results)
    text = render(app, results, v)
    params = {"app": app, "seconds": SECONDS, "connections": CONNECTIONS, "processes": list(PROCESSES)}
    write(
        "ingest", params, {"runs": results, "verdicts": v, "took_seconds": time.monotonic() - started}, text
    )
    return results
