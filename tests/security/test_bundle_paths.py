"""Item 1: a deployer's bundle.path reaches only the bundle root, and untrafficked bundles go away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.publish import PublishActivities, PublishBundleInput
from adapters.bundles import BundleError, resolve_bundle_path, scan_bundle, tree_hash
from adapters.storage import edge_client
from skyline.rollout import BundleSource
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
from tests.support.webhooks import webhook_receiver

ASYNC = pytest.mark.asyncio(loop_scope="session")
ENDED = {"succeeded", "rolled_back", "failed"}


def request(apartment: str, path: str, version: str = "2.0.0", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": version,
        "bundle": {"path": path},
        "strategy": strategy(),
        "actor": "mallory",
    }
    body.update(extra)
    return body


def distinct_bundle(root: Path, version: str) -> Path:
    """A bundle whose content address no other test shares, its entry included.

    Files of one unit share a namespace across versions (docs/bundles.md), so the
    entry itself must differ too: an identical entry another apartment serves is
    rightly kept by the unpublish.
    """
    bundle = make_bundle(root, version)
    build = unique("build")
    (bundle / "build-id.txt").write_text(build)
    entry = bundle / "index.js"
    entry.write_text(entry.read_text() + f"// {build}\n")
    return bundle


def stored_keys(s3: Any, settings: Settings, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


@ASYNC
async def test_paths_outside_the_root_are_refused_alike_and_name_the_setting(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    assert settings.bundle_root is not None
    outside = Path("/etc")  # exists, readable, secret-ish
    answers = []
    for path in (
        str(outside),
        "/no/such/dir-" + unique("x"),
        "/proc/self/cwd",
        f"{settings.bundle_root}/../..",
    ):
        response = await api.post("/rollouts", json=request(apartment, path))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == "bundle.path" and "SKYLINE_BUNDLE_ROOT" in error["message"]
        answers.append(error["message"].replace(path, "<path>"))
    # Existing and missing directories outside the root answer the same: no existence oracle.
    assert answers[0] == answers[1] == answers[2]


@ASYNC
async def test_symlinks_under_the_root_are_not_followed(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    link = tmp_path / "link"
    link.symlink_to("/etc", target_is_directory=True)  # under the root, pointing out of it
    response = await api.post("/rollouts", json=request(apartment, str(link)))
    assert response.status_code == 422, response.text
    assert "symlink" in response.json()["error"]["message"]
    # A symlinked directory on the way to the bundle is refused too.
    real = make_bundle(tmp_path / "real" / "b", "2.0.0")
    (tmp_path / "via").symlink_to(real.parent, target_is_directory=True)
    response = await api.post("/rollouts", json=request(apartment, str(tmp_path / "via" / "b")))
    assert response.status_code == 422 and "symlink" in response.json()["error"]["message"]


@ASYNC
async def test_a_symlinked_file_inside_the_bundle_fails_the_rollout_before_traffic(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    (bundle / "passwd.js").symlink_to("/etc/passwd")
    response = await api.post("/rollouts", json=request(apartment, str(bundle)))
    assert response.status_code == 201, response.text
    final = await wait_state(api, response.json()["id"], ENDED)
    assert final["state"] == "failed" and "symlink" in final["reason"] and final["revisions"] == []


def test_the_worker_checks_the_root_again(settings: Settings, s3: Any, tmp_path: Path) -> None:
    """Defence in depth: the activity refuses what the API would, whoever started the workflow."""
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    publish = PublishActivities(
        settings.model_copy(update={"bundle_root": tmp_path / "elsewhere"}), s3, edge_client()
    )
    with pytest.raises(BundleError, match="SKYLINE_BUNDLE_ROOT"):
        publish.publish(
            PublishBundleInput(
                unit_id="header", version="2.0.0", entry="index.js", source=BundleSource(path=str(bundle))
            )
        )
    off = PublishActivities(settings.model_copy(update={"bundle_root": None}), s3, edge_client())
    with pytest.raises(BundleError, match="SKYLINE_BUNDLE_ROOT is not set"):
        off.publish(
            PublishBundleInput(
                unit_id="header", version="2.0.0", entry="index.js", source=BundleSource(path=str(bundle))
            )
        )
    with pytest.raises(BundleError, match="not set"):
        resolve_bundle_path(str(bundle), None)


@ASYNC
async def test_refused_pre_rollout_webhook_leaves_nothing_public(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bundle = distinct_bundle(tmp_path / "b", "2.0.0")
    prefix = f"bundles/header/{tree_hash(scan_bundle(bundle, 'index.js'))[:32]}/"
    with webhook_receiver() as hook:
        hook.default = 403
        body = request(apartment, str(bundle))
        body["webhooks"] = [{"event": "pre_rollout", "url": hook.url + "/pre", "retries": 0}]
        response = await api.post("/rollouts", json=body)
        assert response.status_code == 201, response.text
        final = await wait_state(api, response.json()["id"], ENDED)
    assert final["state"] == "failed" and final["revisions"] == []
    assert any(entry["action"] == "unpublished" for entry in final["history"]), final["history"]
    assert stored_keys(s3, settings, prefix) == []
    entry = await edge.get(f"/{settings.s3_bucket}/{prefix}index.js")
    assert entry.status_code in (403, 404)  # the edge's cached copy was purged too


@ASYNC
async def test_failed_smoke_gate_and_early_rollback_unpublish(
    api: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    bad = distinct_bundle(tmp_path / "bad", "2.0.0")
    (bad / "index.js").write_text("<html><body>oops</body></html>")
    bad_prefix = f"bundles/header/{tree_hash(scan_bundle(bad, 'index.js'))[:32]}/"
    response = await api.post("/rollouts", json=request(apartment, str(bad)))
    final = await wait_state(api, response.json()["id"], ENDED)
    assert final["state"] == "failed" and "smoke" in final["reason"]
    assert stored_keys(s3, settings, bad_prefix) == []

    # Rolled back while publishing: no weight was ever written.
    other = await create_apartment(api)
    early = distinct_bundle(tmp_path / "early", "2.0.0")
    early_prefix = f"bundles/header/{tree_hash(scan_bundle(early, 'index.js'))[:32]}/"
    started = await api.post("/rollouts", json=request(other, str(early)))
    assert started.status_code == 201, started.text
    rolled = await api.post(f"/rollouts/{started.json()['id']}/rollback", json={"actor": "ops"})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["state"] == "rolled_back" and rolled.json()["revisions"] == []
    assert stored_keys(s3, settings, early_prefix) == []


@ASYNC
async def test_a_prefix_an_earlier_revision_references_is_kept(
    api: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """Content-addressed: an identical earlier build that reached traffic shares its files."""
    first = await create_apartment(api)
    bundle = distinct_bundle(tmp_path / "b", "2.0.0")
    started = await api.post("/rollouts", json=request(first, str(bundle), strategy=parked_strategy()))
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    await wait_state(api, rollout_id, {"progressing"})
    live = await wait_for(api, rollout_id, lambda s: s["revisions"])
    entry_key = live["canary"]["url"].split(f"/{settings.s3_bucket}/", 1)[1]
    await api.post(f"/rollouts/{rollout_id}/rollback", json={})
    second = await create_apartment(api)
    with webhook_receiver() as hook:
        hook.default = 500
        body = request(second, str(bundle))
        body["webhooks"] = [{"event": "pre_rollout", "url": hook.url, "retries": 0}]
        started = await api.post("/rollouts", json=body)
        assert started.status_code == 201, started.text
        final = await wait_state(api, started.json()["id"], ENDED)
    assert final["state"] == "failed"
    kept = [entry for entry in final["history"] if entry["action"] == "unpublish skipped"]
    assert kept and "referenced by manifests/" in kept[0]["reason"]
    # the first apartment's revisions still name the entry, and it is still there
    assert entry_key in stored_keys(s3, settings, entry_key)
