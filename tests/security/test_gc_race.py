"""gc cannot lose a served file (issue 23, item 1): pins and the collection lease, end to end.

Against the real stack: rollouts publish through the worker, gc runs through the API
with `dry_run: false`, and every file a manifest revision names is fetched at the
origin (S3) and at the edge (Varnish) afterwards. The collection is scoped to an
apartment whose history this test writes with old timestamps, so the files it named
are past retention and the session's other tests are untouched.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.publish import (
    PublishActivities,
    PublishBundleInput,
    PublishBundleResult,
    UnpublishBundleInput,
)
from adapters.manifest_store import head_key, revision_key
from adapters.pins import LEASE_KEY, PINS, PinStore, pin_key
from adapters.storage import edge_client
from skyline.manifest import Apartment, ApartmentManifest, Building, Unit, unit_files
from skyline.retention import key_from_url
from skyline.rollout import BundleSource
from skyline.settings import Settings
from tests.support.scenario import create_apartment, make_bundle, parked_strategy, unique, wait_for
from tests.support.webhooks import webhook_receiver

ENDED = {"failed", "rolled_back", "succeeded"}
LONG_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)


def publish_directly(settings: Settings, s3: Any, unit_id: str, bundle: Path) -> PublishBundleResult:
    with edge_client() as http:
        return PublishActivities(settings, s3, http).publish(
            PublishBundleInput(
                unit_id=unit_id, version="1.0.0", entry="index.js", source=BundleSource(path=str(bundle))
            )
        )


def write_expired_history(s3: Any, settings: Settings, published: PublishBundleResult, unit_id: str) -> str:
    """An apartment that served `published` 60 days ago and stopped 59 days ago: only an
    expired revision names its files."""
    apartment = unique("gcold")
    unit = Unit(
        id=f"{unit_id}@1.0.0",
        name=unit_id,
        version="1.0.0",
        url=published.entry_url,
        checksum=published.integrity,
        size=published.size,
        files=unit_files(
            "index.js", published.entry_url, published.entry_key, published.keys, published.file_integrity
        ),
    )

    def doc(n: int, at: datetime, *units: Unit) -> ApartmentManifest:
        building = Building(
            name="Header",
            category="header",
            active_unit=units[0].id if units else None,
            units={u.id: u for u in units},
        )
        return ApartmentManifest(
            version=str(n),
            timestamp=at.isoformat(),
            apartments={apartment: Apartment(name="Shop", buildings={"header": building})},
        )

    history = [doc(1, LONG_AGO, unit), doc(2, LONG_AGO + timedelta(days=1))]
    for m in history:
        s3.put_object(
            Bucket=settings.s3_bucket, Key=revision_key(apartment, m.revision), Body=m.to_json_bytes()
        )
    s3.put_object(Bucket=settings.s3_bucket, Key=head_key(apartment), Body=history[-1].to_json_bytes())
    return apartment


def rollout_request(apartment: str, unit_id: str, bundle: Path, **extra: Any) -> dict[str, Any]:
    return {
        "apartment": apartment,
        "building": "header",
        "unit_id": unit_id,
        "version": "2.0.0",
        "bundle": {"path": str(bundle)},
        # One step at 100 %, then a long bake: the head names the bundle and stays so.
        "strategy": parked_strategy(steps=[100]),
        "actor": "tests",
        **extra,
    }


async def start(api: httpx.AsyncClient, request: dict[str, Any]) -> str:
    response = await api.post("/rollouts", json=request)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def collect(api: httpx.AsyncClient, apartment: str) -> dict[str, Any]:
    response = await api.post(
        "/storage/gc", json={"dry_run": False, "apartment": apartment, "actor": "tests"}
    )
    if response.status_code == 409 and response.json()["error"]["code"] == "collection_running":
        return {"deleted": 0, "pinned": 0, "busy": True}
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def named_keys_of(doc: dict[str, Any], settings: Settings) -> set[str]:
    """Every bundles/ key any unit of the document names (url and files)."""
    keys: set[str] = set()
    for apartment in doc["apartments"].values():
        for building in apartment["buildings"].values():
            for unit in building["units"].values():
                urls = [unit["url"], *(f["url"] for f in (unit.get("files") or {}).values())]
                for url in urls:
                    key = key_from_url(url, settings.public_url(""), settings.s3_bucket)
                    if key is not None and key.startswith("bundles/"):
                        keys.add(key)
    return keys


async def missing_anywhere(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, s3: Any, settings: Settings, apartments: list[str]
) -> list[str]:
    """Keys some revision of these apartments names that the origin or the edge answers 404 for."""
    missing: list[str] = []
    for apartment in apartments:
        numbers = (await api.get(f"/apartments/{apartment}/revisions")).json()["revisions"]
        keys: set[str] = set()
        for n in numbers:
            doc = (await api.get(f"/apartments/{apartment}/revisions/{n}")).json()
            keys |= named_keys_of(doc, settings)
        for key in sorted(keys):
            listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=key).get("Contents", [])
            if not any(item["Key"] == key for item in listed):
                missing.append(f"origin {key}")
            answer = await edge.get(settings.edge_path(key))
            if answer.status_code != 200:
                missing.append(f"edge {answer.status_code} {key}")
    return missing


async def roll_back(api: httpx.AsyncClient, rollout_ids: list[str]) -> None:
    for rollout_id in rollout_ids:
        await api.post(f"/rollouts/{rollout_id}/rollback", json={"actor": "tests", "reason": "test done"})


async def test_gc_during_a_slow_pre_rollout_webhook_keeps_the_deduplicated_files(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """The issue's race: a byte-identical bundle in a new apartment (dedup: nothing uploaded)
    waits on a slow pre_rollout webhook while gc deletes what only an expired revision named."""
    unit_id = unique("gcrace")
    bundle = make_bundle(tmp_path / "bundle", "2.0.0")
    published = publish_directly(settings, s3, unit_id, bundle)
    old = write_expired_history(s3, settings, published, unit_id)
    dry = (await api.post("/storage/gc", json={"dry_run": True, "apartment": old})).json()
    wanted = {c["key"] for c in dry["collect"]}  # every file the manifest names (not source maps)
    assert published.entry_key in wanted and len(wanted) >= 5, wanted

    apartment = await create_apartment(api, active_header=None)
    with webhook_receiver() as hook:
        hook.hold = threading.Event()
        hook_spec = {"event": "pre_rollout", "url": hook.url + "/pre", "timeout_seconds": 90, "retries": 0}
        rollout_id = await start(api, rollout_request(apartment, unit_id, bundle, webhooks=[hook_spec]))
        try:
            assert await asyncio.to_thread(hook.arrived.wait, 60), "the pre_rollout webhook was never called"
            audit = (await api.get(f"/rollouts/{rollout_id}/audit")).json()
            assert any(e["action"] == "published" and "(0 uploaded," in e["reason"] for e in audit), audit
            result = await collect(api, old)
            hook.hold.set()
            await wait_for(
                api, rollout_id, lambda s: bool(s["revisions"]) or s["state"] in {"failed", "rolled_back"}
            )
            status = (await api.get(f"/rollouts/{rollout_id}")).json()
            assert status["state"] == "progressing" and status["revisions"], status
            assert await missing_anywhere(api, edge, s3, settings, [apartment]) == []
            assert result["deleted"] == 0 and result["pinned"] == len(wanted), result
        finally:
            hook.hold.set()
            await roll_back(api, [rollout_id])


def overlapping_bundle(root: Path, i: int, groups: tuple[int, ...]) -> Path:
    """Chunks byte-identical across every bundle, chunks shared by the bundles of each group,
    and an entry and a chunk of its own."""
    root.mkdir(parents=True)
    (root / "index.js").write_text(f"import './chunks/own.js'; export const v = {i};\n")
    (root / "chunks").mkdir()
    (root / "chunks" / "own.js").write_text(f"export const own = {i};\n")
    for k in range(3):
        (root / "chunks" / f"all-{k}.js").write_text(f"export const all{k} = {k};\n")
        for g in groups:
            (root / "chunks" / f"group{g}-{k}.js").write_text(f"export const g{g}k{k} = {k};\n")
    return root


# Its own waits are up to 240 s (the webhook, then the ends), then a scan of every file; 205 s
# and 303 s in two CI runs on a slowed machine, over the suite's 300 s default.
@pytest.mark.timeout(600)
async def test_gc_looping_while_20_rollouts_publish_overlapping_bundles_loses_nothing(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """Two waves of 10 (the worker's activity slots hold a wave's webhook calls): each wave
    shares chunks across the wave and with the other, and an expired revision names them all.
    Every rollout holds between publishing and its first write until its whole wave has
    published, while gc runs in a loop the whole time."""
    unit_id = unique("gcmany")
    published = publish_directly(settings, s3, unit_id, overlapping_bundle(tmp_path / "old", -1, (0, 1)))
    old = write_expired_history(s3, settings, published, unit_id)
    apartments = [await create_apartment(api, active_header=None) for _ in range(20)]
    rollout_ids: list[str] = []
    collections: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def collect_in_a_loop() -> None:
        while not stop.is_set():
            collections.append(await collect(api, old))
            await asyncio.sleep(0.3)  # pacing: the publishes share the S3 server with it

    async def statuses(ids: list[str]) -> list[dict[str, Any]]:
        return [(await api.get(f"/rollouts/{r}")).json() for r in ids]

    with webhook_receiver() as hook:
        hook_spec = {"event": "pre_rollout", "url": hook.url + "/pre", "timeout_seconds": 120, "retries": 0}
        collector = asyncio.create_task(collect_in_a_loop())
        try:
            for wave in (0, 1):
                hold = hook.hold = threading.Event()
                ids = []
                for i in range(wave * 10, wave * 10 + 10):
                    bundle = overlapping_bundle(tmp_path / f"b{i}", i, (wave,))
                    ids.append(
                        await start(
                            api, rollout_request(apartments[i], unit_id, bundle, webhooks=[hook_spec])
                        )
                    )
                rollout_ids += ids
                deadline = time.monotonic() + 120
                while True:
                    ended = [(s["state"], s["reason"]) for s in await statuses(ids) if s["state"] in ENDED]
                    if hook.arrivals + len(ended) >= len(rollout_ids):
                        break
                    assert time.monotonic() < deadline, f"{hook.arrivals} rollouts reached the webhook"
                    await asyncio.sleep(0.5)
                assert ended == [], ended  # a publish that lost a race fails its rollout
                rounds = len(collections)
                while True:  # at least one whole collection after the wave's last publish
                    if len(collections) >= rounds + 2:
                        break
                    await asyncio.sleep(0.1)
                hold.set()
                while True:
                    seen = await statuses(ids)
                    if all(s["revisions"] or s["state"] in ENDED for s in seen):
                        break
                    assert time.monotonic() < deadline + 120, [s["state"] for s in seen]
                    await asyncio.sleep(0.5)
                assert all(s["revisions"] for s in seen), [(s["state"], s["reason"]) for s in seen]
            stop.set()
            await collector
            collections.append(await collect(api, old))
            assert await missing_anywhere(api, edge, s3, settings, apartments) == []
            # the old entry and its own chunk did go; the shared chunks were pinned
            assert sum(c["deleted"] for c in collections) > 0 and any(c["pinned"] for c in collections)
        finally:
            if hook.hold is not None:
                hook.hold.set()
            stop.set()
            await collector
            await roll_back(api, rollout_ids)


async def test_pins_of_ended_rollouts_are_swept_and_the_lease_is_released(
    api: httpx.AsyncClient, s3: Any, settings: Settings
) -> None:
    """After a collection no lease is left behind (a publisher would wait on it), and no pin
    of a workflow Temporal does not know survives it."""
    bogus = f"{PINS}rollout.{unique('gone')}/run.json"
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=bogus,
        Body=b'{"workflow_id": "rollout.gone-for-good", "run_id": "r", "keys": ["bundles/x/y.js"]}',
    )
    apartment = await create_apartment(api, active_header=None)
    assert (await api.post("/storage/gc", json={"dry_run": False, "apartment": apartment})).status_code == 200
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=bogus).get("Contents", [])
    assert listed == []
    lease = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=LEASE_KEY).get("Contents", [])
    assert lease == []


async def test_gc_purges_what_it_deletes_from_the_edge(
    api: httpx.AsyncClient, edge: httpx.AsyncClient, s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """A collected file is gone at the edge too, not served from its year-long cache."""
    unit_id = unique("gcpurge")
    published = publish_directly(settings, s3, unit_id, make_bundle(tmp_path / "bundle", "1.0.0"))
    old = write_expired_history(s3, settings, published, unit_id)
    assert published.entry_key is not None
    path = settings.edge_path(published.entry_key)
    assert (await edge.get(path)).status_code == 200  # cached at the edge now
    result = await collect(api, old)
    assert result["deleted"] >= 1, result
    assert (await edge.get(path)).status_code == 404
    assert result["purged"] == result["deleted"], result


def test_unpublish_keeps_what_another_running_rollout_pinned(s3: Any, settings: Settings) -> None:
    """The other deleter: a rollout taking back its untrafficked bundle keeps a file another run
    found stored (dedup) and pinned, though no manifest names it yet; its own pin does not count."""
    name = unique("pinpub")
    ours = [f"bundles/{name}/index.300.js", f"bundles/{name}/chunk-P.js"]
    for key in ours:
        s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"x")
    pins = PinStore(s3, settings.s3_bucket)
    pins.pin(f"rollout.{name}-mine", "run", ours)
    pins.pin(f"rollout.{name}-other", "run", [ours[1]])
    with edge_client() as http:
        publisher = PublishActivities(settings, s3, http)
        request = UnpublishBundleInput(prefix=f"bundles/{name}/", keys=ours, entry_key=ours[0])
        kept = publisher.unpublish(request, own_workflow=f"rollout.{name}-mine")
        assert kept.deleted == 0 and "pinned by a running rollout" in (kept.kept_reason or ""), kept
        s3.delete_object(Bucket=settings.s3_bucket, Key=pin_key(f"rollout.{name}-other", "run"))
        gone = publisher.unpublish(request, own_workflow=f"rollout.{name}-mine")
    assert gone.deleted == 2
    s3.delete_object(Bucket=settings.s3_bucket, Key=pin_key(f"rollout.{name}-mine", "run"))
