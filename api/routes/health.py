"""Liveness and readiness: open to everyone, used by the launcher and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from api.deps import SettingsDep, StoreDep, TemporalDep
from api.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(
    request: Request, temporal: TemporalDep, store: StoreDep, settings: SettingsDep
) -> dict[str, str]:
    try:
        await temporal.service_client.check_health()
    except Exception as exc:
        raise ApiError(503, "not_ready", f"Temporal unreachable: {exc}") from exc
    try:
        await asyncio.to_thread(store.s3.head_bucket, Bucket=settings.s3_bucket)
    except Exception as exc:
        raise ApiError(503, "not_ready", f"object storage unreachable: {exc}") from exc
    tokens = request.app.state.skyline.tokens
    auth = "on" if tokens.enabled else "off (no tokens configured)"
    return {"status": "ready", "auth": auth}
