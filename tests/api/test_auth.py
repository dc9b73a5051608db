"""Bearer tokens and roles, against a second real API process that has auth on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from api.auth import hash_token, token_key
from stack.embedded import EmbeddedStack
from tests.support.scenario import create_apartment, make_bundle, parked_strategy
from tests.support.secured import api_process

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKENS = {"viewer": "tok-viewer-1", "deployer": "tok-deployer-1", "admin": "tok-admin-1"}
NAMES = {"viewer": "vera", "deployer": "dev", "admin": "ada"}


@pytest.fixture(scope="module")
def secured_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = json.dumps([f"{NAMES[r]}:{r}:{hash_token(t)}" for r, t in TOKENS.items()])
    log = tmp_path_factory.mktemp("secured-api") / "api.log"
    with api_process(stack, log, {"SKYLINE_AUTH_TOKENS": tokens}, "secured-api") as (url, _):
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def secured(secured_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured_url, timeout=60) as client:
        yield client


def bearer(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[role]}"}


async def test_missing_and_wrong_tokens_are_401_and_health_stays_open(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/healthz")).status_code == 200
    ready = await secured.get("/readyz")
    assert ready.status_code == 200 and ready.json()["auth"] == "on"
    missing = await secured.get("/rollouts")
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    wrong = await secured.get("/rollouts", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["error"]["message"]
    basic = await secured.get("/rollouts", headers={"authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401


ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    # (method, path, minimum role, json body)
    ("GET", "/rollouts", "viewer", None),
    ("GET", "/rollouts/rollout.none.none", "viewer", None),
    ("GET", "/apartments/none/manifest", "viewer", None),
    ("GET", "/apartments/none/resolve?user=u1", "viewer", None),
    ("GET", "/schedules", "viewer", None),
    ("POST", "/rollouts/rollout.none.none/pause", "deployer", {}),
    ("POST", "/rollouts/rollout.none.none/rollback", "deployer", {}),
    ("POST", "/rollouts", "deployer", {"apartment": "none"}),
    ("POST", "/overrides", "deployer", {"apartment": "none", "building": "header", "version": "1.0.0"}),
    ("POST", "/apartments", "admin", {"id": "x"}),
    ("POST", "/apartments/none/undo", "admin", {"to_revision": 1}),
    ("POST", "/schedules", "admin", {"rollout_id": "rollout.a.b", "cron": "0 10 * * *"}),
    ("GET", "/tokens", "admin", None),
    ("POST", "/storage/gc", "deployer", {"dry_run": True, "apartment": "none"}),
    ("POST", "/storage/gc", "admin", {"dry_run": False, "apartment": "none"}),
]
RANK = ["viewer", "deployer", "admin"]


@pytest.mark.parametrize(
    ("method", "path", "needed", "payload"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
async def test_each_role_gets_exactly_what_it_may(
    secured: httpx.AsyncClient, method: str, path: str, needed: str, payload: dict[str, Any] | None
) -> None:
    for role in RANK:
        response = await secured.request(method, path, json=payload, headers=bearer(role))
        if RANK.index(role) < RANK.index(needed):
            assert response.status_code == 403, (role, response.text)
            # The gate names the route's least role (api/access.py); the route may need more.
            message = response.json()["error"]["message"]
            assert f"this needs {needed} or higher" in message or "this needs deployer" in message
        else:
            # allowed through auth: whatever the endpoint itself says, never 401/403 or 5xx
            assert response.status_code not in (401, 403) and response.status_code < 500, (
                role,
                response.text,
            )


async def test_the_token_name_is_the_recorded_actor(secured: httpx.AsyncClient, tmp_path: Path) -> None:
    admin, deployer = bearer("admin"), bearer("deployer")
    apartment = await create_apartment(secured, headers=admin)
    manifest = (await secured.get(f"/apartments/{apartment}/manifest", headers=bearer("viewer"))).json()
    assert manifest["change"]["actor"] == "ada"  # not the "tests" the body claimed
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.0.0"))},
        "strategy": parked_strategy(),
        "actor": "someone-else",
    }
    started = await secured.post("/rollouts", json=body, headers=deployer)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    rolled = await secured.post(
        f"/rollouts/{rollout_id}/rollback", json={"actor": "mallory"}, headers=deployer
    )
    assert rolled.status_code == 200, rolled.text
    audit = (await secured.get(f"/rollouts/{rollout_id}/audit", headers=bearer("viewer"))).json()
    actors = {entry["action"]: entry["actor"] for entry in audit}
    assert actors["start"] == "dev" and actors["rollback"] == "dev"
    assert "mallory" not in {entry["actor"] for entry in audit}


async def test_admins_mint_and_revoke_tokens_kept_hashed(
    secured: httpx.AsyncClient, s3: Any, settings: Any
) -> None:
    admin = bearer("admin")
    minted = await secured.post("/tokens", json={"name": "ci-bot", "role": "deployer"}, headers=admin)
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    stored = s3.get_object(Bucket=settings.s3_bucket, Key=token_key("ci-bot"))["Body"].read().decode()
    assert token not in stored and hash_token(token) in stored
    listed = (await secured.get("/tokens", headers=admin)).json()
    assert {"name": "ci-bot", "role": "deployer", "source": "minted"} in listed
    assert {"name": "ada", "role": "admin", "source": "settings"} in listed
    as_bot = {"authorization": f"Bearer {token}"}
    assert (await secured.get("/rollouts", headers=as_bot)).status_code == 200
    assert (await secured.get("/tokens", headers=as_bot)).status_code == 403
    again = await secured.post("/tokens", json={"name": "ci-bot", "role": "viewer"}, headers=admin)
    assert again.status_code == 409
    bad = await secured.post("/tokens", json={"name": "ci bot!", "role": "root"}, headers=admin)
    assert bad.status_code == 422
    assert (await secured.delete("/tokens/ci-bot", headers=admin)).status_code == 204
    assert (await secured.get("/rollouts", headers=as_bot)).status_code == 401
    assert (await secured.delete("/tokens/ci-bot", headers=admin)).status_code == 404
    assert (await secured.delete("/tokens/ada", headers=admin)).status_code == 409


async def test_overrides_need_a_deployer_and_name_their_issuer(secured: httpx.AsyncClient) -> None:
    apartment = await create_apartment(secured, headers=bearer("admin"))
    body = {"apartment": apartment, "building": "header", "version": "1.0.0"}
    anonymous = await secured.post("/overrides", json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    viewer = await secured.post("/overrides", json=body, headers=bearer("viewer"))
    assert viewer.status_code == 403, viewer.text
    assert viewer.json()["error"] == {
        "status": 403,
        "code": "forbidden",
        "message": "token 'vera' has role viewer; this needs deployer or higher",
    }
    for role in ("deployer", "admin"):
        issued = await secured.post("/overrides", json=body, headers=bearer(role))
        assert issued.status_code == 201, issued.text
        assert issued.json()["issuer"] == NAMES[role]
        # The loader's side stays open: a browser has no API token.
        unit = await secured.get("/overrides/unit", params={"token": issued.json()["token"]})
        assert unit.status_code == 200 and unit.json()["unit"]["id"] == "header@1.0.0"
