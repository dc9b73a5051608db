"""Beacons decide canaries, so only pages that loaded the manifest may send them (issue 12, 3 and 9;
issue 11, 6), against the session stack's real API, S3 server and Prometheus.

- Forged beacons (no token, a token of another key, tampered, expired, for another apartment
  or a unit the manifest did not offer) are refused and counted nowhere but in
  skyline_beacons_refused_total{reason="token"}.
- One session (one page load) sends at most the cap; every session is counted once per unit
  version in skyline_beacon_sessions_total, so volume from few sessions is visible.
- The first load_error of a new version shows in increase() on the real Prometheus.
- A flood naming invented apartments costs a bounded number of storage requests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from adapters.manifest_store import ManifestStore
from api.beacon_tokens import BeaconSigner, TokenError
from skyline.manifest import ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import SetCanary
from skyline.settings import Settings
from tests.api.test_beacons import LOADS, beacon, client_from, metrics, series
from tests.support.beacons import beacon_token, canary_bucket, text_body
from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = "skyline_beacons_refused_total"
SESSIONS = "skyline_beacon_sessions_total"
READS = "skyline_beacon_storage_reads_total"


def total(found: dict[str, Any], name: str, **labels: str) -> float:
    return sum(series(found, name, **labels).values())


async def add_canary(settings: Settings, s3: Any, apartment: str, version: str = "1.1.0") -> int:
    unit = Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url=f"https://cdn.example/header/{version}/index.js",
        checksum="sha384-x",
        size=1,
        status="canary",
    )
    change = ManifestChange(id=f"test/{uuid.uuid4()}", actor="tests", reason="canary")
    manifest, _ = await asyncio.to_thread(
        ManifestStore(s3, settings.s3_bucket).apply,
        apartment,
        SetCanary(building="header", unit=unit, rollout=RolloutConfig(percentage=5)),
        change,
    )
    return int(manifest.version)


def tamper(token: str, **changes: Any) -> str:
    payload, _, signature = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


async def test_the_token_endpoint_hands_out_one_session_per_page_load(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    revision = await add_canary(settings, s3, apartment)
    bucket = canary_bucket(settings, apartment, 5)
    params = {"apartment": apartment, "revision": str(revision), "bucket": bucket}
    first = await api.get("/beacon-token", params=params)
    second = await api.get("/beacon-token", params={"apartment": apartment})
    assert first.status_code == second.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.headers["access-control-allow-origin"] == "*"
    body = first.json()
    assert body["apartment"] == apartment
    # What a page in the canary's bucket may report on: the canary and the active unit, its
    # fallback (no other building has units); its key comes back as it was. A first visit (no
    # key) reports on the active unit alone and gets a new key.
    assert body["units"] == {"header": ["header@1.0.0", "header@1.1.0"]}
    assert body["bucket"] == bucket
    assert second.json()["units"] == {"header": ["header@1.0.0"]}
    assert second.json()["bucket"] not in (None, bucket)
    assert body["expires_at"] > time.time() + 60
    assert body["session"] != second.json()["session"]

    missing = await api.get("/beacon-token", params={"apartment": f"nope-{uuid.uuid4().hex[:8]}"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "apartment"
    bad = await api.get("/beacon-token", params={"apartment": "Shop!"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "apartment"


async def test_forged_beacons_are_refused_and_counted_nowhere(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    other = await create_apartment(api)
    token = await beacon_token(api, apartment)
    assert settings.beacon_key is not None
    key = settings.beacon_key.get_secret_value().encode()
    expired, _ = BeaconSigner(key, ttl_seconds=60, clock=lambda: time.time() - 3600).issue(
        apartment, {"header": ["header@1.0.0"]}
    )
    stranger, _ = BeaconSigner(b"not-the-key-of-this-skyline").issue(apartment, {"header": ["header@1.0.0"]})
    error = beacon(apartment, outcome="load_error", load_seconds=None)
    forgeries: list[tuple[str, dict[str, Any], int, str]] = [
        ("no token", {"beacons": [error] * 20}, 401, "no beacon token"),
        ("bare beacon, no token", error, 401, "no beacon token"),
        ("not a token", {"token": "x" * 40, "beacons": [error]}, 401, "not a token Skyline issued"),
        ("another key", {"token": stranger, "beacons": [error]}, 401, "signature"),
        ("tampered apartment", {"token": tamper(token, a=other), "beacons": [error]}, 401, "signature"),
        ("expired", {"token": expired, "beacons": [error]}, 401, "expired"),
        (
            "tampered units",
            {"token": tamper(token, u={"header": ["header@6.6.6"]}), "beacons": [error]},
            401,
            "signature",
        ),
        ("other apartment", {"token": token, "beacons": [{**error, "apartment": other}]}, 403, "issued for"),
        ("unit not offered", {"token": token, "beacons": [{**error, "version": "6.6.6"}]}, 403, "6.6.6"),
    ]
    before = await metrics(api)
    async with client_from(settings, "127.0.0.21") as forger:
        for name, body, status, says in forgeries:
            response = await forger.post("/beacons", **text_body(body))
            assert response.status_code == status, (name, response.text)
            problem = response.json()["error"]
            assert says in problem["message"], (name, problem)
            assert problem["field"] in ("token", "beacons.0.apartment", "beacons.0.version"), problem
        # 25 forged load_error beacons (the issue's rollback): none counts.
        for _ in range(25):
            assert (await forger.post("/beacons", **text_body(error))).status_code == 401
    after = await metrics(api)
    for name in (apartment, other):
        assert total(after, LOADS, apartment=name) == 0, name
    gained = total(after, REFUSED, reason="token") - total(before, REFUSED, reason="token")
    assert gained == len(forgeries) + 25


async def test_a_session_is_capped_and_counted_once_per_unit_version(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    apartment = await create_apartment(api)
    labels = {"apartment": apartment, "building": "header", "unit": "header", "version": "1.0.0"}
    cap = settings.beacon_session_max_beacons
    assert cap == 100
    token = await beacon_token(api, apartment)
    statuses = []
    async with client_from(settings, "127.0.0.22") as page:
        for _ in range(cap // 20 + 1):
            response = await page.post("/beacons", **text_body({"beacons": [beacon(apartment)] * 20}, token))
            statuses.append(response.status_code)
        refusal = response.json()["error"]
        # Another page load is another session, with a cap of its own.
        others = [await beacon_token(api, apartment) for _ in range(3)]
        for other in others:
            assert (await page.post("/beacons", **text_body(beacon(apartment), other))).status_code == 202
    assert statuses == [202] * (cap // 20) + [429], statuses
    assert refusal["code"] == "session_limit" and refusal["field"] == "token", refusal

    found = await metrics(api)
    assert total(found, "skyline_unit_reported_loads_total", **labels, outcome="loaded") == cap + 3
    # 103 beacons, 4 sessions: the evidence counts each session once (issue 22).
    assert total(found, LOADS, **labels, outcome="loaded") == 4
    assert total(found, SESSIONS, **labels) == 4
    assert total(found, REFUSED, reason="session_limit") >= 1


async def test_the_first_load_error_of_a_new_version_shows_in_increase(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    revision = await add_canary(settings, s3, apartment, "1.1.0")
    selector = f'apartment="{apartment}",building="header",unit="header",version="1.1.0"'
    # A page that loaded the manifest got a token: the version's series exist, at 0.
    token = await beacon_token(api, apartment, revision, canary_bucket(settings, apartment, 5))
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=5) as prometheus:

        async def query(expr: str) -> list[dict[str, Any]]:
            answer = await prometheus.get("/api/v1/query", params={"query": expr})
            result: list[dict[str, Any]] = answer.json()["data"]["result"]
            return result

        deadline = time.monotonic() + 20
        while not await query(f'{LOADS}{{{selector},outcome="load_error"}} == 0'):
            assert time.monotonic() < deadline, "Prometheus never scraped the load_error series at 0"
            await asyncio.sleep(0.3)
        for name in ("skyline_unit_load_seconds_count", SESSIONS):
            assert await query(f"{name}{{{selector}}} == 0"), name

        # The very first failure of the version...
        error = beacon(apartment, version="1.1.0", outcome="load_error", load_seconds=None)
        response = await api.post("/beacons", **text_body(error, token))
        assert response.status_code == 202, response.text
        # ...is counted by increase(), which cannot see a series born at 1.
        increase = f'sum(increase({LOADS}{{{selector},outcome="load_error"}}[1m]))'
        deadline = time.monotonic() + 20
        seen = 0.0
        while seen <= 0:
            assert time.monotonic() < deadline, f"increase() never saw the first load_error ({increase})"
            await asyncio.sleep(0.3)
            result = await query(increase)
            seen = float(result[0]["value"][1]) if result else 0.0
        assert seen >= 0.9


async def test_a_flood_of_unknown_apartments_costs_a_bounded_number_of_storage_reads(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    real = await create_apartment(api)
    token = await beacon_token(api, real)
    before = await metrics(api)
    started = time.monotonic()

    async def flood(address: str) -> list[int]:
        statuses = []
        async with client_from(settings, address) as client:
            for i in range(20):
                ghost = f"ghost-{uuid.uuid4().hex[:12]}"
                if i % 2:
                    response = await client.get("/beacon-token", params={"apartment": ghost})
                else:
                    ghosts = [beacon(f"ghost-{uuid.uuid4().hex[:12]}") for _ in range(20)]
                    body = {"token": token, "beacons": ghosts} if i % 4 else {"beacons": ghosts}
                    response = await client.post("/beacons", **text_body(body))
                statuses.append(response.status_code)
        return statuses

    # 50 addresses (each under its rate limit): 500 token requests for invented apartments and
    # 500 beacon requests naming 10,000 invented apartments.
    results = await asyncio.gather(*(flood(f"127.0.1.{n}") for n in range(1, 51)))
    elapsed = time.monotonic() - started
    statuses = [s for r in results for s in r]
    assert len(statuses) == 1000
    assert set(statuses) <= {401, 403, 404}, sorted(set(statuses))
    after = await metrics(api)
    manifest_reads = total(after, READS, kind="manifest") - total(before, READS, kind="manifest")
    listings = total(after, READS, kind="listing") - total(before, READS, kind="listing")
    # No manifest read for an apartment that does not exist; at most one listing per interval.
    assert manifest_reads == 0, manifest_reads
    bound = elapsed / settings.beacon_apartments_min_relist_seconds + 2
    assert listings <= bound, (listings, elapsed)

    # The real apartment still gets tokens and beacons.
    response = await api.post("/beacons", **text_body(beacon(real), await beacon_token(api, real)))
    assert response.status_code == 202, response.text


async def test_a_rotated_key_still_verifies_tokens_of_the_previous_one() -> None:
    old, new = b"o" * 32, b"n" * 32
    token, _ = BeaconSigner(old).issue("shop", {"header": ["header@1.0.0"]})
    claims = BeaconSigner(new, previous=[old]).verify(token)
    assert claims.apartment == "shop" and claims.allows("header", "header", "1.0.0")
    assert not claims.allows("header", "header", "1.1.0")
    with pytest.raises(TokenError) as refused:
        BeaconSigner(new).verify(token)
    assert refused.value.problem == "signature"
    # New tokens are signed with the new key only.
    fresh, _ = BeaconSigner(new, previous=[old]).issue("shop", {})
    with pytest.raises(TokenError):
        BeaconSigner(old).verify(fresh)
