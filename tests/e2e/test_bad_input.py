"""Bad input gets a clear 4xx naming what to fix, and the manifest is never touched."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.bundles import scan_bundle, tree_hash
from skyline.settings import Settings
from tests.support.scenario import (
    create_apartment,
    make_bundle,
    parked_strategy,
    strategy,
    unique,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "rolled_back", "failed"}


def body(apartment: str, bundle: Path | str, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": str(bundle)},
        "strategy": strategy(),
        "actor": "alice",
    }
    data.update(extra)
    return data


async def head_version(api: httpx.AsyncClient, apartment: str) -> str:
    return str((await api.get(f"/apartments/{apartment}/manifest")).json()["version"])


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"apartment": "no-such-shop"}, "apartment", "does not exist"),
        ({"building": "navbar"}, "building", "building 'navbar' does not exist"),
        ({"version": "1.1"}, "version", "not a SemVer version"),
        ({"version": "1.0.0"}, "version", "not greater than the active version 1.0.0"),
        ({"version": "0.9.0"}, "version", "set force=true"),
        ({"bundle": {"path": "/nonexistent/bundle"}}, "bundle.path", "under SKYLINE_BUNDLE_ROOT"),
        ({"bundle": {"upload_id": "0123456789abcdef"}}, "bundle.upload_id", "upload it with POST /bundles"),
        ({"entry": "main.js"}, "entry", "no entry file 'main.js'"),
        ({"strategy": {"steps": [50, 25, 100]}}, "strategy.steps", "increase strictly"),
        ({"unit_id": "Header"}, "unit_id", "lowercase"),
        ({"dependencies": ["react@^19"]}, "dependencies", "dependency 'react@^19' has no compatible version"),
        ({"compatibility": "^9.0.0"}, "compatibility", "supports shells '^9.0.0'"),
        ({"strategy": {"kind": "exponential", "factor": 0.5}}, "strategy.factor", "greater than 1"),
        (
            {"strategy": {"checks": [{"name": "x", "query": 'up{job="{jobname}"}', "max": 1}]}},
            "strategy.checks.0",
            "unknown template argument(s) ['jobname']",
        ),
    ],
)
async def test_bad_rollout_requests_are_422_naming_the_field(
    api: httpx.AsyncClient, tmp_path: Path, change: dict[str, Any], field: str, message: str
) -> None:
    apartment = await create_apartment(api)
    version_before = await head_version(api, apartment)
    request = body(apartment, make_bundle(tmp_path / "b", "1.1.0"))
    request.update(change)
    response = await api.post("/rollouts", json=request)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert message in error["message"]
    assert await head_version(api, apartment) == version_before


async def test_forced_downgrade_reaches_the_manifest(api: httpx.AsyncClient, tmp_path: Path) -> None:
    """force=true is carried through to the worker: 0.9.0 goes live as the canary beside 1.0.0."""
    apartment = await create_apartment(api)
    request = body(
        apartment,
        make_bundle(tmp_path / "b", "0.9.0"),
        version="0.9.0",
        force=True,
        strategy=parked_strategy(),
    )
    response = await api.post("/rollouts", json=request)
    assert response.status_code == 201, response.text
    rollout_id = response.json()["id"]
    # the first weight is written once a revision is recorded (written and synced to the edge)
    status = await wait_for(api, rollout_id, lambda s: bool(s["revisions"]) or s["state"] in ENDED)
    assert status["state"] == "progressing", status["reason"]
    assert status["weight"] == 5 and status["version"] == "0.9.0"
    manifest = (await api.get(f"/apartments/{apartment}/manifest")).json()
    header = manifest["apartments"][apartment]["buildings"]["header"]
    assert header["active_unit"] == "header@1.0.0"
    canary = header["units"]["header@0.9.0"]
    assert canary["version"] == "0.9.0" and canary["rollout"]["percentage"] == 5
    assert str(manifest["version"]) == str(status["revisions"][-1])
    rolled = await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "alice"})
    assert rolled.status_code == 200


async def test_second_rollout_on_the_same_building_is_409(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "1.1.0")
    first = await api.post("/rollouts", json=body(apartment, bundle, strategy=parked_strategy()))
    assert first.status_code == 201
    second = await api.post("/rollouts", json=body(apartment, bundle, version="1.2.0"))
    assert second.status_code == 409
    assert "already has a rollout running" in second.json()["error"]["message"]
    # a different building of the same apartment is independent
    other = body(apartment, bundle)
    other["building"] = "footer"
    third = await api.post("/rollouts", json=other)
    assert third.status_code == 201, third.text
    for rollout_id in (first.json()["id"], third.json()["id"]):
        assert (await api.post(f"/rollouts/{rollout_id}/rollback", json={})).status_code == 200


def _unique_bundle(tmp_path: Path) -> tuple[Path, bytes, list[str]]:
    """A bundle, its entry's bytes, and the entry's two possible content addresses."""
    bundle = make_bundle(tmp_path / "b", "1.1.0")
    # Content addresses no other test shares: the bundle's tree, and the entry itself (an
    # entry another test published may sit in the edge's cache, correct, hiding the tampering).
    build = unique("build")
    (bundle / "build-id.txt").write_text(build)
    (bundle / "index.js").write_text((bundle / "index.js").read_text() + f"// {build}\n")
    prefix = f"bundles/header/{tree_hash(scan_bundle(bundle, 'index.js'))[:32]}/"
    original = (bundle / "index.js").read_bytes()
    # The entry's two possible content addresses (docs/bundles.md): its tagged name in the
    # unit's shared directory, and the bundle's own prefix when it is published apart.
    shared = f"bundles/header/index.{hashlib.sha256(original).hexdigest()[:16]}.js"
    return bundle, original, [shared, prefix + "index.js"]


async def _cache_at_the_edge(s3: Any, settings: Settings, keys: list[str], forged: bytes) -> None:
    """Storage holds `forged` (same size, other bytes) at `keys`, and the edge has cached it."""
    async with httpx.AsyncClient(timeout=10) as edge:
        for key in keys:
            s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=forged)
            served = await edge.get(settings.public_url(key))
            assert served.status_code == 200 and served.content == forged


async def test_checksum_mismatch_at_the_edge_fails_before_any_traffic(
    api: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """The edge serves other bytes than storage holds (it cached a bad replication that was
    since repaired): publishing finds storage right and sends nothing, the edge check fails."""
    apartment = await create_apartment(api)
    version_before = await head_version(api, apartment)
    bundle, original, addresses = _unique_bundle(tmp_path)
    await _cache_at_the_edge(s3, settings, addresses, original.replace(b"header", b"hacker"))
    for key in addresses:  # storage repaired; the edge's cached copies are not
        s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=original)
    response = await api.post("/rollouts", json=body(apartment, bundle))
    assert response.status_code == 201
    final = await wait_state(api, response.json()["id"], {"failed", "succeeded", "rolled_back"})
    assert final["state"] == "failed"
    assert "checksum" in final["reason"] and "manifest untouched" in final["reason"]
    assert final["revisions"] == []
    assert await head_version(api, apartment) == version_before


async def test_tampered_bytes_at_a_content_address_are_replaced_and_purged_from_the_edge(
    api: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """Storage holds other bytes of the same size at the entry's content address (tampering,
    a bad replication), and the edge has cached them: publishing writes the right bytes over
    them and purges the edge, so the canary goes out with what was built."""
    apartment = await create_apartment(api)
    bundle, original, addresses = _unique_bundle(tmp_path)
    await _cache_at_the_edge(s3, settings, addresses, original.replace(b"header", b"hacker"))
    response = await api.post("/rollouts", json=body(apartment, bundle))
    assert response.status_code == 201
    rollout_id = response.json()["id"]
    live = await wait_state(api, rollout_id, {"progressing", "paused", "failed", "succeeded", "rolled_back"})
    assert live["state"] in ("progressing", "paused"), live.get("reason")
    async with httpx.AsyncClient(timeout=10) as edge:
        assert (await edge.get(live["canary"]["url"])).content == original
    assert (await api.post(f"/rollouts/{rollout_id}/rollback", json={})).status_code == 200


async def test_unknown_rollout_is_404_and_bad_control_body_is_422(api: httpx.AsyncClient) -> None:
    missing = await api.get("/rollouts/rollout.nobody.nothing")
    assert missing.status_code == 404 and "no rollout" in missing.json()["error"]["message"]
    control = await api.post("/rollouts/rollout.nobody.nothing/pause", json={"actor": 5})
    assert control.status_code == 422 and control.json()["error"]["field"] == "actor"


async def test_uploaded_tar_gz_bundle_rolls_out(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "1.4.0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(bundle, arcname="dist")
    uploaded = await api.post(
        "/bundles", files={"bundle": ("dist.tar.gz", buf.getvalue(), "application/gzip")}
    )
    assert uploaded.status_code == 201, uploaded.text
    upload_id = uploaded.json()["upload_id"]
    assert uploaded.json()["files"] == 7
    request = body(apartment, bundle, version="1.4.0", strategy=strategy(steps=[100], min_requests=0))
    request["bundle"] = {"upload_id": upload_id}
    response = await api.post("/rollouts", json=request)
    assert response.status_code == 201, response.text
    status = await wait_for_published(api, response.json()["id"])
    assert status["canary"]["metadata"]["files"] == 7


async def wait_for_published(api: httpx.AsyncClient, rollout_id: str) -> dict[str, Any]:
    status = await wait_state(api, rollout_id, {"progressing", "paused", "succeeded", "failed"})
    assert status["state"] != "failed", status
    await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests"})
    return status


async def test_garbage_upload_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/bundles", files={"bundle": ("x.tar.gz", b"not a tarball", "application/gzip")}
    )
    assert response.status_code == 422
    assert "not a readable tar.gz" in response.json()["error"]["message"]
