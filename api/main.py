"""Builds the FastAPI app: one Temporal client and one S3 client per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI

from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from adapters.temporal import connect
from api import errors
from api.auth import TokenStore, caller, exposure_refusal
from api.collector_redirect import CollectorRedirect
from api.deps import AppState
from api.gate import Gate
from api.routes import (
    apartments,
    beacons,
    buildings,
    bundles,
    fleets,
    health,
    importmap,
    loader,
    overrides,
    pipelines,
    rollouts,
    schedules,
    shell,
    storage,
    tokens,
    vitals,
)
from api.routes.health import add_metrics_routes
from skyline.observability import configure_logging, install_http_metrics
from skyline.settings import Settings, get_settings

log = logging.getLogger("skyline.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or get_settings()
        configure_logging(conf)
        refusal = exposure_refusal(conf)
        if refusal is not None:  # uvicorn api.main:app with SKYLINE_API_HOST set: fail closed too
            log.error(refusal)
            raise RuntimeError(refusal)
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
        # Every route checks its caller against api/access.py (the gate did already; this
        # holds for the template the router matched).
        dependencies=[Depends(caller)],
    )
    errors.install(app)
    # Inside the gate (which refuses control characters before a Location is built from the
    # path): browser paths answered with a 308 to the collector when one is configured.
    app.add_middleware(CollectorRedirect)
    # Outside the body limit, inside the metrics: every request is authorized (api/access.py)
    # before anything reads its body.
    app.add_middleware(Gate)
    install_http_metrics(app)
    routes = (
        health,
        importmap,
        apartments,
        buildings,
        bundles,
        rollouts,
        vitals,
        fleets,
        pipelines,
        schedules,
        tokens,
        beacons,
        overrides,
        loader,
        shell,
    )
    for module in routes:
        app.include_router(module.router)
    app.include_router(storage.router)  # POST /storage/gc (docs/bundles.md#skew-protection)
    add_metrics_routes(app)
    return app


app = create_app()


def run() -> None:
    conf = get_settings()
    refusal = exposure_refusal(conf)
    if refusal is not None:
        raise SystemExit(refusal)
    # The API reads X-Forwarded-For itself, from SKYLINE_TRUSTED_PROXIES only.
    uvicorn.run("api.main:app", host=conf.api_host, port=conf.api_port, proxy_headers=False)
