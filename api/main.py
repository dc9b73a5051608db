"""Builds the FastAPI app: one Temporal client and one S3 client per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from adapters.temporal import connect
from api import errors
from api.auth import TokenStore
from api.deps import AppState
from api.routes import (
    apartments,
    beacons,
    bundles,
    fleets,
    health,
    importmap,
    loader,
    overrides,
    rollouts,
    schedules,
    storage,
    tokens,
)
from skyline.observability import configure_logging, install_http_metrics
from skyline.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or get_settings()
        configure_logging(conf)
        client = await connect(conf)  # TLS / mTLS / API key from settings, like the worker
        s3 = s3_client(conf)
        app.state.skyline = AppState(
            settings=conf,
            temporal=client,
            store=ManifestStore(s3, conf.s3_bucket),
            tokens=TokenStore(conf, s3),
        )
        yield

    app = FastAPI(
        title="Skyline",
        summary="Progressive delivery of micro-frontend bundles",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    install_http_metrics(app)
    routes = (
        health,
        importmap,
        apartments,
        bundles,
        rollouts,
        fleets,
        schedules,
        tokens,
        beacons,
        overrides,
        loader,
    )
    for module in routes:
        app.include_router(module.router)
    app.include_router(storage.router)  # POST /storage/gc (docs/bundles.md#skew-protection)
    # A route, not a mount: a mount answers `/metrics` with an empty 307 to `/metrics/`.
    for path in ("/metrics", "/metrics/"):
        app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)
    return app


async def metrics(request: Request) -> Response:
    """Prometheus exposition (OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(REGISTRY), media_type=content_type)


app = create_app()


def run() -> None:
    conf = get_settings()
    # The API reads X-Forwarded-For itself, from SKYLINE_TRUSTED_PROXIES only.
    uvicorn.run("api.main:app", host=conf.api_host, port=conf.api_port, proxy_headers=False)
