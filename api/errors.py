"""One JSON error shape for every failure: {"error": {"status", "code", "message", "field"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("skyline.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


# Segments pydantic adds for unions (the strategy's tag, a member type) name no field.
_UNION_SEGMENTS = {
    "canary",
    "linear",
    "exponential",
    "immediate",
    "blue_green",
    "ab_test",
    "float",
    "StepSpec",
}


def _field(loc: tuple[Any, ...]) -> str:
    # The first segment says where (body, query, path); later ones are field names, and a
    # field may be called `path` (bundle.path).
    where = loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc
    parts = [str(p) for p in where if p not in _UNION_SEGMENTS and "[" not in str(p)]
    return ".".join(parts) or "body"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.status, exc.code, exc.message, exc.field), exc.status)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    invalid_json = next((p for p in problems if p.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        # Pydantic locates a JSON syntax error by byte offset; the field is the whole body.
        detail = invalid_json.get("ctx", {}).get("error", "")
        message = f"the body is not valid JSON{f' ({detail})' if detail else ''}"
        return JSONResponse(error_body(422, "invalid_json", message, "body"), 422)
    first = problems[0] if problems else {"loc": ("body",), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    message = "; ".join(
        f"{_field(tuple(p.get('loc', ())))}: {str(p.get('msg', '')).removeprefix('Value error, ')}"
        for p in problems
    )
    return JSONResponse(error_body(422, "invalid_request", message, field), 422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        exc.status_code, "http_error"
    )
    # A body refused for its size is not read to its end: close rather than drain it.
    headers = {"connection": "close"} if exc.status_code == 413 else None
    return JSONResponse(error_body(exc.status_code, code, str(exc.detail)), exc.status_code, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Anything unforeseen: the documented shape, no internals (the log has the traceback)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(500, "internal_error", "the server failed to handle this request; see its log"), 500
    )


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


# Multipart framing around an uploaded archive (boundaries, part headers).
MULTIPART_ALLOWANCE = 64 * 1024


class BodyLimit:
    """Refuses request bodies over SKYLINE_API_MAX_BODY_BYTES with 413 in the error shape,
    by Content-Length up front and by counting what arrives (chunked bodies). POST /bundles
    has its own, larger limit (SKYLINE_BUNDLE_UPLOAD_MAX_BYTES) for archives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _limit(scope: Scope) -> int:
        state = getattr(scope["app"].state, "skyline", None) if "app" in scope else None
        settings = state.settings if state is not None else None
        if settings is None:
            return 1024 * 1024
        if scope["path"].rstrip("/") == "/bundles":
            return int(settings.bundle_upload_max_bytes) + MULTIPART_ALLOWANCE
        return int(settings.api_max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            message = f"request body exceeds {limit} bytes"
            body = error_body(413, "body_too_large", message, "body")
            response = JSONResponse(body, 413, headers={"connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class Contained:
    """Anything unforeseen that escapes the routes: the 500 in the error shape, logged, and
    not re-raised. (Starlette's outermost handler re-raises after answering, and the server
    then resets the connection, so the client's next request on it failed too.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:  # half an answer is out: only cutting the connection ends it
                raise
            log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            message = "the server failed to handle this request; see its log"
            await JSONResponse(error_body(500, "internal_error", message), 500)(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(Contained)
    app.add_middleware(BodyLimit)
