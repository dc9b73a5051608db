"""The collector's fast lane: its two per-page-load routes answered without the framework's layers.

Every page load makes two requests to a collector, `GET /beacon-token` and
`POST /beacons`, so what FastAPI does around a route (its middleware layers,
routing over the table, dependency solving, the app-wide `caller` dependency)
is paid twice per page: measured on this machine it was about 40 % of a beacon
request's CPU (`python -m bench --only ingest`, docs/benchmarks.md).

The collector's app (collector/main.py CollectorApp) hands every request to this
lane before FastAPI's own per-request work (its telemetry check, which reads the
environment and the tracer provider on every request, the middleware stack of
Starlette, FastAPI's body-limit wrapper). The lane answers exactly those two (method, path) pairs with
the same handler functions the API's routes use (api/routes/beacons.py), so
their answers, refusals and error shapes are the same in both apps; it does
for them what the layers it skips would have done:

- the gate's check (api/gate.py): both routes are public, and a request with a
  control character in its path or query goes on to the gate, which refuses it;
- the 500 in the error shape for anything unforeseen (as api/errors.py Contained);
- the request counter and latency histogram by route template (as
  skyline/observability.py HttpMetrics, on the same instruments).

It sets `scope["app"]` as Starlette would, so the handlers reach the app's state.

Why not wrap the handlers in Contained and HttpMetrics themselves: measured,
that costs about 40 us more per request (470 against 427 us of CPU per POST,
the bare endpoint 175 in the same runs), HttpMetrics' rollout log context and
path match, and one more layer of awaits, none of which these routes need.

Every other request goes down the normal stack unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.admission import control_field
from api.errors import error_body
from skyline.observability import child, http_instruments

log = logging.getLogger("skyline.collector")

Handler = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Handler], owner: object = None) -> None:
        self.app = app
        self.owner = owner if owner is not None else app  # what `request.app` is in the handlers
        self.routes = dict(routes)
        self._requests, self._latency = http_instruments()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None or control_field(scope["path"], scope.get("query_string", b"")) is not None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.owner
        started = time.perf_counter()
        status = 500
        out_started = False

        async def sent(message: Message) -> None:
            nonlocal status, out_started
            if message["type"] == "http.response.start":
                status, out_started = int(message["status"]), True
            await send(message)

        try:
            response = await handler(Request(scope, receive))
            await response(scope, receive, sent)
        except Exception as exc:
            if out_started:  # half an answer is out: only cutting the connection ends it
                raise
            log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            message = "the server failed to handle this request; see its log"
            await JSONResponse(error_body(500, "internal_error", message), 500)(scope, receive, sent)
        finally:
            method, route = scope["method"], scope["path"]  # both routes are their own template
            child(self._requests, method, route, str(status)).inc()
            child(self._latency, method, route).observe(time.perf_counter() - started)
