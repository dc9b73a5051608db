"""The embedded stack's infrastructure components, started for real on ephemeral ports.

Temporal dev server, moto S3, Varnish and Prometheus run as child processes
(no worker/API: those are other modules' business); the assertions are about
what a browser, a purger and the analysis code observe.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from skyline.settings import Settings
from stack.embedded import EmbeddedStack, StackPorts
from stack.processes import StackError, wait_until
from tests.stack.helpers import group_members, process_exists

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COMPONENTS = {"temporal", "s3", "redis", "edge", "prometheus"}


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(
        tmp_path_factory.mktemp("infra"),
        StackPorts.ephemeral(),
        COMPONENTS,
        prometheus_scrape_interval="1s",
        search_attributes={"SkylineApartment": "Keyword"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def bucket(infra: EmbeddedStack) -> str:
    return infra.settings.s3_bucket


@pytest.fixture(scope="module")
def s3_admin(infra: EmbeddedStack) -> S3Client:
    env = infra.env()
    return boto3.client(
        "s3",
        endpoint_url=env["SKYLINE_S3_ENDPOINT_URL"],
        region_name=env["SKYLINE_S3_REGION"],
        aws_access_key_id=env["SKYLINE_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["SKYLINE_AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture()
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _key(prefix: str) -> str:
    # The edge serves manifests/, bundles/ and loader/ only.
    return f"manifests/tests-{prefix}-{uuid.uuid4().hex[:10]}/manifest.json"


def _put(s3: S3Client, bucket: str, key: str, body: bytes, cache_control: str) -> None:
    s3.put_object(
        Bucket=bucket, Key=key, Body=body, CacheControl=cache_control, ContentType="application/json"
    )


def test_env_points_at_the_stack(infra: EmbeddedStack) -> None:
    env = infra.env()
    settings = Settings.model_validate({k.removeprefix("SKYLINE_").lower(): v for k, v in env.items()})
    assert settings.temporal_address == f"127.0.0.1:{infra.ports.temporal}"
    assert settings.s3_endpoint_url == f"http://127.0.0.1:{infra.ports.s3}"
    assert settings.edge_url == f"http://127.0.0.1:{infra.ports.edge}"
    assert settings.prometheus_url == f"http://127.0.0.1:{infra.ports.prometheus}"
    assert settings.api_port == infra.ports.api
    assert settings.state_dir == infra.state_dir
    names = [name for name, _ in infra.endpoints()]
    assert names == ["Temporal gRPC", "Temporal UI", "S3 API", "Redis", "Edge (Varnish)", "Prometheus"]
    assert (infra.state_dir / "logs" / "edge.log").is_file()
    assert (infra.state_dir / "config" / "skyline.vcl").is_file()
    assert (infra.state_dir / "temporal.db").is_file()


def test_edge_serves_s3_objects_miss_then_hit(
    infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    key = _key("hit")
    _put(s3_admin, bucket, key, b'{"v": 1}', "public, max-age=30")
    url = f"{infra.edge_url}/{bucket}/{key}"

    first = browser.get(url)
    assert first.status_code == 200, first.text
    assert first.content == b'{"v": 1}'
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-control"] == "public, max-age=30"
    assert "age" in first.headers
    assert "set-cookie" not in first.headers

    second = browser.get(url)
    assert second.headers["x-cache"] == "HIT"
    assert second.content == b'{"v": 1}'

    head = browser.head(url)
    assert head.status_code == 200
    assert head.headers["x-cache"] == "HIT"


def test_overwrite_is_served_only_after_a_purge(
    infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    key = _key("purge")
    url = f"{infra.edge_url}/{bucket}/{key}"
    _put(s3_admin, bucket, key, b"revision-1", "public, max-age=30")
    assert browser.get(url).content == b"revision-1"

    _put(s3_admin, bucket, key, b"revision-2", "public, max-age=30")
    stale = browser.get(url)
    assert (stale.content, stale.headers["x-cache"]) == (b"revision-1", "HIT")

    purged = browser.request("PURGE", url)
    assert purged.status_code == 200
    assert purged.text.strip() == "purged"

    fresh = browser.get(url)
    assert (fresh.content, fresh.headers["x-cache"]) == (b"revision-2", "MISS")


def test_purge_ignores_the_host_the_object_was_fetched_with(
    infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    key = _key("host")
    path = f"/{bucket}/{key}"
    _put(s3_admin, bucket, key, b"a", "public, max-age=30")
    assert browser.get(f"{infra.edge_url}{path}", headers={"Host": "cdn.example"}).content == b"a"
    _put(s3_admin, bucket, key, b"b", "public, max-age=30")
    assert browser.request("PURGE", f"{infra.edge_url}{path}").status_code == 200
    assert browser.get(f"{infra.edge_url}{path}", headers={"Host": "cdn.example"}).content == b"b"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_edge_refuses_writes(
    method: str, infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    key = _key("write")
    _put(s3_admin, bucket, key, b"original", "public, max-age=30")
    url = f"{infra.edge_url}/{bucket}/{key}"

    response = browser.request(method, url, content=b"overwritten")
    assert response.status_code == 405, response.text
    assert "GET" in response.headers["allow"]

    body = s3_admin.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"original"


def test_errors_are_cached_for_at_most_a_second(
    infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    key = _key("missing")
    url = f"{infra.edge_url}/{bucket}/{key}"
    assert browser.get(url).status_code == 404
    _put(s3_admin, bucket, key, b"now here", "public, max-age=30")
    started = time.monotonic()
    wait_until(lambda: browser.get(url).status_code == 200, 5.0, "object after a cached 404")
    assert time.monotonic() - started < 2.5
    assert browser.get(url).content == b"now here"


def test_short_lived_objects_are_never_delivered_stale(
    infra: EmbeddedStack, s3_admin: S3Client, bucket: str, browser: httpx.Client
) -> None:
    """max-age < 60 s means no grace: after expiry the edge refetches before answering."""
    max_age = 2
    key = _key("grace")
    url = f"{infra.edge_url}/{bucket}/{key}"
    _put(s3_admin, bucket, key, b"old", f"public, max-age={max_age}")
    assert browser.get(url).content == b"old"
    _put(s3_admin, bucket, key, b"new", f"public, max-age={max_age}")

    seen: list[tuple[bytes, int]] = []

    def refreshed() -> bool:
        response = browser.get(url)
        seen.append((response.content, int(response.headers["age"])))
        return response.content == b"new"

    wait_until(refreshed, max_age + 4.0, "refetch after expiry", interval=0.05)
    stale = [(body, age) for body, age in seen if body == b"old" and age >= max_age]
    assert not stale, f"stale deliveries after expiry: {stale}"


def test_purging_a_path_never_cached_is_a_successful_no_op(
    infra: EmbeddedStack, bucket: str, browser: httpx.Client
) -> None:
    # Purging something never cached is still a successful no-op for the purger.
    response = browser.request("PURGE", f"{infra.edge_url}/{bucket}/{_key('never')}")
    assert response.status_code == 200


def test_redis_answers_and_keeps_its_data_in_memory_only(infra: EmbeddedStack) -> None:
    import redis

    client = redis.Redis.from_url(infra.env()["SKYLINE_REDIS_URL"])
    assert client.ping()
    assert client.incr("skyline:test:counter") >= 1
    assert client.config_get("save")["save"] == ""  # nothing to restore after a restart


def test_prometheus_is_ready_and_answers_queries(infra: EmbeddedStack, browser: httpx.Client) -> None:
    assert browser.get(f"{infra.prometheus_url}/-/ready").status_code == 200
    result: list[dict[str, object]] = []

    def has_up() -> bool:
        response = browser.get(f"{infra.prometheus_url}/api/v1/query", params={"query": "up"})
        response.raise_for_status()
        result[:] = response.json()["data"]["result"]
        return bool(result)

    wait_until(has_up, 15.0, "prometheus `up` series")
    jobs = {str(sample["metric"]["job"]) for sample in result}  # type: ignore[index]
    assert "skyline-api" in jobs


async def test_temporal_accepts_clients_with_registered_search_attributes(
    infra: EmbeddedStack,
) -> None:
    client = await Client.connect(infra.temporal_address, namespace=infra.settings.temporal_namespace)
    attributes = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=infra.settings.temporal_namespace)
    )
    assert "SkylineApartment" in attributes.custom_attributes
    async with httpx.AsyncClient(timeout=5) as http:
        ui = await http.get(f"http://127.0.0.1:{infra.ports.temporal_ui}/")
    assert ui.status_code == 200


def test_port_conflict_names_component_and_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = StackPorts.ephemeral()
        ports.prometheus = port
        stack = EmbeddedStack(tmp_path, ports, {"s3", "prometheus"})
        with pytest.raises(StackError, match=rf"prometheus: port {port} \(prometheus\)"):
            stack.start()
        assert stack.pids() == {}


def test_a_component_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    fake_python.write_text("#!/bin/sh\necho 'boom: api.main has no app' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    stack = EmbeddedStack(tmp_path / "state", StackPorts.ephemeral(), {"api"}, python=str(fake_python))
    with pytest.raises(StackError) as failure:
        stack.start()
    message = str(failure.value)
    assert "api: process exited with code 3" in message
    assert "boom: api.main has no app" in message
    assert stack.pids() == {}


def test_stop_leaves_no_process_behind(infra: EmbeddedStack) -> None:
    """Runs last in this module: stops the shared stack."""
    pids = infra.pids()
    assert set(pids) == COMPONENTS
    members = group_members(set(pids.values()))
    assert set(pids.values()) <= members  # varnishd's cache child is in its group too
    assert len(members) > len(pids)

    infra.stop()

    assert infra.pids() == {}
    assert [pid for pid in members if process_exists(pid)] == []
    infra.stop()  # idempotent
