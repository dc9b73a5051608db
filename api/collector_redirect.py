"""The API's answer to browser traffic once a collector serves it: 308 to the same path there.

With SKYLINE_COLLECTOR_URL set, the browser-facing routes run in the collector
(collector/main.py) and new shell pages point at it. Shells written before still
send `GET /beacon-token` and `POST /beacons` to the API: a 308 keeps the method and
the body, and carries `Access-Control-Allow-Origin: *` so the browser follows it
for a cross-origin fetch (the loader sends `credentials: "omit"`, so the tainted
`Origin: null` of the redirected request meets the collector's `*`). Nothing of
the body is read here. Without the setting the API serves the routes itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.access import REDIRECTED_TO_COLLECTOR, lookup


def collector_location(collector_url: str, path: str, query: bytes) -> str:
    """The collector's URL of `path?query` (the collector URL may carry a path prefix)."""
    base = collector_url.rstrip("/")
    return f"{base}{path}?{query.decode('latin-1')}" if query else f"{base}{path}"


def redirected(method: str, path: str) -> bool:
    """Whether `method path` is browser traffic the collector serves in place of the API."""
    found = lookup(method, path)
    return found.template is not None and (method, found.template) in REDIRECTED_TO_COLLECTOR


class CollectorRedirect:
    """Pure ASGI: reads the collector URL from the app's settings once the lifespan ran."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = getattr(scope["app"].state, "skyline", None) if "app" in scope else None
            url: str | None = getattr(getattr(state, "settings", None), "collector_url", None)
            method, path = str(scope["method"]), str(scope["path"])
            if url and redirected(method, path):
                location = collector_location(url, path, scope.get("query_string", b""))
                await send(
                    {
                        "type": "http.response.start",
                        "status": 308,
                        "headers": [
                            (b"location", location.encode("latin-1")),
                            (b"access-control-allow-origin", b"*"),
                            # Not cached: unsetting the collector URL must bring the API back.
                            (b"cache-control", b"no-store"),
                            (b"content-length", b"0"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)
