"""The collector app: beacon tokens, beacons, override units, import maps, the loader's URL.

The browser-facing routes (api/access.py COLLECTOR_RULES), apart from the control
API so they scale on their own and the control plane need not face the internet.
It reuses the API's route modules; every other path is 404 (its gate reads its own
table). Stateless apart from the shared store (SKYLINE_REDIS_URL: session caps,
token budgets, distinct networks) and S3 reads: no Temporal client, no tokens
checked, so it may listen on any address (docs/security.md, trust boundaries).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from adapters.manifest_store import ManifestStore
from adapters.storage import s3_client
from api import errors
from api.access import COLLECTOR_RULES
from api.auth import TokenStore, caller
from api.deps import AppState
from api.gate import Gate
from api.routes import beacons, health, importmap, loader, overrides
from api.routes.health import add_metrics_routes
from collector.fast_lane import FastLane
from skyline.observability import configure_logging, install_http_metrics
from skyline.settings import Settings, get_settings

log = logging.getLogger("skyline.collector")

ROUTERS = (health, importmap, beacons, overrides, loader)


class CollectorApp(FastAPI):
    """FastAPI, with the per-page-load routes answered first (collector/fast_lane.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_lane = FastLane(super().__call__, beacons.FAST_ROUTES, owner=self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fast_lane(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or get_settings()
        configure_logging(conf)
        # Also when run as `uvicorn collector.main:app` (the bench, a deployer's own command).
        logging.getLogger("uvicorn.access").disabled = not conf.collector_access_log
        if conf.redis_url is None:
            log.warning(
                "SKYLINE_REDIS_URL is not set: session caps and token budgets are this "
                "collector's own (run one collector only, or set the shared store)"
            )
        s3 = s3_client(conf)
        app.state.skyline = AppState(
            settings=conf,
            temporal=None,  # no route of the collector starts or reads a workflow
            store=ManifestStore(s3, conf.s3_bucket),
            tokens=TokenStore(conf, s3),  # read by the override routes' revocation list
        )
        # Everything loaded so far lives as long as the process: out of the collector's sight,
        # a full collection no longer walks it (a pause in the p99 of every page's beacons).
        gc.collect()
        gc.freeze()
        yield

    app = CollectorApp(
        title="Skyline collector",
        summary="Browser-facing routes of Skyline: beacons, beacon tokens, import maps",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(caller)],
    )
    errors.install(app)
    # The routers hold a few control routes too (POST /overrides): the gate's table has
    # none of them, so they are 404 here before any body is read.
    app.add_middleware(Gate, rules=COLLECTOR_RULES)
    install_http_metrics(app)
    for module in ROUTERS:
        app.include_router(module.router)
    add_metrics_routes(app)
    return app


app = create_app()


def run() -> None:
    conf = get_settings()
    # Like the API, X-Forwarded-For is read from SKYLINE_TRUSTED_PROXIES only.
    uvicorn.run(
        "collector.main:app",
        host=conf.collector_host,
        port=conf.collector_port,
        proxy_headers=False,
        access_log=conf.collector_access_log,
    )
