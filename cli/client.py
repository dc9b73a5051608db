"""The HTTP client every command uses: base URL, bearer token, and error mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cli.errors import ApiRefused, ApiUnavailable

DEFAULT_API_URL = "http://127.0.0.1:8000"


def segment(value: str) -> str:
    """One path segment: an id typed by a person must not add path levels."""
    return quote(value, safe="")


def _error_fields(body: Any) -> tuple[str, str, str | None]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("code", "error")), str(error.get("message", "")), error.get("field")
    return "error", "", None


class Api:
    def __init__(self, base_url: str, token: str | None) -> None:
        # Here, not at the top: only commands that talk to the API need HTTP (cli/transport.py).
        from cli.transport import Transport

        headers = {"user-agent": "skyline-cli", "accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = Transport(self.base_url, headers)

    def close(self) -> None:
        pass  # one connection per request: nothing stays open

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        from cli.transport import TransportError

        query = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            status, raw = self._http.send(method, path, query, body, files, headers)
        except TransportError as exc:
            cause = getattr(exc, "reason", None)  # URLError wraps the socket's error
            cause = cause if isinstance(cause, BaseException) else exc
            raise ApiUnavailable(
                f"cannot reach the API at {self.base_url} ({type(cause).__name__}: {cause}); "
                "is it running? set --api-url or SKYLINE_API_URL",
                {"error": {"status": None, "code": "unreachable", "message": str(cause)}},
            ) from exc
        if status == 204:
            return None
        text = raw.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            payload = None
        if status >= 500:
            _, message, _ = _error_fields(payload)
            raise ApiUnavailable(
                f"the API failed with {status}: {message or text[:500]}",
                payload if isinstance(payload, dict) else None,
            )
        if status >= 400:
            code, message, where = _error_fields(payload)
            if not isinstance(payload, dict):
                payload = {"error": {"status": status, "code": code, "message": text}}
            raise ApiRefused(status, code, message or text[:500], where, payload)
        if payload is None:
            raise ApiUnavailable(f"the API answered {status} without JSON: {text[:200]}")
        return payload

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, params=params, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


@dataclass
class Session:
    """What the global options chose; one per invocation (typer's ctx.obj)."""

    api_url: str = DEFAULT_API_URL
    token: str | None = None
    json: bool = False
    _api: Api | None = field(default=None, repr=False)

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.api_url, self.token)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
