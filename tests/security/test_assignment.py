"""Issue 22: the page cannot choose which variant it reports on.

Against the real stack (API, Redis, worker, Temporal), `shop/header` 2.0.0 at 50 %. One
client holds its own bucket keys, one the API split onto the stable unit and one onto the
canary. A session reports only on the unit its bucket key was assigned, or on the stable
unit (its fallback after a canary failure): a beacon for the canary from a stable-bucket
session, a first visit (no key) or a tampered key is refused with `beacon_not_assigned`
and counted in no evidence series. Before: every token covered every version the manifest
offered, so all three were counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.security.test_forged_evidence import beacon, start
from tests.support.beacons import text_body
from tests.support.scenario import create_apartment

pytestmark = pytest.mark.asyncio(loop_scope="session")

STABLE = "header@1.0.0"
CANARY = "header@2.0.0"


async def loads(api: httpx.AsyncClient, apartment: str) -> dict[tuple[str, str], float]:
    """skyline_unit_loads_total of the apartment's header: (version, outcome) -> count."""
    response = await api.get("/metrics/")
    assert response.status_code == 200
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != "skyline_unit_loads":
            continue
        for s in family.samples:
            if s.name.endswith("_total") and s.labels["apartment"] == apartment:
                out[(s.labels["version"], s.labels["outcome"])] = s.value
    return out


async def token(client: httpx.AsyncClient, apartment: str, bucket: str | None = None) -> dict[str, Any]:
    params = {"apartment": apartment, **({"bucket": bucket} if bucket else {})}
    response = await client.get("/beacon-token", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def key_where(client: httpx.AsyncClient, apartment: str, wanted: Callable[[list[str]], bool]) -> str:
    """A bucket key (new ones from the API) whose token covers what `wanted` asks for."""
    for _ in range(100):
        key = str((await token(client, apartment))["bucket"])
        if wanted((await token(client, apartment, key))["units"]["header"]):
            return key
    raise AssertionError("no bucket key of 100 was split that way at 50 %")


async def post(
    client: httpx.AsyncClient, answer: dict[str, Any], beacons: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post("/beacons", **text_body({"beacons": beacons}, answer["token"]))


async def test_a_session_reports_only_on_the_version_it_was_assigned_or_the_stable_one(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    await start(api, apartment, "2.0.0", tmp_path)
    transport = httpx.AsyncHTTPTransport(local_address="127.0.9.1")
    async with httpx.AsyncClient(base_url=str(api.base_url), transport=transport, timeout=30) as client:
        on_stable = await key_where(client, apartment, lambda units: units == [STABLE])
        on_canary = await key_where(client, apartment, lambda units: units == sorted([STABLE, CANARY]))
        before = await loads(api, apartment)
        canary_error = beacon(apartment, "2.0.0", "load_error")
        stable_loaded = beacon(apartment, "1.0.0", "loaded")

        # Not assigned the canary: a stable-bucket session, a first visit, a tampered key.
        tampered = on_canary[:-4] + ("AAAA" if not on_canary.endswith("AAAA") else "BBBB")
        first_visit = await token(client, apartment)
        forged_key = await token(client, apartment, tampered)
        assert first_visit["units"]["header"] == [STABLE]
        assert forged_key["units"]["header"] == [STABLE] and forged_key["bucket"] != tampered
        for answer in (await token(client, apartment, on_stable), first_visit, forged_key):
            refused = await post(client, answer, [canary_error, stable_loaded])
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == "beacon_not_assigned" and error["field"] == "beacons.0.version", error
            kept = await post(client, answer, [stable_loaded])  # its own unit still counts
            assert kept.status_code == 202, kept.text

        # Assigned the canary: its failure and its fallback to the stable unit both count.
        honest = await post(client, await token(client, apartment, on_canary), [canary_error, stable_loaded])
        assert honest.status_code == 202, honest.text

    after = await loads(api, apartment)

    def grew(version: str, outcome: str) -> float:
        return after.get((version, outcome), 0) - before.get((version, outcome), 0)

    assert grew("2.0.0", "load_error") == 1  # the canary session's alone
    assert grew("2.0.0", "loaded") == 0
    assert grew("1.0.0", "loaded") == 4  # three refused sessions' own unit, the fallback
