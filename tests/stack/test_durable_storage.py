"""The embedded stack keeps its storage: across a clean restart, and across a SIGKILL of the S3 server.

Apartments, manifest revisions (still growing after the restart), published
bundles and minted tokens are written through the real API and activities,
then read back after the stack (or only its storage server) came back on the
same state dir. A wiped storage dir while Temporal keeps its rollouts is
reported, at start-up and by the API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from temporalio.client import Client

from activities.publish import PublishActivities, PublishBundleInput
from adapters.manifest_store import ManifestStore
from adapters.search_attributes import REGISTRATION, initial
from adapters.storage import s3_client
from api.auth import hash_token
from skyline.manifest import Apartment, Building, ManifestChange
from skyline.manifest_ops import CreateApartment, RestoreApartment
from skyline.rollout import BundleSource
from skyline.settings import Settings
from stack.embedded import EmbeddedStack, StackPorts
from stack.processes import wait_until
from tests.stack.helpers import process_exists

pytestmark = pytest.mark.timeout(240)

COMPONENTS = {"temporal", "s3", "api"}
BOOT = "sky_boot-" + uuid.uuid4().hex


def _settings(stack: EmbeddedStack) -> Settings:
    values = {k.removeprefix("SKYLINE_").lower(): v for k, v in stack.env().items()}
    return Settings.model_validate(values)


def _stack(state: Path, messages: list[str] | None = None) -> EmbeddedStack:
    return EmbeddedStack(
        state,
        StackPorts.ephemeral(),
        COMPONENTS,
        search_attributes=REGISTRATION,
        progress=(messages.append if messages is not None else None),
    )


@pytest.fixture()
def auth_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    # The API process inherits the environment: a bootstrap admin turns auth on.
    monkeypatch.setenv("SKYLINE_AUTH_TOKENS", json.dumps([f"boot:admin:{hash_token(BOOT)}"]))
    yield {"authorization": f"Bearer {BOOT}"}


def _apartment(apartment: str) -> dict[str, Any]:
    return {
        "id": apartment,
        "actor": "alice",
        "apartment": {"name": "Shop", "buildings": {"header": {"name": "Header", "category": "header"}}},
    }


def _new_revision(store: ManifestStore, apartment: str) -> int:
    found = store.read(apartment)
    assert found is not None
    manifest = found[0]
    change = ManifestChange(id=f"test/{uuid.uuid4()}", actor="test", reason="a new revision")
    restored, applied = store.apply(
        apartment,
        RestoreApartment(apartment=manifest.apartments[apartment], from_revision=manifest.revision),
        change,
    )
    assert applied
    return restored.revision


def _bundle(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "index.js").write_text("import './chunk.js'; export function mount(el) {}\n")
    (root / "chunk.js").write_text("export const x = 1;\n")
    (root / "style.css").write_text(".a { color: red; }\n")
    return root


def test_a_restarted_stack_keeps_apartments_revisions_bundles_and_tokens(
    tmp_path: Path, auth_on: dict[str, str]
) -> None:
    state = tmp_path / "state"
    first = _stack(state)
    first.start()
    try:
        settings = _settings(first)
        with httpx.Client(base_url=first.api_url, timeout=30, headers=auth_on) as api:
            assert api.post("/apartments", json=_apartment("shop")).status_code == 201
            minted = api.post("/tokens", json={"name": "ci", "role": "deployer"})
            assert minted.status_code == 201, minted.text
            token = minted.json()["token"]
        store = ManifestStore(s3_client(settings), settings.s3_bucket)
        assert _new_revision(store, "shop") == 2
        published = PublishActivities(settings, s3_client(settings), httpx.Client()).publish(
            PublishBundleInput(
                unit_id="header",
                version="1.0.0",
                entry="index.js",
                source=BundleSource(path=str(_bundle(first.bundle_root / "dist"))),
            )
        )
        before = {
            o["Key"]: o["ETag"]
            for o in s3_client(settings).list_objects_v2(Bucket=settings.s3_bucket)["Contents"]
        }
    finally:
        first.stop()

    second = _stack(state)  # other ports, same state dir
    second.start()
    try:
        settings = _settings(second)
        s3 = s3_client(settings)
        after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=settings.s3_bucket)["Contents"]}
        assert after == before  # same keys, same bytes (ETag = MD5)
        assert any(k.startswith(published.prefix) for k in after)
        with httpx.Client(base_url=second.api_url, timeout=30) as api:
            as_ci = {"authorization": f"Bearer {token}"}
            manifest = api.get("/apartments/shop/manifest", headers=as_ci)
            assert manifest.status_code == 200, manifest.text  # the minted token still works
            assert manifest.json()["version"] == "2"
            revisions = api.get("/apartments/shop/revisions", headers=as_ci).json()
            assert revisions["revisions"] == [1, 2]
            again = api.post("/apartments", json=_apartment("shop"), headers=auth_on)
            assert again.status_code == 409  # still there: never re-created at revision 1
        store = ManifestStore(s3, settings.s3_bucket)
        assert _new_revision(store, "shop") == 3  # revisions keep growing
        # the published files are served with their metadata
        entry = s3.get_object(Bucket=settings.s3_bucket, Key=published.keys["index.js"])
        assert entry["CacheControl"].endswith("immutable")
        assert entry["ContentType"].startswith("text/javascript")
    finally:
        second.stop()


def test_a_killed_storage_server_comes_back_with_its_data(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "state", StackPorts.ephemeral(), {"s3"})
    stack.start()
    try:
        settings = _settings(stack)
        s3 = s3_client(settings)
        store = ManifestStore(s3, settings.s3_bucket)
        store.apply(
            "shop",
            CreateApartment(
                apartment=Apartment(name="Shop", buildings={"main": Building(name="Main", category="main")})
            ),
            ManifestChange(id="create/shop", actor="t", reason="create"),
        )
        assert _new_revision(store, "shop") == 2
        pid = stack.pids()["s3"]

        os.kill(pid, signal.SIGKILL)  # the storage server alone
        wait_until(lambda: [p.name for p in stack.dead()] == ["s3"], 10.0, "s3 killed")
        assert not process_exists(pid)
        stack.restart("s3")

        assert stack.pids()["s3"] != pid
        found = store.read("shop")
        assert found is not None and found[0].revision == 2
        assert store.list_revisions("shop") == [1, 2]
        assert _new_revision(store, "shop") == 3
    finally:
        stack.stop()


async def _start_ghost_rollout(stack: EmbeddedStack, task_queue: str) -> None:
    """A rollout Temporal keeps (no worker here: it just stays running)."""
    client = await Client.connect(stack.temporal_address)
    await client.start_workflow(
        "RolloutWorkflow",
        {},
        id="rollout.ghost.header",
        task_queue=task_queue,
        search_attributes=initial("ghost", "header", "1.0.0"),
    )


def test_wiped_storage_is_reported_at_start_up_and_by_the_api(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _stack(state)
    first.start()
    try:
        settings = _settings(first)
        with httpx.Client(base_url=first.api_url, timeout=30) as api:
            assert api.post("/apartments", json=_apartment("ghost")).status_code == 201
        asyncio.run(_start_ghost_rollout(first, settings.task_queue))
    finally:
        first.stop()

    shutil.rmtree(state / "storage")  # storage wiped by hand; temporal.db kept
    messages: list[str] = []
    second = _stack(state, messages)
    second.start()
    try:
        assert second.storage_mismatch == {"ghost": ["rollout.ghost.header"]}
        warning = [m for m in messages if m.startswith("WARNING: storage and Temporal disagree")]
        assert warning and "'ghost'" in warning[0] and "rollout.ghost.header" in warning[0]
        with httpx.Client(base_url=second.api_url, timeout=30) as api:
            listed = api.get("/rollouts", params={"apartment": "ghost"}).json()
        assert [r["id"] for r in listed] == ["rollout.ghost.header"]
        assert "no manifest for apartment 'ghost'" in listed[0]["storage_warning"]
    finally:
        second.stop()


def _truncated_put(settings: Settings, path: str, declared: int, sent: bytes) -> bytes:
    """A PUT whose client dies mid-body: `declared` bytes announced, `sent` written, then EOF.

    Signed as boto3 signs (SigV4 over the whole body it meant to send): the server serves
    signed requests only (stack/s3auth.py), so this is what a killed worker's request looks like."""
    assert settings.s3_endpoint_url is not None
    url = httpx.URL(settings.s3_endpoint_url)
    whole = sent + b" " * (declared - len(sent))
    request = AWSRequest(method="PUT", url=f"{settings.s3_endpoint_url}{path}", data=whole)
    request.headers["Content-Type"] = "application/json"
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(whole).hexdigest()
    credentials = Credentials(
        settings.aws_access_key_id.get_secret_value(), settings.aws_secret_access_key.get_secret_value()
    )
    S3SigV4Auth(credentials, "s3", settings.s3_region).add_auth(request)
    signed = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "content-type")
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nContent-Length: {declared}\r\n"
            f"Content-Type: application/json\r\n{signed}\r\n"
        )
        sock.sendall(head.encode() + sent)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_put_cut_off_mid_body_stores_nothing(tmp_path: Path) -> None:
    """A worker SIGKILLed while it sends a manifest must not leave a torn head object: the
    storage server refuses the short body (IncompleteBody) and keeps what was there; the same
    holds after the server replays its journal."""
    stack = EmbeddedStack(tmp_path / "state", StackPorts.ephemeral(), {"s3"})
    stack.start()
    try:
        settings = _settings(stack)
        assert settings.s3_endpoint_url is not None
        s3 = s3_client(settings)
        s3.put_object(Bucket=settings.s3_bucket, Key="manifests/shop/manifest.json", Body=b'{"v": 1}')

        for key in ("manifests/shop/manifest.json", "manifests/new/manifest.json"):
            answer = _truncated_put(settings, f"/{settings.s3_bucket}/{key}", 200, b'{"v": 2, "cut')
            assert answer.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in answer, answer[:300]

        def check() -> None:
            kept = s3.get_object(Bucket=settings.s3_bucket, Key="manifests/shop/manifest.json")
            assert kept["Body"].read() == b'{"v": 1}'
            with pytest.raises(s3.exceptions.NoSuchKey):
                s3.get_object(Bucket=settings.s3_bucket, Key="manifests/new/manifest.json")

        check()
        stack.restart("s3")  # the journal holds no trace of either request
        check()
    finally:
        stack.stop()
