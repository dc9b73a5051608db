"""Issue 23 items 2 and 7: an API without tokens serves only its own host, and the
retention setting accepts seconds as docs/operations.md says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api.main import create_app
from skyline.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def open_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The embedded default: auth off, bound to loopback (real Temporal and S3 behind it)."""
    assert not settings.auth_tokens and settings.api_host == "127.0.0.1"
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_with_auth_off_only_clients_on_this_host_may_call_authenticated_routes(
    open_app: FastAPI,
) -> None:
    # Started on 0.0.0.0 by hand (uvicorn --host 0.0.0.0, SKYLINE_API_HOST unset), the API
    # still refuses every other machine: a request from one is not an admin's.
    async with client_from(open_app, "203.0.113.7") as remote:
        refused = await remote.get("/rollouts")
        assert refused.status_code == 401, refused.text
        assert "SKYLINE_AUTH_TOKENS" in refused.json()["error"]["message"]
        assert (await remote.post("/apartments", json={"id": "x"})).status_code == 401
        assert (await remote.get("/healthz")).status_code == 200  # public routes stay public
    for local in ("127.0.0.1", "::1"):
        async with client_from(open_app, local) as here:
            assert (await here.get("/rollouts")).status_code == 200


def test_retention_in_seconds_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYLINE_RETENTION", "30")
    assert Settings().retention == timedelta(seconds=30)
    assert Settings.model_validate({"retention": "30"}).retention == timedelta(seconds=30)
    assert Settings.model_validate({"retention": "P14D"}).retention == timedelta(days=14)
    with pytest.raises(ValueError, match="retention"):
        Settings.model_validate({"retention": "-5"})
