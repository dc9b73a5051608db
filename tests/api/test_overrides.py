"""Developer overrides (issue 15, item 4) against the session stack's real API, S3 and Prometheus.

- POST /overrides signs a short-lived override for a published version, including one at 0 %
  and one only an older revision holds; GET /overrides/unit answers its entry, SRI and files.
- Forged (tampered claims, another key, a beacon token) and expired overrides are refused with
  401 `invalid_override_token` in the error shape; unknown versions 404; too long a TTL 422.
- Beacons labelled `override` are accepted only with a beacon token that carries the override,
  counted in skyline_unit_override_loads_total, and never move the canary's series: the
  judge's own figures (MetricsActivities.since) stay at zero.
Roles (viewer refused, deployer allowed) are in tests/api/test_auth.py, with auth on.
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

from activities.metrics import GatherFiguresInput, MetricsActivities
from adapters.manifest_store import ManifestStore
from api.beacon_tokens import TokenError
from api.overrides import OverrideSigner
from skyline.manifest import ApartmentManifest, ManifestChange, RolloutConfig, Unit, UnitFile
from skyline.manifest_ops import RestoreBuilding, SetCanary
from skyline.settings import Settings
from tests.api.test_beacons import LOADS, beacon, metrics, series
from tests.support.beacons import text_body
from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")

OVERRIDE_LOADS = "skyline_unit_override_loads_total"


def published(version: str) -> Unit:
    base = f"https://edge.example/skyline/bundles/header/{version}"
    return Unit(
        id=f"header@{version}",
        name="header",
        version=version,
        url=f"{base}/index.js",
        checksum=f"sha384-entry-{version}",
        size=10,
        status="canary",
        files={
            "index.js": UnitFile(url=f"{base}/index.js", integrity=f"sha384-entry-{version}", kind="module"),
            "chunk-A.js": UnitFile(url=f"{base}/chunk-A.js", integrity="sha384-chunk", kind="module"),
        },
    )


async def write(settings: Settings, s3: Any, apartment: str, mutation: Any) -> ApartmentManifest:
    change = ManifestChange(id=f"test/{uuid.uuid4()}", actor="tests", reason="override test")
    manifest, _ = await asyncio.to_thread(
        ManifestStore(s3, settings.s3_bucket).apply, apartment, mutation, change
    )
    return manifest


def tamper(token: str, **changes: Any) -> str:
    payload, _, signature = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


def key_of(settings: Settings) -> bytes:
    assert settings.beacon_key is not None
    return settings.beacon_key.get_secret_value().encode()


async def test_an_override_names_a_published_version_at_zero_percent_or_only_in_history(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    first = await asyncio.to_thread(ManifestStore(s3, settings.s3_bucket).read, apartment)
    assert first is not None
    original = first[0].apartments[apartment].buildings["header"]
    # 1.2.0 served a canary once and is gone from the head; 1.1.0 is staged at 0 %.
    await write(
        settings,
        s3,
        apartment,
        SetCanary(building="header", unit=published("1.2.0"), rollout=RolloutConfig(percentage=5)),
    )
    await write(settings, s3, apartment, RestoreBuilding(building="header", snapshot=original))
    head = await write(
        settings,
        s3,
        apartment,
        SetCanary(building="header", unit=published("1.1.0"), rollout=RolloutConfig(percentage=0)),
    )
    assert "header@1.2.0" not in head.apartments[apartment].buildings["header"].units

    before = time.time()
    response = await api.post(
        "/overrides",
        json={
            "apartment": apartment,
            "building": "header",
            "version": "1.1.0",
            "shell_url": "https://shop.example/page?lang=en",
        },
    )
    assert response.status_code == 201, response.text
    issued = response.json()
    assert (issued["unit"], issued["version"], issued["param"]) == ("header", "1.1.0", "skyline_override")
    assert issued["entry"] == {"url": published("1.1.0").url, "integrity": "sha384-entry-1.1.0"}
    assert before + 3600 - 5 <= issued["expires_at"] <= time.time() + 3600  # the default TTL, 1 h
    assert issued["link"].startswith("https://shop.example/page?lang=en&skyline_override=")
    assert OverrideSigner(key_of(settings)).verify(issued["token"]).key == "header@1.1.0"

    # The loader's question: the unit as published (entry, SRI, every file), without its rollout.
    unit = await api.get("/overrides/unit", params={"token": issued["token"]})
    assert unit.status_code == 200, unit.text
    assert unit.headers["access-control-allow-origin"] == "*"
    assert unit.headers["cache-control"] == "no-store"
    body = unit.json()
    assert (body["apartment"], body["building"], body["expires_at"]) == (
        apartment,
        "header",
        issued["expires_at"],
    )
    assert body["unit"]["url"] == published("1.1.0").url
    assert body["unit"]["checksum"] == "sha384-entry-1.1.0"
    assert set(body["unit"]["files"]) == {"index.js", "chunk-A.js"}
    assert "rollout" not in body["unit"]

    # A version only an older revision holds.
    old = await api.post(
        "/overrides", json={"apartment": apartment, "building": "header", "version": "1.2.0"}
    )
    assert old.status_code == 201, old.text
    old_unit = await api.get("/overrides/unit", params={"token": old.json()["token"]})
    assert old_unit.json()["unit"]["url"] == published("1.2.0").url

    # What does not exist is 404 naming the field; too long a life is 422.
    for payload, field in [
        ({"apartment": apartment, "building": "header", "version": "9.9.9"}, "version"),
        ({"apartment": apartment, "building": "nope", "version": "1.1.0"}, "building"),
        ({"apartment": "no-such-apartment", "building": "header", "version": "1.1.0"}, "apartment"),
    ]:
        refused = await api.post("/overrides", json=payload)
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["field"] == field
    long = await api.post(
        "/overrides",
        json={"apartment": apartment, "building": "header", "version": "1.1.0", "ttl_seconds": 10 * 86400},
    )
    assert long.status_code == 422 and long.json()["error"]["code"] == "ttl_too_long"


async def test_forged_and_expired_overrides_are_refused(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    await write(
        settings,
        s3,
        apartment,
        SetCanary(building="header", unit=published("1.1.0"), rollout=RolloutConfig(percentage=0)),
    )
    response = await api.post(
        "/overrides",
        json={"apartment": apartment, "building": "header", "version": "1.1.0", "ttl_seconds": 2},
    )
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    far = int(time.time()) + 86400
    beacon_token = (await api.get("/beacon-token", params={"apartment": apartment})).json()["token"]
    forged = {
        "extended": tamper(token, e=far),
        "another version": tamper(token, u="header@1.0.0"),
        "another apartment": tamper(token, a="other-shop"),
        "another key": OverrideSigner(b"not-the-key-of-this-skyline").issue(
            apartment, "header", "header", "1.1.0", 3600, "mallory"
        )[0],
        "a beacon token": beacon_token,
        "garbage": "not.a-token",
        "empty": "",
    }
    for case, bad in forged.items():
        refused = await api.get("/overrides/unit", params={"token": bad})
        assert refused.status_code == 401, (case, refused.text)
        error = refused.json()["error"]
        assert (error["code"], error["field"], error["status"]) == ("invalid_override_token", "token", 401), (
            case
        )
        assert refused.headers["access-control-allow-origin"] == "*"
    # An override is not a beacon token either.
    posted = await api.post("/beacons", **text_body({"beacons": [beacon(apartment)]}, token))
    assert posted.status_code == 401

    assert (await api.get("/overrides/unit", params={"token": token})).status_code == 200
    await asyncio.sleep(2.2)
    expired = await api.get("/overrides/unit", params={"token": token})
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    with pytest.raises(TokenError):
        OverrideSigner(key_of(settings)).verify(token)


async def test_overridden_loads_never_move_the_canary_series(
    api: httpx.AsyncClient, settings: Settings, s3: Any
) -> None:
    apartment = await create_apartment(api)
    # The canary at 5 %: its loads are what the judge reads.
    await write(
        settings,
        s3,
        apartment,
        SetCanary(building="header", unit=published("1.1.0"), rollout=RolloutConfig(percentage=5)),
    )
    started = time.time()
    issued = await api.post(
        "/overrides", json={"apartment": apartment, "building": "header", "version": "1.1.0"}
    )
    override = issued.json()["token"]

    # Without the override in its beacon token, a page may not label a load as overridden.
    plain = (await api.get("/beacon-token", params={"apartment": apartment})).json()["token"]
    labelled = beacon(apartment, version="1.1.0", override=True)
    refused = await api.post("/beacons", **text_body({"beacons": [labelled]}, plain))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "beacon_token_scope"

    # The loader's beacon token names the page's override; a forged one is left out, not refused.
    answer = await api.get(
        "/beacon-token",
        params={"apartment": apartment, "override": f"{override},{tamper(override, b='main')}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["overrides"] == {"header": ["header@1.1.0"]}
    page = answer.json()["token"]
    batch = {
        "beacons": [
            beacon(apartment, version="1.1.0", override=True, load_seconds=0.2),
            beacon(apartment, version="1.1.0", override=True, outcome="load_error", load_seconds=None),
            # the fallback to the stable unit on an overridden building is an override load too
            beacon(apartment, version="1.0.0", override=True, load_seconds=0.1),
        ]
    }
    accepted = await api.post("/beacons", **text_body(batch, page))
    assert accepted.status_code == 202, accepted.text

    found = await metrics(api)
    canary = {"apartment": apartment, "building": "header", "unit": "header", "version": "1.1.0"}
    stable = {**canary, "version": "1.0.0"}
    assert not any(series(found, LOADS, **canary).values())
    assert not any(series(found, LOADS, **stable).values())
    assert not any(series(found, "skyline_unit_load_seconds_count", **canary).values())
    assert not any(series(found, "skyline_beacon_sessions_total", **canary).values())
    overridden = {dict(k)["outcome"]: v for k, v in series(found, OVERRIDE_LOADS, **canary).items()}
    assert overridden == {"loaded": 1, "load_error": 1}
    assert sum(series(found, OVERRIDE_LOADS, **stable).values()) == 1

    # Prometheus has the override loads, and the judge's own figures for the step see none.
    query = f'sum({OVERRIDE_LOADS}{{apartment="{apartment}",version="1.1.0"}})'
    deadline = time.monotonic() + 30
    seen = 0.0
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=5) as prometheus:
        while time.monotonic() < deadline and seen < 2:
            result = (await prometheus.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
            seen = float(result[0]["value"][1]) if result else 0.0
            await asyncio.sleep(0.3)
    assert seen == 2, f"Prometheus never saw the override loads ({query} -> {seen})"
    judge = MetricsActivities(settings.prometheus_url, 5)
    look = GatherFiguresInput(
        apartment=apartment,
        building="header",
        unit="header",
        canary_version="1.1.0",
        baseline_version="1.0.0",
        since_seconds=0,
        at_seconds=0,
        window_seconds=60,
    )
    for version in ("1.1.0", "1.0.0"):
        figures = await asyncio.to_thread(judge.since, look, version, started)
        assert (figures.loads, figures.errors) == (0, 0), (version, figures)
