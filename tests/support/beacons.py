"""Beacons as the loader sends them: a token from GET /beacon-token, then {"token", "beacons"}."""

from __future__ import annotations

import json
from typing import Any

import httpx

from api.beacon_tokens import BucketKeys
from skyline.settings import Settings
from skyline.split import bucket_of, in_percentage


def canary_bucket(settings: Settings, apartment: str, percentage: float, building: str = "header") -> str:
    """A bucket key (signed with the stack's beacon key) the split puts in `building`'s canary
    at `percentage`: a page holding it is assigned the canary, and its token covers it."""
    assert settings.beacon_key is not None
    found = next(
        f"canary-{i}"
        for i in range(100_000)
        if in_percentage(bucket_of(f"canary-{i}", apartment, building), percentage)
    )
    return BucketKeys(settings.beacon_key.get_secret_value().encode()).issue(found)


async def beacon_token(
    api: httpx.AsyncClient, apartment: str, revision: int | None = None, bucket: str | None = None
) -> str:
    """A fresh token (a new session) for `apartment`, as the loader gets one per page load
    (with `bucket`: of a browser holding that bucket key; without, a first visit's)."""
    params: dict[str, str] = {"apartment": apartment}
    if revision is not None:
        params["revision"] = str(revision)
    if bucket is not None:
        params["bucket"] = bucket
    response = await api.get("/beacon-token", params=params)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def text_body(payload: Any, token: str | None = None) -> dict[str, Any]:
    """As the loader sends it: a CORS simple request with a text/plain JSON body (token added)."""
    if token is not None and isinstance(payload, dict):
        payload = {"token": token, **payload} if "beacons" in payload else {**payload, "token": token}
    return {"content": json.dumps(payload), "headers": {"content-type": "text/plain;charset=UTF-8"}}
