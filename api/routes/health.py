"""Liveness and readiness: open to everyone, used by the launcher and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from api.deps import SettingsDep, StoreDep
from api.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, str]:
    temporal = request.app.state.skyline.temporal  # None in the collector: it needs no Temporal
    if temporal is not None:
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


async def metrics(request: Request) -> Response:
    """Prometheus exposition (OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(REGISTRY), media_type=content_type)


def add_metrics_routes(app: FastAPI) -> None:
    """GET /metrics of the API and the collector alike."""
    # A route, not a mount: a mount answers `/metrics` with an empty 307 to `/metrics/`.
    for path in ("/metrics", "/metrics/"):
        app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)
