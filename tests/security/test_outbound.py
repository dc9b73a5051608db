"""Item 5: webhooks and smoke URLs reach no internal address unless allowlisted, and no
receiver's response body ends up in a rollout's status or history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gates import GateActivities, WebhookInput
from skyline.outbound import OutboundRefused, literal_refusal, resolve_target
from skyline.settings import Settings
from tests.support.scenario import create_apartment, make_bundle, strategy, wait_state
from tests.support.webhooks import WEBHOOK_HOST, webhook_receiver

ASYNC = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "rolled_back", "failed"}

# Never contacted: refused before any connection (10.255.255.1 would hang a connect).
INTERNAL = [
    "http://10.255.255.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:9090/-/quit",
    "http://localhost:9090/-/reload",
    "http://2130706433:9090/-/reload",  # 127.0.0.1 as one decimal number: only DNS tells
    "http://[::ffff:127.0.0.1]:9090/",
    "http://0.0.0.0:9090/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused_before_any_connection(url: str) -> None:
    gates = GateActivities(httpx.Client(timeout=30), None, allowed_hosts=[WEBHOOK_HOST])
    started = time.monotonic()
    with pytest.raises(ApplicationError) as refused:
        gates.call_webhook(WebhookInput(event="pre_rollout", url=url, timeout_seconds=30, payload={}))
    assert refused.value.type == "OutboundRefused" and refused.value.non_retryable
    assert "SKYLINE_WEBHOOK_ALLOWED_HOSTS" in str(refused.value)
    with pytest.raises(ApplicationError, match="refused"):  # the smoke URL goes the same way
        gates._send("smoke: the smoke URL", "GET", url, {})
    assert time.monotonic() - started < 5


def test_every_resolved_address_is_checked_and_the_connection_pinned() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return {"mixed.example": ["93.184.216.34", "10.0.0.7"], "public.example": ["93.184.216.34"]}[host]

    with pytest.raises(OutboundRefused, match="10.0.0.7"):
        resolve_target("https://mixed.example/hook", [], resolver)
    target = resolve_target("https://public.example:8443/hook?x=1", [], resolver)
    # The request goes to the checked address; the name stays for Host and TLS.
    assert target.url == "https://93.184.216.34:8443/hook?x=1"
    assert target.host == "public.example" and target.host_header == "public.example:8443"


def test_allowlist_entries() -> None:
    def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    assert (
        resolve_target("http://hooks.internal:8080/x", ["hooks.internal:8080"], loopback).address
        == "127.0.0.1"
    )
    with pytest.raises(OutboundRefused):
        resolve_target("http://hooks.internal:9090/x", ["hooks.internal:8080"], loopback)
    assert resolve_target("http://10.1.2.3/x", ["10.1.0.0/16"]).address == "10.1.2.3"
    with pytest.raises(OutboundRefused):
        resolve_target("http://10.2.0.1/x", ["10.1.0.0/16"])
    # A host entry names the URL's host, not wherever another name resolves.
    with pytest.raises(OutboundRefused):
        resolve_target("http://localhost/x", ["127.0.0.1"], loopback)
    assert literal_refusal("http://127.0.0.1/x", ["127.0.0.1"]) is None
    assert literal_refusal("http://example.com/x", []) is None


def body(apartment: str, bundle: Path, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        "strategy": strategy(),
        "actor": "mallory",
    }
    data.update(extra)
    return data


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"webhooks": [{"event": "pre_rollout", "url": "http://169.254.169.254/latest"}]}, "webhooks.0.url"),
        ({"webhooks": [{"event": "rollback", "url": "http://localhost:9090/-/quit"}]}, "webhooks.0.url"),
        ({"smoke_url": "http://10.255.255.1/"}, "smoke_url"),
        ({"strategy": {"kind": "blue_green", "smoke_url": "http://[::1]:9000/"}}, "strategy.smoke_url"),
    ],
)
@ASYNC
async def test_the_api_refuses_literal_internal_destinations(
    api: httpx.AsyncClient, tmp_path: Path, extra: dict[str, Any], field: str
) -> None:
    apartment = await create_apartment(api)
    response = await api.post(
        "/rollouts", json=body(apartment, make_bundle(tmp_path / "b", "2.0.0"), **extra)
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and "SKYLINE_WEBHOOK_ALLOWED_HOSTS" in error["message"]


@ASYNC
async def test_a_webhook_resolving_to_the_stack_is_refused_by_the_worker(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """Past the API (no literal IP), the worker resolves the name and refuses loopback."""
    apartment = await create_apartment(api)
    prometheus_port = settings.prometheus_url.rsplit(":", 1)[1]
    reload = f"http://2130706433:{prometheus_port}/-/reload"
    request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"))
    request["webhooks"] = [{"event": "pre_rollout", "url": reload, "retries": 3}]
    started = await api.post("/rollouts", json=request)
    assert started.status_code == 201, started.text
    final = await wait_state(api, started.json()["id"], ENDED)
    assert final["state"] == "failed" and final["revisions"] == []
    assert "loopback" in final["reason"] and "refused" in final["reason"]


@ASYNC
async def test_a_refusing_webhook_body_never_reaches_the_status(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    secret = b"internal-admin-password=hunter2 <html>stack trace</html>"
    with webhook_receiver() as hook:
        hook.default = 503
        hook.error_body = secret
        request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"))
        request["webhooks"] = [{"event": "pre_rollout", "url": hook.url + "/pre", "retries": 0}]
        final = await wait_state(api, (await api.post("/rollouts", json=request)).json()["id"], ENDED)
    assert final["state"] == "failed"
    assert "answered 503" in final["reason"]
    everything = str(final)
    assert "hunter2" not in everything and "stack trace" not in everything


@ASYNC
async def test_blue_green_smoke_url_to_an_internal_host_fails_before_traffic(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    s3_port = (settings.s3_endpoint_url or "").rsplit(":", 1)[1]
    strat = {
        "kind": "blue_green",
        "preview_seconds": 0,
        "bake_seconds": 1,
        "smoke_url": f"http://2130706433:{s3_port}/",
    }
    final = await wait_state(
        api,
        (
            await api.post(
                "/rollouts", json=body(apartment, make_bundle(tmp_path / "b", "2.0.0"), strategy=strat)
            )
        ).json()["id"],
        ENDED,
    )
    assert final["state"] == "failed" and final["revisions"] == [] and "loopback" in final["reason"]


@ASYNC
async def test_blue_green_smoke_url_on_an_allowlisted_host_passes(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    with webhook_receiver() as smoke:
        strat = {
            "kind": "blue_green",
            "preview_seconds": 0,
            "bake_seconds": 1,
            "min_requests": 0,
            "smoke_url": smoke.url + "/ok",
        }
        request = body(apartment, make_bundle(tmp_path / "b", "2.0.0"), strategy=strat)
        started = await api.post("/rollouts", json=request)
        assert started.status_code == 201, started.text
        status = await wait_state(api, started.json()["id"], ENDED | {"progressing", "paused"})
        assert status["state"] != "failed", status
        assert any(call["path"] == "/ok" for call in smoke.calls)
    await api.post(f"/rollouts/{started.json()['id']}/rollback", json={})
