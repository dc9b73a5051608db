"""Issue 23 item 2 and the PURGE ACL of item 7: the production shape fails closed.

- compose requires SKYLINE_AUTH_TOKENS like every other secret, and the API it
  describes refuses to start on a non-loopback address without it (started
  here for real, both ways, with the session's stack behind it);
- the edge admits PURGE only from the purge network, which only the purgers
  join, and never from its gateway (the ACL's exclusion checked on a real
  Varnish).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import exposure_refusal
from skyline.settings import Settings
from stack.config import PURGE_GATEWAY, PURGE_SUBNET, render_vcl
from stack.embedded import EmbeddedStack
from stack.processes import ManagedProcess, free_port, wait_until
from stack.system_packages import find_binary
from tests.deploy.compose import (
    COMPOSE_FILE,
    REQUIRED_ENV,
    ROOT,
    MissingVariable,
    environment,
    interpolate,
    load,
)
from tests.support.secured import auth_tokens_env

COMPOSE = load()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PURGERS = {"worker", "api"}  # who sends PURGE: workers after manifest writes, the API's gc


def settings_of(name: str, env: dict[str, str] = REQUIRED_ENV) -> Settings:
    raw = {str(k): str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}
    values = {k: interpolate(v, env) for k, v in raw.items()}
    return Settings.model_validate(
        {k.removeprefix("SKYLINE_").lower(): v for k, v in values.items() if k.startswith("SKYLINE_")}
    )


# ---------------------------------------------------------------- compose, parsed


def test_compose_requires_the_api_tokens() -> None:
    raw = str(SERVICES["api"]["environment"]["SKYLINE_AUTH_TOKENS"])
    assert re.fullmatch(r"\$\{SKYLINE_AUTH_TOKENS:\?[^}]+\}", raw), raw
    missing = {k: v for k, v in REQUIRED_ENV.items() if k != "SKYLINE_AUTH_TOKENS"}
    with pytest.raises(MissingVariable, match="SKYLINE_AUTH_TOKENS"):
        interpolate(raw, missing)
    api = settings_of("api")
    assert api.api_host == "0.0.0.0" and api.auth_tokens, "compose publishes the API: auth on"
    assert exposure_refusal(api) is None
    # The same service with the tokens emptied would not start.
    assert "SKYLINE_AUTH_TOKENS" in str(exposure_refusal(api.model_copy(update={"auth_tokens": []})))


def acl_entries(vcl: str) -> tuple[list[str], list[str]]:
    body = vcl[vcl.index("acl purgers") : vcl.index("}", vcl.index("acl purgers"))]
    admitted = re.findall(r'^\s*"([^"]+)"(?:/(\d+))?;', body, re.MULTILINE)
    excluded = re.findall(r'^\s*!\s*"([^"]+)"', body, re.MULTILINE)
    return [f"{a}/{b}" if b else a for a, b in admitted], excluded


def networks_of(service: dict[str, Any]) -> set[str]:
    found = service.get("networks")
    if found is None:
        return {"default"}
    return set(found) if isinstance(found, (list, dict)) else {str(found)}


def test_only_the_purgers_join_the_purge_network_and_its_gateway_cannot_purge() -> None:
    purge = COMPOSE["networks"]["purge"]
    config = purge["ipam"]["config"][0]
    assert (config["subnet"], config["gateway"]) == (PURGE_SUBNET, PURGE_GATEWAY)
    assert purge.get("internal") is True, "nothing from outside routes through the purge network"
    joined = {name for name, service in SERVICES.items() if "purge" in networks_of(service)}
    assert joined == PURGERS | {"edge"}, joined
    # Purges go to the edge's name on that network, so they leave from an address in it.
    aliases = SERVICES["edge"]["networks"]["purge"]["aliases"]
    for name in PURGERS:
        url = environment(SERVICES[name])["SKYLINE_VARNISH_PURGE_URL"]
        assert httpx.URL(url).host in aliases, (name, url)
    vcl = (ROOT / "deploy" / "varnish" / "skyline.vcl").read_text(encoding="utf-8")
    admitted, excluded = acl_entries(vcl)
    subnet = ipaddress.ip_network(PURGE_SUBNET)
    for entry in admitted:
        network = ipaddress.ip_network(entry, strict=False)
        assert network.is_loopback or network.subnet_of(subnet), f"the ACL admits {entry}"  # type: ignore[arg-type]
    assert PURGE_GATEWAY in excluded, "the bridge gateway (published-port traffic) may not purge"
    assert "172.28.0.0" not in COMPOSE_FILE.read_text(encoding="utf-8")


# ---------------------------------------------------------------- a real Varnish with an exclusion


@pytest.fixture(scope="module")
def edge_with_exclusion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Varnish with the template's ACL plus `!127.0.0.2`: loopback may purge, except 127.0.0.2."""
    varnishd = find_binary("varnishd")
    assert varnishd is not None, "varnishd is part of the test environment (make install)"
    state = tmp_path_factory.mktemp("acl-edge")
    vcl = state / "edge.vcl"
    vcl.write_text(render_vcl("127.0.0.1", free_port(), "skyline", ["!127.0.0.2"]), encoding="utf-8")
    port = free_port()
    process = ManagedProcess(
        "acl-edge",
        [varnishd, "-F", "-n", str(state / "varnish"), "-a", f"127.0.0.1:{port}",
         "-T", f"127.0.0.1:{free_port()}", "-f", str(vcl), "-s", "malloc,16m", "-j", "none"],
        state / "varnish.log",
    )  # fmt: skip
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/").status_code > 0, 60, "acl edge", process)
        yield url
    finally:
        process.stop()


def purge_from(source: str, url: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(
            f"PURGE /skyline/manifests/x.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while piece := sock.recv(4096):
            answer += piece
    found = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    assert found, answer[:200]
    return int(found.group(1))


def test_an_excluded_address_cannot_purge_even_inside_an_admitted_network(edge_with_exclusion: str) -> None:
    assert purge_from("127.0.0.1", edge_with_exclusion) == 200
    assert purge_from("127.0.0.2", edge_with_exclusion) == 403


# ---------------------------------------------------------------- the API started both ways


def start_api(stack: EmbeddedStack, logs: Path, argv: list[str], **env: str) -> ManagedProcess:
    base = {k: v for k, v in {**os.environ, **stack.env()}.items() if k not in ("SKYLINE_AUTH_TOKENS",)}
    process = ManagedProcess("exposed-api", argv, logs, env={**base, **env}, cwd=ROOT)
    process.start()
    return process


def refused(process: ManagedProcess) -> str:
    wait_until(lambda: not process.alive(), 60, "the API to refuse to start")
    assert process.returncode not in (0, None), process.returncode
    return process.tail(60)


def test_the_api_refuses_to_start_on_every_interface_without_tokens(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    port = str(free_port())
    module = start_api(
        stack,
        tmp_path / "module.log",
        [sys.executable, "-m", "api"],
        SKYLINE_API_HOST="0.0.0.0",
        SKYLINE_API_PORT=port,
    )
    try:
        assert "SKYLINE_AUTH_TOKENS" in refused(module)
    finally:
        module.stop()
    uvicorn = start_api(
        stack,
        tmp_path / "uvicorn.log",
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", port],
        SKYLINE_API_HOST="0.0.0.0",
    )
    try:
        assert "SKYLINE_AUTH_TOKENS" in refused(uvicorn)
    finally:
        uvicorn.stop()


def test_the_api_starts_on_every_interface_with_tokens(stack: EmbeddedStack, tmp_path: Path) -> None:
    port = free_port()
    process = start_api(
        stack,
        tmp_path / "api.log",
        [sys.executable, "-m", "api"],
        SKYLINE_API_HOST="0.0.0.0",
        SKYLINE_API_PORT=str(port),
        SKYLINE_AUTH_TOKENS=auth_tokens_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/readyz").status_code == 200, 60, "exposed api", process)
        assert httpx.get(url + "/readyz").json()["auth"] == "on"
        assert httpx.get(url + "/rollouts").status_code == 401
    finally:
        process.stop()
