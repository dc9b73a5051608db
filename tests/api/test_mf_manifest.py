"""Publishing a Module Federation 2 remote: a bad mf-manifest.json is a 422 in the API's error shape."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.scenario import create_apartment, parked_strategy

pytestmark = pytest.mark.asyncio(loop_scope="session")

ENTRY = b"export async function init() {}\nexport async function get() { return () => ({}); }\n"


def mf(entry_name: str = "remoteEntry.js", path: str = "") -> bytes:
    return json.dumps(
        {
            "name": "checkout",
            "metaData": {
                "name": "checkout",
                "remoteEntry": {"name": entry_name, "path": path, "type": "module"},
            },
            "exposes": [{"name": "Cart", "path": "./Cart"}],
            "shared": [],
        }
    ).encode()


def archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def upload(api: httpx.AsyncClient, members: dict[str, bytes]) -> httpx.Response:
    return await api.post("/bundles", files={"bundle": ("b.tar.gz", archive(members), "application/gzip")})


def refused(response: httpx.Response, field: str, words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["status"], error["code"], error["field"]) == (422, "invalid_mf_manifest", field), error
    assert words in error["message"], error["message"]


async def test_uploads_of_remotes_are_checked(api: httpx.AsyncClient) -> None:
    ok = await upload(api, {"dist/mf-manifest.json": mf(), "dist/remoteEntry.js": ENTRY})
    assert ok.status_code == 201, ok.text
    refused(await upload(api, {"mf-manifest.json": b"{nope", "remoteEntry.js": ENTRY}), "bundle", "not JSON")
    refused(
        await upload(api, {"mf-manifest.json": mf("gone.js"), "remoteEntry.js": ENTRY}),
        "bundle",
        "'gone.js', which is not in the bundle",
    )
    refused(
        await upload(api, {"mf-manifest.json": mf(path="../x"), "remoteEntry.js": ENTRY}),
        "bundle",
        "inside the bundle",
    )
    refused(
        await upload(api, {"mf-manifest.json": json.dumps({"name": "x"}).encode(), "index.js": ENTRY}),
        "bundle",
        "no metaData",
    )


async def test_rollouts_of_remote_directories_are_checked(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)

    def request(root: Path, **extra: Any) -> dict[str, Any]:
        return {
            "apartment": apartment,
            "building": "main",
            "unit_id": "checkout",
            "version": "1.0.0",
            "bundle": {"path": str(root)},
            "strategy": parked_strategy(),
            "actor": "tests",
            **extra,
        }

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "remoteEntry.js").write_bytes(ENTRY)
    (bad / "mf-manifest.json").write_bytes(mf("static/remoteEntry.js"))
    refused(await api.post("/rollouts", json=request(bad)), "bundle", "not in the bundle")

    good = tmp_path / "good"
    good.mkdir()
    (good / "remoteEntry.js").write_bytes(ENTRY)
    (good / "mf-manifest.json").write_bytes(mf())
    refused(await api.post("/rollouts", json=request(good, entry="main.js")), "entry", "contradicts")
