"""The HTTP client every command uses: base URL, bearer token, and error mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cli.errors import ApiRefused, ApiUnavailable

if TYPE_CHECKING:
    import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
# Rollback and undo answer only once the edge serves the restored manifest.
REQUEST_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 5.0


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
        # Here, not at the top: httpx (with its own CLI's rich and pygments) costs more than
        # `skyline --help` may take, and only commands that talk to the API need it.
        import httpx

        headers = {"user-agent": "skyline-cli"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http: httpx.Client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        import httpx  # already loaded by __init__; this binds the name for the except clause

        query = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            response = self._http.request(method, path, params=query, json=body, files=files)
        except httpx.TransportError as exc:
            raise ApiUnavailable(
                f"cannot reach the API at {self.base_url} ({type(exc).__name__}: {exc}); "
                "is it running? set --api-url or SKYLINE_API_URL",
                {"error": {"status": None, "code": "unreachable", "message": str(exc)}},
            ) from exc
        if response.status_code == 204:
            return None
        try:
            payload = response.json()
        except json.JSONDecodeError:
            payload = None
        if response.status_code >= 500:
            _, message, _ = _error_fields(payload)
            raise ApiUnavailable(
                f"the API failed with {response.status_code}: {message or response.text[:500]}",
                payload if isinstance(payload, dict) else None,
            )
        if response.status_code >= 400:
            code, message, where = _error_fields(payload)
            if not isinstance(payload, dict):
                payload = {"error": {"status": response.status_code, "code": code, "message": response.text}}
            raise ApiRefused(response.status_code, code, message or response.text[:500], where, payload)
        if payload is None:
            raise ApiUnavailable(
                f"the API answered {response.status_code} without JSON: {response.text[:200]}"
            )
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
