"""docker-compose.yml, checked without Docker: services, pinned images, ports and env vs Settings.

Docker cannot run on Skyline's machines, so the file is parsed and held
against what it must agree with: the README's service table, the settings
class (every SKYLINE_* variable is a field and validates), the ports the
settings point at, the search attributes Skyline defines, the edge and
Prometheus configs it mounts, and what scaling out requires.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest

from adapters.search_attributes import REGISTRATION
from skyline.settings import Settings
from stack.embedded import public_read_policy
from tests.deploy.compose import (
    COMPOSE_FILE,
    REQUIRED_ENV,
    ROOT,
    MissingVariable,
    bindings,
    command_text,
    environment,
    healthcheck_text,
    interpolate,
    listening,
    load,
    published,
    variables,
)

COMPOSE = load()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# The list: Temporal on PostgreSQL, its UI, MinIO, Varnish, Prometheus, worker, API.
REQUIRED = {"postgresql", "temporal", "temporal-ui", "minio", "edge", "prometheus", "worker", "api"}
SKYLINE = ("worker", "api")


def one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "")) == "no"


def settings_of(name: str) -> Settings:
    env = environment(SERVICES[name])
    values = {k.removeprefix("SKYLINE_").lower(): v for k, v in env.items() if k.startswith("SKYLINE_")}
    return Settings.model_validate(values)


def readme_services() -> set[str]:
    """Service names in the first column of the production-shape table (docs/operations.md)."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    found = re.search(r"^## Production shape.*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert found, "docs/operations.md has no '## Production shape' section"
    rows = re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", found.group(1), re.MULTILINE)
    assert rows, "the README's production-shape section has no service table"
    return set(rows)


def test_every_service_the_readme_mentions_exists() -> None:
    named = readme_services()
    assert named - SERVICES.keys() == set(), "in the README, not in docker-compose.yml"
    assert named >= REQUIRED, "the README's table misses services of the issue"


def test_the_required_services_exist_and_temporal_runs_on_postgresql() -> None:
    assert SERVICES.keys() >= REQUIRED
    temporal = environment(SERVICES["temporal"])
    assert temporal["DB"].startswith("postgres") and temporal["POSTGRES_SEEDS"] == "postgresql"
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    ui = environment(SERVICES["temporal-ui"])
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"


def version_of_project() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(project["project"]["version"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name: str) -> None:
    service = SERVICES[name]
    image = str(service.get("image", ""))
    assert image, f"{name}: give an image (with a version tag) even when it is built"
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned to a version"
    if "build" in service:
        assert image == f"skyline:{version_of_project()}", "Skyline's image carries the project version"


def test_skyline_environment_is_settings() -> None:
    fields = set(Settings.model_fields)
    for name in SKYLINE:
        env = environment(SERVICES[name])
        unknown = {
            k for k in env if k.startswith("SKYLINE_") and k.removeprefix("SKYLINE_").lower() not in fields
        }
        assert unknown == set(), f"{name}: not settings of skyline/settings.py (typo?)"
        settings_of(name)  # validates: types, bounds, TLS pairs
    assert (
        environment(SERVICES["worker"]).items()
        >= {
            k: v
            for k, v in environment(SERVICES["api"]).items()
            if k
            not in {
                "SKYLINE_API_HOST",
                "SKYLINE_API_PORT",
                "SKYLINE_BEACON_KEY",
                "SKYLINE_AUTH_TOKENS",
                "SKYLINE_COLLECTOR_URL",
            }
        }.items()
    ), "worker and API must share their connection settings"


def target(url_or_address: str) -> tuple[str, int]:
    parts = urlsplit(url_or_address if "//" in url_or_address else f"//{url_or_address}")
    assert parts.hostname and parts.port, url_or_address
    return parts.hostname, parts.port


@pytest.mark.parametrize("name", SKYLINE)
def test_addresses_in_settings_point_at_services_listening_there(name: str) -> None:
    s = settings_of(name)
    host, port = target(s.temporal_address)
    assert host == "temporal" and port in listening(SERVICES["temporal"])
    assert s.s3_endpoint_url is not None
    host, port = target(s.s3_endpoint_url)
    assert host == "minio" and port in listening(SERVICES["minio"])
    host, port = target(s.prometheus_url)
    assert host == "prometheus" and port in listening(SERVICES["prometheus"])
    assert s.redis_url is not None
    host, port = target(s.redis_url)
    assert host == "valkey" and port in listening(SERVICES["valkey"])
    assert s.cdn_provider == "varnish"
    for url in (s.edge_url, s.purge_base_url):
        host, port = target(url)
        # Purges go to the edge's alias on the purge network (test_fail_closed.py).
        edge_names = {"edge", *SERVICES["edge"]["networks"]["purge"]["aliases"]}
        assert host in edge_names, url
        assert f"=:{port}," in command_text(SERVICES["edge"]), "varnishd listens where the settings point"
        # same port inside and out: the URL written into manifests works from the host too
        assert published(SERVICES["edge"]).get(port) == port


def test_api_port_agrees_everywhere() -> None:
    s = settings_of("api")
    api = SERVICES["api"]
    assert command_text(api) == "python\n-m\napi"  # reads SKYLINE_API_HOST / SKYLINE_API_PORT
    assert s.api_host == "0.0.0.0"
    assert published(api) == {s.api_port: s.api_port}
    assert f"127.0.0.1:{s.api_port}/" in healthcheck_text(api)


def test_worker_is_scalable_and_exports_metrics() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    assert "ports" not in worker, "a fixed host port would stop `--scale worker=3`"
    s = settings_of("worker")
    assert s.worker_metrics_address is not None
    host, port = target(s.worker_metrics_address)
    assert host == "0.0.0.0"
    assert [int(p) for p in worker["expose"]] == [port]
    assert f"127.0.0.1:{port}/metrics" in healthcheck_text(worker)
    prometheus = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert json.dumps([{"names": ["worker"], "type": "A", "port": port}]) in prometheus


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_docker_waits_longer_than_the_graceful_shutdown() -> None:
    s = settings_of("worker")
    assert seconds(SERVICES["worker"]["stop_grace_period"]) > s.worker_graceful_shutdown_seconds


def test_search_attributes_are_registered_before_skyline_starts() -> None:
    setup = SERVICES["temporal-setup"]
    script = command_text(setup)
    registered = dict(re.findall(r"\b(Skyline[A-Za-z]+)=([A-Za-z]+)\b", script))
    assert registered == REGISTRATION
    assert "temporal operator search-attribute create" in script
    assert environment(setup)["TEMPORAL_ADDRESS"] == settings_of("worker").temporal_address
    assert environment(setup)["TEMPORAL_NAMESPACE"] == settings_of("worker").temporal_namespace
    assert setup["depends_on"]["temporal"]["condition"] == "service_healthy"
    for name in SKYLINE:
        assert SERVICES[name]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def test_storage_credentials_bucket_and_edge_policy_agree() -> None:
    s = settings_of("worker")
    minio = environment(SERVICES["minio"])
    assert minio["MINIO_ROOT_USER"] == s.aws_access_key_id.get_secret_value()
    assert minio["MINIO_ROOT_PASSWORD"] == s.aws_secret_access_key.get_secret_value()
    script = command_text(SERVICES["minio-setup"])
    assert f"mc mb --ignore-existing skyline/{s.s3_bucket}" in script
    policy = re.search(r"^(\{.*\})$", script, re.MULTILINE)
    assert policy, script
    assert json.loads(policy.group(1)) == json.loads(public_read_policy(s.s3_bucket))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_long_running_services_have_healthchecks(name: str) -> None:
    service = SERVICES[name]
    if one_shot(service):
        assert "healthcheck" not in service
        return
    check = service.get("healthcheck") or {}
    assert check.get("test"), f"{name} has no healthcheck"
    assert check.get("interval") and check.get("retries")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_wait_for_health_or_completion(name: str) -> None:
    depends = SERVICES[name].get("depends_on") or {}
    assert isinstance(depends, dict), f"{name}: use the long form with a condition"
    for other, spec in depends.items():
        assert other in SERVICES
        condition = spec["condition"]
        if one_shot(SERVICES[other]):
            assert condition == "service_completed_successfully", (name, other)
        else:
            assert condition == "service_healthy" and "healthcheck" in SERVICES[other], (name, other)


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_the_edge_lets_only_the_purge_network_purge() -> None:
    # The full checks (who joins it, its gateway, a real Varnish) are in test_fail_closed.py.
    subnet = COMPOSE["networks"]["purge"]["ipam"]["config"][0]["subnet"]
    address, bits = subnet.split("/")
    vcl = (ROOT / "deploy" / "varnish" / "skyline.vcl").read_text(encoding="utf-8")
    acl = vcl[vcl.index("acl purgers") : vcl.index("}", vcl.index("acl purgers"))]
    assert f'"{address}"/{bits};' in acl


def test_interpolation_helper() -> None:
    assert interpolate("${A:-x}/$${B}") == "x/${B}"
    assert interpolate("${A:?set A}", {"A": "a"}) == "a"
    with pytest.raises(MissingVariable, match="A: set A"):
        interpolate("${A:?set A}", {})


# ------------------------------------------------------------------ exposure (issue 12, item 4)

# Reachable from other machines: browsers post beacons to the collectors and read the edge;
# release managers call the API (behind tokens, test_fail_closed.py).
PUBLIC = {"api", "edge", "collector"}
LOOPBACK = "127.0.0.1"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_only_the_api_and_the_edge_are_published_beyond_loopback(name: str) -> None:
    for address, host_port, container in bindings(SERVICES[name]):
        if name in PUBLIC:
            continue
        assert address == LOOPBACK, (
            f"{name} publishes {container} on {address or 'every interface'}:{host_port}; "
            "keep it on the compose network or bind it to 127.0.0.1 with a comment"
        )
    if name not in PUBLIC and SERVICES[name].get("ports"):
        # A loopback binding says why, in a comment just above it.
        lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
        start = lines.index(f"  {name}:")
        block = lines[start + 1 : start + 1 + next(
            (i for i, line in enumerate(lines[start + 1 :]) if re.match(r"^  [a-z]", line)), len(lines)
        )]  # fmt: skip
        at = next(i for i, line in enumerate(block) if line.strip().startswith("ports:"))
        assert block[at - 1].strip().startswith("#"), f"{name}: say why {LOOPBACK} is enough"


def test_temporal_postgresql_and_minio_are_on_the_compose_network_only() -> None:
    for name in ("temporal", "postgresql", "minio"):
        assert not SERVICES[name].get("ports"), f"{name} must not be published on the host"
    assert {7233} <= listening(SERVICES["temporal"])
    assert {9000} <= listening(SERVICES["minio"])


def test_the_temporal_ui_is_loopback_only_or_behind_oidc() -> None:
    ui = SERVICES["temporal-ui"]
    env = environment(ui)
    if env.get("TEMPORAL_AUTH_ENABLED") == "true":
        for required in (
            "TEMPORAL_AUTH_PROVIDER_URL",
            "TEMPORAL_AUTH_CLIENT_ID",
            "TEMPORAL_AUTH_CALLBACK_URL",
        ):
            assert env.get(required), required
    else:
        assert all(address == LOOPBACK for address, _, _ in bindings(ui)), bindings(ui)
    # The OIDC switch is wired, so turning it on is configuration, not an edit of this file.
    with_oidc = {
        **REQUIRED_ENV,
        "TEMPORAL_AUTH_ENABLED": "true",
        "TEMPORAL_AUTH_PROVIDER_URL": "https://login.example",
        "TEMPORAL_AUTH_CLIENT_ID": "temporal-ui",
    }
    raw = {str(k): str(v) for k, v in (ui.get("environment") or {}).items()}
    resolved = {k: interpolate(v, with_oidc) for k, v in raw.items()}
    assert resolved["TEMPORAL_AUTH_ENABLED"] == "true"
    assert resolved["TEMPORAL_AUTH_PROVIDER_URL"] == "https://login.example"
    assert resolved["TEMPORAL_AUTH_CLIENT_ID"] == "temporal-ui"
    assert "TEMPORAL_AUTH_CLIENT_SECRET" in resolved and "TEMPORAL_AUTH_CALLBACK_URL" in resolved


CREDENTIAL = re.compile(r"PASSWORD|SECRET|_KEY$|ROOT_USER|AUTH_TOKENS")


def test_no_credential_has_a_default() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    found = variables(text)
    credentials = {name for name, _, _ in found if CREDENTIAL.search(name)}
    assert credentials >= set(REQUIRED_ENV), "every required credential is read from the environment"
    for name, operator, argument in found:
        if not CREDENTIAL.search(name):
            continue
        if name in REQUIRED_ENV:
            assert operator == ":?", f"${{{name}}} must be required (${{{name}:?...}}), not {operator!r}"
        else:
            # Optional integrations (the UI's OIDC secret) default to nothing, never to a value.
            assert operator in (":-", "") and argument == "", (name, operator, argument)
    for value in ("skyline-secret", "minioadmin", ":-temporal}"):
        assert value not in text, value
    # Without them, `docker compose up` stops and names the variable.
    for name in REQUIRED_ENV:
        missing = {k: v for k, v in REQUIRED_ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            for service in SERVICES.values():
                environment_raw = {str(k): str(v) for k, v in (service.get("environment") or {}).items()}
                for value in environment_raw.values():
                    interpolate(value, missing)


def test_minio_and_skyline_share_the_required_credentials() -> None:
    minio = environment(SERVICES["minio"])
    assert minio["MINIO_ROOT_USER"] == REQUIRED_ENV["MINIO_ROOT_USER"]
    assert minio["MINIO_ROOT_PASSWORD"] == REQUIRED_ENV["MINIO_ROOT_PASSWORD"]
    api = settings_of("api")
    assert api.beacon_key is not None
    assert api.beacon_key.get_secret_value() == REQUIRED_ENV["SKYLINE_BEACON_KEY"]
    assert "SKYLINE_BEACON_KEY" not in environment(SERVICES["worker"]), "only the API signs beacon tokens"
    # The API signs controls, the workers check them: one key, from the environment.
    control = [REQUIRED_ENV["SKYLINE_CONTROL_KEY"].encode()]
    assert api.control_keys == settings_of("worker").control_keys == control


# ------------------------------------------------------------------ collectors (issue 25)


def test_collectors_are_replicas_prometheus_finds_and_browsers_reach() -> None:
    collector = SERVICES["collector"]
    assert command_text(collector) == "python\n-m\ncollector"  # reads SKYLINE_COLLECTOR_HOST / PORT
    replicas = int(collector["deploy"]["replicas"])
    assert replicas >= 2
    assert "container_name" not in collector and "hostname" not in collector
    s = settings_of("collector")
    assert s.collector_host == "0.0.0.0"
    # One host port per replica: a fixed single port would stop the second replica.
    ports = [(host, container) for _, host, container in bindings(collector)]
    assert len(ports) == replicas and {c for _, c in ports} == {s.collector_port}
    assert f"127.0.0.1:{s.collector_port}/readyz" in healthcheck_text(collector)
    prometheus = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert json.dumps([{"names": ["collector"], "type": "A", "port": s.collector_port}]) in prometheus
    # No Temporal: the collector waits for storage and the shared store only.
    assert set(collector["depends_on"]) == {"minio-setup", "valkey"}
    assert s.redis_url == settings_of("api").redis_url, "one shared store of session caps and budgets"
    assert s.beacon_key == settings_of("api").beacon_key, "tokens verify on every replica"
    # Same connection settings as the API (storage, store, logging).
    api = environment(SERVICES["api"])
    shared = {k: v for k, v in api.items() if not k.startswith(("SKYLINE_API_", "SKYLINE_AUTH_"))}
    assert environment(collector).items() >= shared.items()


def test_the_api_sends_browsers_to_the_collectors() -> None:
    api, collector = settings_of("api"), settings_of("collector")
    assert api.collector_url is not None and api.collector_url == collector.collector_url
    host_ports = {host for _, host, _ in bindings(SERVICES["collector"])}
    assert target(api.collector_url)[1] in host_ports, "the default URL reaches a published replica"
