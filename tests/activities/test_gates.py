"""Smoke gate parsing and webhook signing, against real servers where they exist."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gates import GateActivities, WebhookInput, javascript_problem, sign
from tests.support.webhooks import WEBHOOK_HOST, webhook_receiver


@pytest.mark.parametrize(
    "source",
    [
        b"export function mount(el) { el.textContent = `hi`; }",
        b"import {a} from './a.js'; export default class X { static y = 1; #z = 2; m() { return a?.b ?? 3 } }",  # noqa: E501
        b"const f = async () => { const { a, ...rest } = await import('./x.js'); return rest };",
        b"!function(){var e={};e.x=1}();",  # minified classic script
    ],
)
def test_modern_javascript_parses(source: bytes) -> None:
    assert javascript_problem(source) is None


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (b"export function (", "does not parse"),
        (b"<!doctype html><html><body>Not Found</body></html>", "does not parse"),
        (b"<html><body>404 Not Found</body></html>", "contains markup"),
        (b"const x = {", "does not parse"),
    ],
)
def test_what_is_not_a_bundle_is_refused(source: bytes, problem: str) -> None:
    found = javascript_problem(source)
    assert found is not None and problem in found


def test_webhooks_are_signed_and_refusals_raise() -> None:
    secret = b"s3cret"
    gates = GateActivities(httpx.Client(timeout=5), secret, allowed_hosts=[WEBHOOK_HOST])
    with webhook_receiver() as hook:
        result = gates.call_webhook(
            WebhookInput(event="post_rollout", url=hook.url + "/x", timeout_seconds=5, payload={"a": 1})
        )
        assert result.status == 200
        call = hook.calls[0]
        body = json.dumps({"a": 1}, sort_keys=True).encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        assert call["headers"]["x-skyline-signature"] == expected == sign(secret, body)
        assert call["headers"]["x-skyline-event"] == "post_rollout"
        hook.default = 409
        with pytest.raises(ApplicationError, match="answered 409"):
            gates.call_webhook(WebhookInput(event="rollback", url=hook.url, timeout_seconds=5, payload={}))
    unsigned = GateActivities(httpx.Client(timeout=5), None, allowed_hosts=[WEBHOOK_HOST])
    with webhook_receiver() as hook:
        unsigned.call_webhook(WebhookInput(event="pre_rollout", url=hook.url, timeout_seconds=5, payload={}))
        assert "x-skyline-signature" not in hook.calls[0]["headers"]
