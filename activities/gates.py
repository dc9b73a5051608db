"""Gates before traffic moves (smoke check) and webhooks around a rollout."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import tree_sitter_javascript
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tree_sitter import Language, Node, Parser

from activities.bundles import sri_sha384

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
    body: str


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


class GateActivities:
    def __init__(self, http: httpx.Client, webhook_secret: bytes | None) -> None:
        self.http = http
        self.webhook_secret = webhook_secret

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
            smoke = self.http.get(inp.smoke_url)
            status = smoke.status_code
            if not 200 <= status < 300:
                raise ApplicationError(f"smoke: {inp.smoke_url} answered {status}", type="SmokeFailed")
        return SmokeCheckResult(bytes=len(response.content), smoke_status=status)

    @activity.defn
    def call_webhook(self, inp: WebhookInput) -> WebhookResult:
        """POST the rollout's description; any non-2xx answer is an error (retried by policy)."""
        body = json.dumps(inp.payload, sort_keys=True, default=str).encode()
        headers = {"content-type": "application/json", "x-skyline-event": inp.event}
        if self.webhook_secret:
            # The secret lives in the worker's settings only; history holds the payload, never the key.
            headers["x-skyline-signature"] = sign(self.webhook_secret, body)
        try:
            response = self.http.post(inp.url, content=body, headers=headers, timeout=inp.timeout_seconds)
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"webhook {inp.event} to {inp.url} failed: {exc}", type="WebhookFailed"
            ) from exc
        if not 200 <= response.status_code < 300:
            raise ApplicationError(
                f"webhook {inp.event} to {inp.url} answered {response.status_code}: {response.text[:200]}",
                type="WebhookRefused",
            )
        return WebhookResult(status=response.status_code, body=response.text[:2000])
