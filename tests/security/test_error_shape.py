"""Item 8: every error keeps {"error": {"status", "code", "message", "field"}}."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api import errors
from tests.support.scenario import create_apartment, make_bundle, parked_strategy

pytestmark = pytest.mark.asyncio(loop_scope="session")


def shaped(response: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


async def test_ids_of_other_workflow_types_are_404(api: httpx.AsyncClient, tmp_path: Path) -> None:
    apartment = await create_apartment(api)
    # An undo leaves a ManifestUndoWorkflow named undo.<apartment>.
    undone = await api.post(f"/apartments/{apartment}/undo", json={"to_revision": 1, "actor": "ops"})
    assert undone.status_code in (200, 201, 409), undone.text
    shaped(await api.get(f"/rollouts/undo.{apartment}"), 404, "not_found")
    shaped(await api.get(f"/rollouts/undo.{apartment}/audit"), 404, "not_found")
    shaped(await api.post(f"/rollouts/undo.{apartment}/pause", json={}), 404, "not_found")
    body = {
        "apartment": apartment,
        "building": "header",
        "unit_id": "header",
        "version": "2.0.0",
        "bundle": {"path": str(make_bundle(tmp_path / "b", "2.0.0"))},
        "strategy": parked_strategy(),
    }
    started = await api.post("/rollouts", json=body)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    try:
        shaped(await api.get(f"/fleets/{rollout_id}"), 404, "not_found")
        shaped(await api.post(f"/fleets/{rollout_id}/pause", json={}), 404, "not_found")
    finally:
        await api.post(f"/rollouts/{rollout_id}/rollback", json={})
    # Controls go straight to the workflow: an ended one is 409 with its end, an unknown one 404.
    ended = shaped(await api.post(f"/rollouts/{rollout_id}/pause", json={}), 409, "rollout_ended")
    assert "rolled_back" in ended["message"]
    shaped(await api.post(f"/rollouts/rollout.{apartment}.nobuilding/rollback", json={}), 404, "not_found")


async def test_invalid_json_names_the_body(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/rollouts", content=b'{"apartment": "shop", ', headers={"content-type": "application/json"}
    )
    error = shaped(response, 422, "invalid_json")
    assert error["field"] == "body"


async def test_bodies_over_the_limit_are_413(api: httpx.AsyncClient) -> None:
    # A declared length over the limit: refused before any of the body is sent (and the
    # connection ends, so the server never reads the 2 MiB it was promised).
    host, port = str(api.base_url.host), int(api.base_url.port or 80)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST /apartments HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
        )
        declared = b""
        sock.settimeout(15)
        while piece := sock.recv(65536):
            declared += piece
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b'"code":"body_too_large"' in declared and b'"field":"body"' in declared

    # No Content-Length: counted as it arrives, and cut at the limit (the client sends one
    # byte more than 1 MiB and then waits: the answer must come without the rest).
    host, port = str(api.base_url.host), int(api.base_url.port or 80)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST /apartments HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(16):  # exactly 1 MiB, the limit
            sock.sendall(b"10000\r\n" + b" " * 65536 + b"\r\n")
        # One byte more. Not more than that: bytes the server never reads would make its
        # close a reset, and a reset can drop the answer before the client reads it.
        sock.sendall(b"1\r\n \r\n")
        answer = b""
        sock.settimeout(15)
        while piece := sock.recv(65536):  # the server closes after the 413
            answer += piece
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"body_too_large"' in answer


async def test_unexpected_failures_answer_500_in_the_shape() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /srv/key")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    error = shaped(response, 500, "internal_error")
    assert "secret internals" not in error["message"]
