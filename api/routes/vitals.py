"""`GET /rollouts/{id}/vitals`: the web vitals of each unit version in the rollout's building.

The loader's vitals beacons become Prometheus histograms (api/beacons.py); this
reads them back for people who do not keep a dashboard: per unit version, how
many pages reported each vital over the window and its p75 (web.dev's measure),
with the canary and its baseline marked. The judge reads the same series when a
rollout's strategy sets `vitals` (docs/judgement.md).
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import Caller
from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError
from api.routes.rollouts import get_rollout
from skyline.checks import VITALS

router = APIRouter(prefix="/rollouts", tags=["rollouts"])

QUANTILE = 0.75
Role = Literal["canary", "baseline", "other"]


class VitalFigure(BaseModel):
    pages: float = Field(description="pages that reported this vital in the window (may be fractional)")
    p75: float | None = Field(description="75th percentile: seconds for lcp and inp, a score for cls")


class VersionVitals(BaseModel):
    unit: str
    version: str
    role: Role
    vitals: dict[str, VitalFigure] = Field(description="lcp, inp, cls; absent when none was reported")


class RolloutVitals(BaseModel):
    rollout_id: str
    apartment: str
    building: str
    window_seconds: float
    versions: list[VersionVitals]


def _histogram(name: str) -> str:
    return VITALS[name].removesuffix("_bucket")


def vital_queries(apartment: str, building: str, window_seconds: float) -> dict[tuple[str, str], str]:
    """(vital, pages|p75) -> PromQL, both by (unit, version)."""
    sel = f'apartment="{apartment}",building="{building}"'
    rng = f"[{int(window_seconds)}s]"
    queries: dict[tuple[str, str], str] = {}
    for name in VITALS:
        base = _histogram(name)
        queries[name, "pages"] = f"sum by (unit, version) (increase({base}_count{{{sel}}}{rng}))"
        buckets = f"sum by (unit, version, le) (increase({base}_bucket{{{sel}}}{rng}))"
        queries[name, "p75"] = f"histogram_quantile({QUANTILE}, {buckets})"
    return queries


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def role_of(unit: str, version: str, canary: tuple[str, str], baseline_unit: str | None) -> Role:
    if (unit, version) == canary:
        return "canary"
    return "baseline" if f"{unit}@{version}" == baseline_unit else "other"


def assemble(
    answers: dict[tuple[str, str], list[dict[str, Any]]],
    canary: tuple[str, str],
    baseline_unit: str | None,
) -> list[VersionVitals]:
    """Prometheus vectors -> one entry per unit version that reported any vital; canary first."""
    found: dict[tuple[str, str], dict[str, dict[str, float | None]]] = {}
    for (name, kind), vector in answers.items():
        for sample in vector:
            labels = sample.get("metric", {})
            key = (str(labels.get("unit", "")), str(labels.get("version", "")))
            value = _number(sample.get("value", [None, None])[1])
            found.setdefault(key, {}).setdefault(name, {})[kind] = value
    rows: list[VersionVitals] = []
    for (unit, version), by_name in found.items():
        vitals = {
            name: VitalFigure(pages=figures.get("pages") or 0.0, p75=figures.get("p75"))
            for name, figures in sorted(by_name.items())
            if figures.get("pages")
        }
        if vitals:
            role = role_of(unit, version, canary, baseline_unit)
            rows.append(VersionVitals(unit=unit, version=version, role=role, vitals=vitals))
    order = {"canary": 0, "baseline": 1, "other": 2}
    return sorted(rows, key=lambda r: (order[r.role], r.unit, r.version))


async def _query(client: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(str(body.get("error") or body))
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@router.get("/{rollout_id}/vitals", response_model=RolloutVitals)
async def vitals(
    rollout_id: str,
    temporal: TemporalDep,
    store: StoreDep,
    settings: SettingsDep,
    who: Caller,
    window: Annotated[
        float, Query(ge=10, le=7 * 86400, description="seconds of beacons to read, ending now")
    ] = 600,
) -> RolloutVitals:
    """p75 LCP, INP and CLS and the pages behind them, per unit version of the rollout's building."""
    status = await get_rollout(rollout_id, temporal, store, who)
    queries = vital_queries(status.apartment, status.building, window)
    try:
        async with httpx.AsyncClient(
            base_url=settings.prometheus_url, timeout=settings.prometheus_timeout_seconds
        ) as client:
            vectors = await asyncio.gather(*(_query(client, q) for q in queries.values()))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ApiError(
            503, "metrics_unavailable", f"Prometheus at {settings.prometheus_url} did not answer: {exc}"
        ) from exc
    answers = dict(zip(queries, vectors, strict=True))
    return RolloutVitals(
        rollout_id=status.rollout_id,
        apartment=status.apartment,
        building=status.building,
        window_seconds=window,
        versions=assemble(answers, (status.unit_id, status.version), status.baseline_unit),
    )
