"""Beacons as the loader sends them: a token from GET /beacon-token, then {"token", "beacons"}."""

from __future__ import annotations

import json
from typing import Any

import httpx


async def beacon_token(api: httpx.AsyncClient, apartment: str, revision: int | None = None) -> str:
    """A fresh token (a new session) for `apartment`, as the loader gets one per page load."""
    params: dict[str, str] = {"apartment": apartment}
    if revision is not None:
        params["revision"] = str(revision)
    response = await api.get("/beacon-token", params=params)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def text_body(payload: Any, token: str | None = None) -> dict[str, Any]:
    """As the loader sends it: a CORS simple request with a text/plain JSON body (token added)."""
    if token is not None and isinstance(payload, dict):
        payload = {"token": token, **payload} if "beacons" in payload else {**payload, "token": token}
    return {"content": json.dumps(payload), "headers": {"content-type": "text/plain;charset=UTF-8"}}
