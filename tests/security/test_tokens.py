"""Items 2 and 6 (tokens): no mint or revocation lost under concurrency, revocation bounded
across API processes, token records private (one object each under private/tokens/)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import LEGACY_TOKENS_KEY, TOKENS_PREFIX, TokenRecord, hash_token
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until
from tests.support.scenario import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADMIN = "tok-sec-admin"
BOUND = 2.0  # SKYLINE_TOKEN_CACHE_SECONDS given to both API processes below
LEGACY = "sky_legacy-token-from-the-old-document"
MIGRATED: dict[str, str] = {}


@pytest.fixture(scope="module")
def two_apis(
    stack: EmbeddedStack, s3: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """Two API processes with auth on, sharing the stack's storage, like two replicas."""
    legacy_name = unique("legacy")
    legacy = [{"name": legacy_name, "role": "viewer", "sha256": hash_token(LEGACY)}]
    # A document in the old, public location: migrated once, then gone.
    s3.put_object(Bucket=settings.s3_bucket, Key=LEGACY_TOKENS_KEY, Body=json.dumps(legacy).encode())
    logs = tmp_path_factory.mktemp("token-apis")
    processes, urls = [], []
    for i in range(2):
        port = free_port()
        env = {
            **os.environ,
            **stack.env(),
            "SKYLINE_API_PORT": str(port),
            "SKYLINE_AUTH_TOKENS": json.dumps([f"sec-admin:admin:{hash_token(ADMIN)}"]),
            "SKYLINE_TOKEN_CACHE_SECONDS": str(BOUND),
        }
        process = ManagedProcess(
            f"token-api-{i}",
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
            logs / f"api-{i}.log",
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        process.start()
        processes.append(process)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_until(partial(healthy, url), 60, "token api", process)
        MIGRATED["name"] = legacy_name
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.stop()


def healthy(url: str) -> bool:
    return httpx.get(url + "/healthz").status_code == 200


ADMIN_H = {"authorization": f"Bearer {ADMIN}"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def stored(s3: Any, settings: Settings) -> dict[str, TokenRecord]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix=TOKENS_PREFIX):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=settings.s3_bucket, Key=item["Key"])["Body"].read()
            record = TokenRecord.model_validate_json(body)
            found[record.name] = record
    return found


async def test_ten_concurrent_mints_are_all_stored(
    two_apis: tuple[str, str], s3: Any, settings: Settings
) -> None:
    a, b = two_apis
    names = [unique("bot") for _ in range(10)]
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{(a, b)[i % 2]}/tokens", json={"name": n, "role": "viewer"}, headers=ADMIN_H)
                for i, n in enumerate(names)
            )
        )
        assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers]
        records = stored(s3, settings)
        assert set(names) <= set(records)
        for answer in answers:
            token = answer.json()["token"]
            assert records[answer.json()["name"]].sha256 == hash_token(token)
            assert token not in json.dumps({k: v.model_dump() for k, v in records.items()})
        listed = {t["name"] for t in (await client.get(f"{a}/tokens", headers=ADMIN_H)).json()}
        assert set(names) <= listed
        # One name is taken once, even by concurrent mints.
        same = unique("same")
        raced = await asyncio.gather(
            *(
                client.post(f"{u}/tokens", json={"name": same, "role": "viewer"}, headers=ADMIN_H)
                for u in (a, b, a)
            )
        )
        assert sorted(r.status_code for r in raced) == [201, 409, 409]


async def test_a_revocation_raced_by_mints_holds_in_every_process(two_apis: tuple[str, str]) -> None:
    a, b = two_apis
    async with httpx.AsyncClient(timeout=60) as client:
        for _trial in range(3):
            victim = unique("victim")
            minted = await client.post(
                f"{a}/tokens", json={"name": victim, "role": "deployer"}, headers=ADMIN_H
            )
            token = minted.json()["token"]
            await asyncio.sleep(BOUND + 0.5)  # a new token, too, is seen everywhere within the bound
            # Both processes have seen (and cached) the token.
            for url in (a, b):
                assert (await client.get(f"{url}/rollouts", headers=bearer(token))).status_code == 200
            others = [unique("racer") for _ in range(3)]
            answers = await asyncio.gather(
                client.delete(f"{a}/tokens/{victim}", headers=ADMIN_H),
                *(
                    client.post(f"{(b, a, b)[i]}/tokens", json={"name": n, "role": "viewer"}, headers=ADMIN_H)
                    for i, n in enumerate(others)
                ),
            )
            assert answers[0].status_code == 204
            assert [r.status_code for r in answers[1:]] == [201, 201, 201]
            await asyncio.sleep(BOUND + 0.5)
            for url in (a, b):
                refused = await client.get(f"{url}/rollouts", headers=bearer(token))
                assert refused.status_code == 401, (url, refused.text)
                for answer in answers[1:]:
                    ok = await client.get(f"{url}/rollouts", headers=bearer(answer.json()["token"]))
                    assert ok.status_code == 200


async def test_tokens_are_not_in_the_public_document_any_more(
    two_apis: tuple[str, str], s3: Any, settings: Settings, edge: httpx.AsyncClient
) -> None:
    a, _ = two_apis
    async with httpx.AsyncClient(timeout=60) as client:
        # The old document's token still works, read once and moved under private/.
        assert (await client.get(f"{a}/rollouts", headers=bearer(LEGACY))).status_code == 200
    assert MIGRATED["name"] in stored(s3, settings)
    public = await edge.get(f"/{settings.s3_bucket}/{LEGACY_TOKENS_KEY}")
    assert public.status_code in (403, 404)
    assert hash_token(LEGACY) not in public.text
    # the migrated document is gone (other tests plant decoys elsewhere under auth/ for the edge)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix="auth/").get("Contents", [])
    ]
    assert LEGACY_TOKENS_KEY not in keys
