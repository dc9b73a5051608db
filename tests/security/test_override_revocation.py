"""Issue 23 item 8: an override can be revoked before it expires.

Against the session stack's API and S3: a deployer revokes an override (by token or by the
link `POST /overrides` answered); `GET /overrides/unit`, what the loader asks, refuses it from
the next request on; a second API process (another replica) refuses it within
SKYLINE_TOKEN_CACHE_SECONDS; the revocation list is private and holds only unexpired entries.
The browser side (the loader forgets a revoked link) is tests/browser/test_override_revocation.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.overrides import REVOKED_PREFIX, OverrideRevocations, OverrideSigner, token_digest
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.api.test_overrides import key_of, tamper
from tests.support.scenario import create_apartment
from tests.support.secured import api_process

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOUND = 1.0  # SKYLINE_TOKEN_CACHE_SECONDS of the second API process


@pytest.fixture(scope="module")
def replica(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("override-replica") / "api.log"
    with api_process(stack, log, {"SKYLINE_TOKEN_CACHE_SECONDS": str(BOUND)}, "override-replica") as (url, _):
        yield url


async def issue(api: httpx.AsyncClient, apartment: str, **extra: Any) -> dict[str, Any]:
    body = {"apartment": apartment, "building": "header", "version": "1.0.0", **extra}
    issued = await api.post("/overrides", json=body)
    assert issued.status_code == 201, issued.text
    answer: dict[str, Any] = issued.json()
    return answer


async def test_a_revoked_override_is_refused_by_every_api_process(
    api: httpx.AsyncClient, replica: str, s3: Any, settings: Settings
) -> None:
    apartment = await create_apartment(api)
    kept = await issue(api, apartment)
    # Another expiry: two overrides of one version issued in the same second are one token.
    gone = await issue(api, apartment, shell_url="https://shop.example/?lang=en", ttl_seconds=1800)
    async with httpx.AsyncClient(base_url=replica, timeout=30) as other:
        for token in (kept["token"], gone["token"]):
            assert (await api.get("/overrides/unit", params={"token": token})).status_code == 200
            assert (await other.get("/overrides/unit", params={"token": token})).status_code == 200
        revoked = await api.post("/overrides/revoke", json={"token": gone["link"]})  # the link will do
        assert revoked.status_code == 200, revoked.text
        record = revoked.json()
        assert record["sha256"] == token_digest(gone["token"]) and record["unit"] == "header@1.0.0"
        assert record["expires_at"] == gone["expires_at"]

        # The revoking process refuses it at once, in the error shape the loader reads.
        refused = await api.get("/overrides/unit", params={"token": gone["token"]})
        assert refused.status_code == 401, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_override_token" and "revoked" in error["message"]
        assert refused.headers["cache-control"] == "no-store"
        # Another process within its cache bound (polled, with a deadline).
        deadline = time.monotonic() + BOUND + 5
        while (await other.get("/overrides/unit", params={"token": gone["token"]})).status_code != 401:
            assert time.monotonic() < deadline, "the replica still serves a revoked override"
            await asyncio.sleep(0.1)
        # Only that override: the other one of the same building still works.
        assert (await api.get("/overrides/unit", params={"token": kept["token"]})).status_code == 200
        assert (await other.get("/overrides/unit", params={"token": kept["token"]})).status_code == 200
        again = await api.post("/overrides/revoke", json={"token": gone["token"]})
        assert again.status_code == 200  # idempotent

    # The list is private storage, and short: one object per revoked, unexpired token.
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=REVOKED_PREFIX).get("Contents", [])
    ]
    assert f"{REVOKED_PREFIX}{gone['expires_at']}-{token_digest(gone['token'])}.json" in keys
    assert all(k.startswith("private/") for k in keys)
    edge = await api.get("/healthz")  # the edge never serves private/ (tests/security/test_edge.py)
    assert edge.status_code == 200


async def test_only_tokens_skyline_signed_and_still_valid_can_be_revoked(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    apartment = await create_apartment(api)
    issued = await issue(api, apartment)
    forged = tamper(issued["token"], e=issued["expires_at"] + 86400)
    refused = await api.post("/overrides/revoke", json={"token": forged})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_override_token"
    expired, _ = OverrideSigner(key_of(settings), clock=lambda: time.time() - 7200).issue(
        apartment, "header", "header", "1.0.0", 60, "tests"
    )
    late = await api.post("/overrides/revoke", json={"token": expired})
    assert late.status_code == 409 and late.json()["error"]["code"] == "override_expired"
    empty = await api.post("/overrides/revoke", json={})
    assert empty.status_code == 422


async def test_expired_revocations_leave_the_list(s3: Any, settings: Settings) -> None:
    """Entries whose tokens have expired are dropped at the next revocation and never consulted."""
    now = [1_000_000.0]
    signer = OverrideSigner(key_of(settings), clock=lambda: now[0])
    revocations = OverrideRevocations(s3, settings.s3_bucket, ttl_seconds=0, clock=lambda: now[0])
    first, first_override = signer.issue("shop-x", "header", "header", "1.0.0", 60, "tests")
    revocations.revoke(first, first_override, "tests")
    assert revocations.is_revoked(first)
    now[0] += 120  # the first token has expired
    second, second_override = signer.issue("shop-x", "header", "header", "1.0.0", 60, "tests")
    revocations.revoke(second, second_override, "tests")
    assert revocations.is_revoked(second) and not revocations.is_revoked(first)
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=REVOKED_PREFIX).get("Contents", [])
    assert not [o for o in listed if token_digest(first) in o["Key"]]
