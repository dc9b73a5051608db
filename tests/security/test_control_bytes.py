"""Issue 23 item 6: NUL and other control bytes in a path or an id are a 422, and the
connection they came on stays usable (a 500 that escaped to the server reset it)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from tests.support.scenario import create_apartment, make_bundle, parked_strategy

pytestmark = pytest.mark.asyncio(loop_scope="session")

BYTES = ["\x00", "\x01", "\x1f", "\x7f", "\x85"]


class KeptConnection:
    """One HTTP/1.1 connection; every request must come back on the same socket."""

    def __init__(self, settings: Settings) -> None:
        self.conn = http.client.HTTPConnection(settings.api_host, settings.api_port, timeout=30)
        self.sock: object = None

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if payload is not None else {}
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        assert not response.will_close, f"{method} {path}: the server ends the connection"
        if self.sock is None:
            self.sock = self.conn.sock
        assert self.conn.sock is self.sock, "a new connection was opened"
        return response.status, json.loads(data) if data else {}

    def still_works(self) -> None:
        status, body = self.request("GET", "/healthz")
        assert status == 200 and body == {"status": "ok"}

    def close(self) -> None:
        self.conn.close()


def shaped_422(status: int, body: dict[str, Any], field: str) -> None:
    assert status == 422, body
    error = body["error"]
    assert error["status"] == 422 and error["message"] and error["field"] == field, error


@pytest.mark.parametrize("byte", BYTES, ids=[f"0x{ord(b):02x}" for b in BYTES])
async def test_a_control_byte_in_bundle_path_is_422_and_the_connection_lives(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path, byte: str
) -> None:
    apartment = await create_apartment(api)
    bundle = make_bundle(tmp_path / "b", "2.0.0")
    spec = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": f"{bundle}{byte}evil"},
        "strategy": parked_strategy(),
    }
    conn = KeptConnection(settings)
    try:
        conn.still_works()
        shaped_422(*conn.request("POST", "/rollouts", spec), "bundle.path")
        conn.still_works()
        fleet = {**spec, "apartments": [apartment], "bundle": {"path": f"{bundle}{byte}"}}
        del fleet["apartment"]
        status, body = conn.request("POST", "/fleets", fleet)
        assert status == 422 and body["error"]["field"].startswith("bundle"), body
        conn.still_works()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/rollouts/rollout.shop%00x.header", "path"),
        ("/rollouts/rollout.shop.header%01/audit", "path"),
        ("/fleets/fleet.a%1fb", "path"),
        ("/apartments/shop%7f/manifest", "path"),
        ("/schedules/promote.a%00", "path"),
        ("/apartments/shop/resolve?user=u%00ser", "user"),
        ("/beacon-token?apartment=shop%00&revision=1", "apartment"),
        ("/overrides/unit?token=a%0ab", "token"),
    ],
)
async def test_a_control_byte_in_the_url_is_422_and_the_connection_lives(
    settings: Settings, path: str, field: str
) -> None:
    conn = KeptConnection(settings)
    try:
        conn.still_works()
        shaped_422(*conn.request("GET", path), field)
        conn.still_works()
    finally:
        conn.close()


async def test_a_control_byte_in_a_body_id_is_422(settings: Settings) -> None:
    conn = KeptConnection(settings)
    try:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"dry_run": True, "apartment": "shop\x00"}, "apartment"),
            ({"id": "shop\x00", "apartment": {"name": "x", "buildings": {}}}, "id"),
        ]
        for body, field in cases:
            path = "/storage/gc" if "dry_run" in body else "/apartments"
            shaped_422(*conn.request("POST", path, body), field)
        conn.still_works()
    finally:
        conn.close()
