"""`python -m bench --only forgery`: can forged sessions change the judge's decision?

On the real stack (API, Redis, Prometheus; Temporal is not what is attacked): per case an
apartment whose header runs 1.0.0 and a canary 1.1.0 at weight w (5, 25, 50, 100), honest
synthetic sessions at a steady rate from 400 client networks (loopback addresses of their
own /24, 127.100-101.x.1), a good canary (1 % of loads fail, like the baseline) or a bad
one (30 %). Attackers with 1, 10 or 100 client networks (127.60+.j.0/24, eight addresses
each; loopback only) fetch tokens and report like pages: for a good canary they report its
loads failing, for a bad one succeeding (and the baseline's the other way), split like the
traffic so the canary's share stays plausible. Each attacker sends a multiple of the step's
real sessions. The look figures come from the real gather activity (Prometheus + Redis);
the judge decides the step with and without the evidence of sessions and networks.

Printed per case: the honest decision, the decision under each attack, and the cheapest
successful attack (attacker sessions accepted as a multiple of the step's real sessions).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from activities.metrics import GatherFiguresInput, MetricsActivities
from adapters.evidence import EvidenceReader
from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from api.beacon_tokens import BucketKeys
from bench.context import Ctx
from bench.report import write
from skyline.figures import Figures, Look, StepDocument, StepInfo
from skyline.judge import judge_step
from skyline.manifest import ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import SetCanary
from skyline.split import bucket_of, in_percentage

WEIGHTS = (5, 25, 50, 100)
CANARIES = {"good": 0.01, "bad": 0.30}
BASE_ERROR = 0.01
NETWORKS = (1, 10, 100)
MULTIPLES = (0.3, 1.0, 3.0)
RATE = 4.0  # honest sessions a second, per apartment
STEP = 30.0  # seconds of the step
LOOKS = 5
HONEST_NETWORKS = 400
ANALYSIS = {"min_requests": 10, "first_unit_needs_confirmation": False}


@dataclass
class Case:
    weight: float
    canary: str
    networks: int  # 0: no attacker
    multiple: float
    apartment: str = ""
    real: int = 0
    forged: int = 0
    looks: list[Look] = field(default_factory=list)
    reference: Figures | None = None
    # A bucket key the API's split assigns the canary (honest canary browsers hold one; so
    # does every attacker: it can ask for keys until one lands in the canary's bucket).
    canary_key: str | None = None


def honest_address(i: int) -> str:
    return f"127.{100 + i // 256}.{i % 256}.1"


def attacker_address(network: int, k: int) -> str:
    return f"127.{60 + network // 256}.{network % 256}.{k % 8 + 1}"


class Pool:
    """One HTTP client per source address, made on first use."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.clients: dict[str, httpx.AsyncClient] = {}

    def get(self, address: str) -> httpx.AsyncClient:
        if address not in self.clients:
            self.clients[address] = httpx.AsyncClient(
                base_url=self.base_url,
                # uvicorn closes idle connections after 5 s: never reuse one that old.
                transport=httpx.AsyncHTTPTransport(local_address=address, retries=2),
                limits=httpx.Limits(keepalive_expiry=2),
                timeout=60,
            )
        return self.clients[address]

    async def close(self) -> None:
        for client in list(self.clients.values()):
            await client.aclose()


async def session(
    client: httpx.AsyncClient, apartment: str, version: str, failed: bool, bucket: str | None = None
) -> bool:
    """One page load: a token, then one beacon (retried when the address is rate-limited);
    a page whose requests fail (the API overloaded) is not counted."""
    try:
        return await _session(client, apartment, version, failed, bucket)
    except httpx.TransportError:
        return False


async def _session(
    client: httpx.AsyncClient, apartment: str, version: str, failed: bool, bucket: str | None
) -> bool:
    params = {"apartment": apartment, **({"bucket": bucket} if bucket else {})}
    for _ in range(3):
        token = await client.get("/beacon-token", params=params)
        if token.status_code == 200:
            break
        if token.status_code != 429 or token.json()["error"]["code"] == "network_budget":
            return False
        await asyncio.sleep(1)
    else:
        return False
    beacon: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit": "header",
        "version": version,
    }
    beacon.update({"outcome": "load_error"} if failed else {"outcome": "loaded", "load_seconds": 0.2})
    body = {"token": token.json()["token"], "beacons": [beacon]}
    for _ in range(3):
        answer = await client.post("/beacons", json=body)
        if answer.status_code == 202:
            return True
        if answer.status_code != 429:
            return False
        await asyncio.sleep(1)
    return False


async def honest(case: Case, pool: Pool, seconds: float, weight: float, error: float, seed: int) -> None:
    rng = random.Random(seed)
    tasks: list[asyncio.Task[bool]] = []
    deadline = time.monotonic() + seconds
    i = seed
    while time.monotonic() < deadline:
        canary = rng.random() * 100 < weight
        failed = rng.random() < (error if canary else BASE_ERROR)
        client = pool.get(honest_address(i % HONEST_NETWORKS))
        tasks.append(
            asyncio.create_task(
                session(
                    client,
                    case.apartment,
                    "1.1.0" if canary else "1.0.0",
                    failed,
                    case.canary_key if canary else None,
                )
            )
        )
        i += 7
        await asyncio.sleep(1 / RATE)
    case.real += sum(await asyncio.gather(*tasks))


async def attack(case: Case, pool: Pool, seconds: float) -> None:
    """`multiple` x the step's expected real sessions, spread over `seconds` and the networks."""
    count = round(case.multiple * RATE * STEP)
    rng = random.Random(case.networks * 1000 + count)
    want_rollback = case.canary == "good"
    tasks: list[asyncio.Task[bool]] = []
    for k in range(count):
        canary = rng.random() * 100 < case.weight
        # Rollback: the canary fails, the baseline loads; passing: the other way round.
        failed = canary == want_rollback
        client = pool.get(attacker_address(k % case.networks, k // case.networks))
        version = "1.1.0" if canary else "1.0.0"
        key = case.canary_key if canary else None
        tasks.append(asyncio.create_task(session(client, case.apartment, version, failed, key)))
        await asyncio.sleep(seconds / max(1, count))
    case.forged += sum(await asyncio.gather(*tasks))


async def _apartment(api: httpx.AsyncClient) -> str:
    apartment = f"forge-{uuid.uuid4().hex[:8]}"
    unit = {
        "id": "header@1.0.0", "name": "header", "version": "1.0.0", "framework": "react",
        "url": "https://cdn.example/header/1.0.0/index.js", "checksum": "sha384-stable", "size": 100,
        "status": "stable",
    }  # fmt: skip
    body = {
        "id": apartment,
        "apartment": {
            "name": "Forgery",
            "buildings": {"header": {"name": "Header", "category": "header", "active_unit": unit["id"],
                                     "units": {unit["id"]: unit}}},
        },
        "actor": "bench",
    }  # fmt: skip
    response = await api.post("/apartments", json=body)
    response.raise_for_status()
    return apartment


def _set_canary(store: ManifestStore, apartment: str, weight: float) -> None:
    unit = Unit(
        id="header@1.1.0", name="header", version="1.1.0", url="https://cdn.example/header/1.1.0/index.js",
        checksum="sha384-x", size=1, status="canary",
    )  # fmt: skip
    change = ManifestChange(id=f"bench/{uuid.uuid4()}", actor="bench", reason="forgery benchmark")
    store.apply(
        apartment, SetCanary(building="header", unit=unit, rollout=RolloutConfig(percentage=weight)), change
    )


def _gather(metrics: MetricsActivities, case: Case, started: float, at: float, last: bool) -> Look:
    inp = GatherFiguresInput(
        apartment=case.apartment, building="header", unit="header", canary_version="1.1.0",
        baseline_version="1.0.0", since_seconds=max(1.0, time.time() - started), at_seconds=at,
        window_seconds=10, settle=last,
    )  # fmt: skip
    return metrics.gather_figures(inp).look


def _canary_key(ctx: Ctx, apartment: str, weight: float) -> str | None:
    """A bucket key, signed with the stack's beacon key, in the canary's bucket at `weight`."""
    key = ctx.settings.beacon_key
    if key is None:
        return None
    ids = (f"b-{i}" for i in range(100_000))
    found = next(i for i in ids if in_percentage(bucket_of(i, apartment, "header"), weight))
    return BucketKeys(key.get_secret_value().encode()).issue(found)


async def group(ctx: Ctx, pool: Pool, weight: float, canary: str) -> list[Case]:
    """Every attack on one (weight, canary) at once, each on its own apartment."""
    cases = [Case(weight, canary, 0, 0.0)] + [Case(weight, canary, n, m) for n in NETWORKS for m in MULTIPLES]
    for case in cases:
        case.apartment = await _apartment(ctx.api)
    store = ManifestStore(s3_client(ctx.settings), ctx.settings.s3_bucket)
    reader = EvidenceReader(ctx.settings.redis_url) if ctx.settings.redis_url else None
    metrics = MetricsActivities(ctx.settings.prometheus_url, 10, settle_seconds=5, evidence=reader)
    if weight >= 100:
        # A reference for the 100 % step: the baseline alone, before the canary.
        before = time.time()
        await asyncio.gather(*(honest(c, pool, 12, 0, 0, 1 + i) for i, c in enumerate(cases)))
        await asyncio.sleep(3)
        for c in cases:
            c.reference = _gather(metrics, c, before, 12, True).baseline
            c.real = 0
    for c in cases:
        await asyncio.to_thread(_set_canary, store, c.apartment, weight)
        c.canary_key = _canary_key(ctx, c.apartment, weight)
    started = time.time()
    error = CANARIES[canary]

    async def looks() -> None:
        for i in range(1, LOOKS + 1):
            await asyncio.sleep(max(0.0, started + STEP * i / LOOKS - time.time()))
            for c in cases:
                c.looks.append(
                    await asyncio.to_thread(_gather, metrics, c, started, STEP * i / LOOKS, i == LOOKS)
                )

    await asyncio.gather(
        looks(),
        *(honest(c, pool, STEP, weight, error, 100 + i) for i, c in enumerate(cases)),
        *(attack(c, pool, STEP * 0.8) for c in cases if c.networks),
    )
    return cases


def decide(case: Case, evidence: bool) -> str:
    looks = case.looks if evidence else [lk.model_copy(update={"evidence": None}) for lk in case.looks]
    doc = StepDocument(
        analysis=ANALYSIS,
        step=StepInfo(weight=case.weight, bake_seconds=STEP, last=case.weight >= 100),
        looks=looks,
        reference=case.reference,
    )
    return judge_step(doc).decision


async def run(ctx: Ctx) -> None:
    pool = Pool(ctx.rig.api_url)
    rows: list[dict[str, Any]] = []
    try:
        for weight in WEIGHTS:
            for canary in CANARIES:
                cases = await group(ctx, pool, weight, canary)
                for c in cases:
                    row = {"weight": c.weight, "canary": c.canary, "networks": c.networks}
                    row.update(multiple=c.multiple, real_sessions=c.real, attacker_sessions=c.forged)
                    row.update(decision=decide(c, True), figures_only=decide(c, False))
                    rows.append(row)
                print(f"  w={weight:g}% {canary}: done", flush=True)
    finally:
        await pool.close()
    text = report(rows)
    print(text, flush=True)
    write("forgery", {"weights": WEIGHTS, "canaries": CANARIES, "networks": NETWORKS, "multiples": MULTIPLES,
                      "rate": RATE, "step_seconds": STEP, "looks": LOOKS, "honest_networks": HONEST_NETWORKS,
                      "analysis": ANALYSIS}, rows, text)  # fmt: skip


def report(rows: list[dict[str, Any]]) -> str:
    """Per (weight, canary, attacker networks): decisions, and the cheapest attack that worked."""
    lines = [
        "weight canary  nets  honest    decisions under attack (x real sessions)            cheapest success"
    ]
    goal = {"good": "rollback", "bad": "promote"}
    changed_one = changed_ten_below = 0
    for weight in WEIGHTS:
        for canary in CANARIES:
            base = next(
                r for r in rows if r["weight"] == weight and r["canary"] == canary and not r["networks"]
            )
            for nets in NETWORKS:
                attacked = [
                    r
                    for r in rows
                    if r["weight"] == weight and r["canary"] == canary and r["networks"] == nets
                ]
                shown = []
                cheapest = None
                for r in attacked:
                    ratio = r["attacker_sessions"] / max(1, r["real_sessions"])
                    shown.append(f"{ratio:4.2f}x:{r['decision']} ({r['figures_only']})")
                    if r["decision"] == goal[canary] != base["decision"]:
                        cheapest = ratio if cheapest is None else min(cheapest, ratio)
                        changed_one += nets == 1
                        changed_ten_below += nets == 10 and ratio < 1
                success = f"{cheapest:.2f}x" if cheapest is not None else "none"
                head = f"{weight:5g}% {canary:6} {nets:4d}  {base['decision']:8}"
                lines.append(f"{head}  {'; '.join(shown):52}  {success}")
    lines.append("(decision with the sessions/networks evidence; in brackets, the same figures judged alone)")
    one = "met" if not changed_one else f"MISSED in {changed_one} case(s)"
    lines.append(f"goal 1 (1 network changes nothing): {one}")
    lines.append(
        "goal 2 (10 networks change nothing below 1x the real sessions): "
        + ("met" if not changed_ten_below else f"MISSED in {changed_ten_below} case(s)")
    )
    return "\n".join(lines)
