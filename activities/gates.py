"""Gates before traffic moves (smoke check) and webhooks around a rollout."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import tree_sitter_javascript
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tree_sitter import Language, Node, Parser

from adapters.bundles import sri_sha384
from skyline.outbound import OutboundRefused, Resolver, resolve_target

JS = Language(tree_sitter_javascript.language())
JS_TYPES = ("text/javascript", "application/javascript", "application/ecmascript", "text/ecmascript")


class SmokeCheckInput(BaseModel):
    entry_url: str
    integrity: str
    smoke_url: str | None = None


class SmokeCheckResult(BaseModel):
    bytes: int
    smoke_status: int | None


class WebhookInput(BaseModel):
    event: str
    url: str
    timeout_seconds: float
    payload: dict[str, object]


class WebhookResult(BaseModel):
    status: int
    body: str = ""  # never filled: a response body is not stored in history (kept for old histories)


def _has_jsx(node: Node) -> bool:
    if node.type.startswith("jsx_"):
        return True
    return any(_has_jsx(child) for child in node.children)


def javascript_problem(source: bytes) -> str | None:
    """Why this is not a loadable JavaScript module, or None if it parses."""
    tree = Parser(JS).parse(source)
    if tree.root_node.has_error:
        return "the entry does not parse as JavaScript"
    # The grammar accepts JSX, so an HTML error page would parse: built bundles never hold JSX.
    if _has_jsx(tree.root_node):
        return "the entry contains markup (JSX/HTML), not built JavaScript"
    return None


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _failure(exc: httpx.HTTPError) -> str:
    """A short, fixed description of a transport failure (no server text, no OS detail)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return "failed"


class GateActivities:
    def __init__(
        self,
        http: httpx.Client,
        webhook_secret: bytes | None,
        allowed_hosts: Sequence[str] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self.http = http
        self.webhook_secret = webhook_secret
        self.allowed_hosts = list(allowed_hosts)
        # DNS for deployer-named URLs (None: the system's); tests inject a rebinding one.
        self.resolver = resolver

    def _send(
        self, what: str, method: str, url: str, headers: dict[str, str], **kwargs: object
    ) -> httpx.Response:
        """One request to a deployer-named URL: refused unless its destination is allowed, and
        sent to the address that was checked (no DNS rebinding between check and connect)."""
        try:
            target = resolve_target(url, self.allowed_hosts, self.resolver)
        except OutboundRefused as exc:
            raise ApplicationError(
                f"{what} refused: {exc}", type="OutboundRefused", non_retryable=True
            ) from None
        extensions = {"sni_hostname": target.host} if url.lower().startswith("https:") else {}
        try:
            return self.http.request(
                method,
                target.url,
                headers={**headers, "host": target.host_header},
                extensions=extensions,
                **kwargs,  # type: ignore[arg-type]
            )
        except httpx.HTTPError as exc:
            raise ApplicationError(f"{what} {_failure(exc)}", type="OutboundFailed") from None

    @activity.defn
    def smoke_check(self, inp: SmokeCheckInput) -> SmokeCheckResult:
        """Load the entry through the edge as a browser would; refuse what would not run."""
        response = self.http.get(inp.entry_url)
        if response.status_code != 200:
            raise ApplicationError(f"smoke: the edge answered {response.status_code} for {inp.entry_url}")
        if sri_sha384(response.content) != inp.integrity:
            raise ApplicationError(
                f"smoke: {inp.entry_url} does not match its SRI hash {inp.integrity}",
                type="SmokeFailed",
                non_retryable=True,
            )
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in JS_TYPES:
            raise ApplicationError(
                f"smoke: {inp.entry_url} is served as {ctype or 'no content type'}; browsers refuse "
                "module scripts that are not JavaScript",
                type="SmokeFailed",
                non_retryable=True,
            )
        problem = javascript_problem(response.content)
        if problem:
            raise ApplicationError(f"smoke: {problem}", type="SmokeFailed", non_retryable=True)
        status = None
        if inp.smoke_url:
            host = urlsplit(inp.smoke_url).hostname or "?"
            smoke = self._send(f"smoke: the smoke URL on {host}", "GET", inp.smoke_url, {})
            status = smoke.status_code
            if not 200 <= status < 300:
                raise ApplicationError(
                    f"smoke: the smoke URL on {host} answered {status}", type="SmokeFailed"
                )
        return SmokeCheckResult(bytes=len(response.content), smoke_status=status)

    @activity.defn
    def call_webhook(self, inp: WebhookInput) -> WebhookResult:
        """POST the rollout's description; any non-2xx answer is an error (retried by policy)."""
        body = json.dumps(inp.payload, sort_keys=True, default=str).encode()
        headers = {"content-type": "application/json", "x-skyline-event": inp.event}
        if self.webhook_secret:
            # The secret lives in the worker's settings only; history holds the payload, never the key.
            headers["x-skyline-signature"] = sign(self.webhook_secret, body)
        what = f"webhook {inp.event} to {urlsplit(inp.url).hostname or '?'}"
        response = self._send(what, "POST", inp.url, headers, content=body, timeout=inp.timeout_seconds)
        # Only the status code is kept: the body is the receiver's, never shown or stored.
        if not 200 <= response.status_code < 300:
            raise ApplicationError(f"{what} answered {response.status_code}", type="WebhookRefused")
        return WebhookResult(status=response.status_code)
