"""The gate: every request is checked against api/access.py before its body is received.

A pure ASGI middleware, so nothing of the body is read (FastAPI reads and parses
a route's body, spooling uploads to disk, before any dependency runs). It
answers, without calling `receive`:

- 422 `invalid_characters` for a control character in the path or the query;
- 404 / 405 for a path or method the table does not know (a served route
  without a rule is unreachable: fail closed);
- 401 / 403 for a missing, unknown or too weak token.

A refusal of a request that announced a body larger than 64 KiB (or chunked)
also closes the connection (`Connection: close`): the server would otherwise
read the rest of the body and throw it away to reuse the connection. Clients
that send `Expect: 100-continue` (curl does for large uploads) get the refusal
before sending any of the body.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access import Access, lookup
from api.admission import DRAIN_AT_MOST as DRAIN_AT_MOST
from api.admission import control_field as control_field
from api.admission import unread_body_too_large
from api.auth import PRINCIPAL, TokenStore, authenticate
from api.errors import ApiError, error_body

ROUTE_TEMPLATE = "skyline.route"  # the template the gate matched, for metrics of refused requests


async def refuse(
    scope: Scope, receive: Receive, send: Send, error: ApiError, headers: dict[str, str] | None = None
) -> None:
    extra = dict(headers or {})
    if unread_body_too_large(scope.get("headers") or []):
        extra["connection"] = "close"
    if error.status == 401:
        extra["www-authenticate"] = "Bearer"
    body = error_body(error.status, error.code, error.message, error.field)
    await JSONResponse(body, error.status, headers=extra)(scope, receive, send)


class Gate:
    """`rules`: the access table this app serves (default api/access.py RULES; the collector
    passes its own, collector/access.py)."""

    def __init__(self, app: ASGIApp, rules: dict[tuple[str, str], Access] | None = None) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]), str(scope["path"])
        field = control_field(path, scope.get("query_string", b""))
        if field is not None:
            message = f"control characters are not allowed in the {'path' if field == 'path' else 'query'}"
            await refuse(scope, receive, send, ApiError(422, "invalid_characters", message, field))
            return
        found = lookup(method, path, self.rules)
        if found.template is None:
            await refuse(scope, receive, send, ApiError(404, "not_found", f"no route {path}"))
            return
        scope[ROUTE_TEMPLATE] = found.template
        if found.access is None:
            allowed = ", ".join(found.allowed)
            error = ApiError(405, "method_not_allowed", f"{method} is not allowed here; use {allowed}")
            await refuse(scope, receive, send, error, {"allow": allowed})
            return
        if found.access == "public":
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "skyline", None) if "app" in scope else None
        store: TokenStore | None = getattr(state, "tokens", None)
        if store is None:  # before the lifespan ran: nothing to check a token against
            await refuse(scope, receive, send, ApiError(503, "not_ready", "the API is starting"))
            return
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        try:
            principal = await authenticate(
                store,
                headers.get(b"authorization", b"").decode("latin-1"),
                found.access,
                str(client[0]) if client else None,
            )
        except ApiError as error:
            await refuse(scope, receive, send, error)
            return
        scope[PRINCIPAL] = (found.template, principal)
        await self.app(scope, receive, send)
