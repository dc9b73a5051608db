"""Small things a newcomer tripped over: listing apartments, /metrics without a redirect, HEAD /loader.js."""

from __future__ import annotations

import httpx
import pytest

from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_get_apartments_lists_ids_and_revisions(api: httpx.AsyncClient) -> None:
    first = await create_apartment(api)
    second = await create_apartment(api)
    response = await api.get("/apartments")
    assert response.status_code == 200, response.text
    listed = {a["id"]: a for a in response.json()}
    assert {first, second} <= set(listed)
    assert listed[first]["revision"] == 1
    assert listed[first]["buildings"] == ["footer", "header", "main"]
    ids = [a["id"] for a in response.json()]
    assert ids == sorted(ids)


async def test_metrics_is_served_at_metrics_without_a_redirect(api: httpx.AsyncClient) -> None:
    response = await api.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "skyline_" in response.text or "python_info" in response.text
    assert (await api.get("/metrics/", follow_redirects=False)).status_code == 200


async def test_head_loader_js_answers_like_get(api: httpx.AsyncClient) -> None:
    got = await api.get("/loader.js", follow_redirects=False)
    head = await api.head("/loader.js", follow_redirects=False)
    assert got.status_code == 307
    assert head.status_code == 307
    assert head.headers["location"] == got.headers["location"]
