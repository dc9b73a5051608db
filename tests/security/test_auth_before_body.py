"""Issue 23 item 4: authentication before the body, and a size limit that stops a chunked body.

Two ways of looking: the app itself, called with a `receive` that counts every
body byte the app pulls (exact), and a real uvicorn process over a raw socket
(the refusal arrives while the client has sent 64 KiB of a 150 MB upload).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI

from api.access import RULES
from api.errors import MULTIPART_ALLOWANCE
from api.main import create_app
from skyline.settings import Settings
from stack.embedded import EmbeddedStack
from tests.support.secured import auth_tokens_env, bearer, secured_api

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHUNK = 64 * 1024
UPLOAD_LIMIT = 1024 * 1024  # SKYLINE_BUNDLE_UPLOAD_MAX_BYTES of the apps below
BOUNDARY = b"skylinetestboundary"
MULTIPART_HEAD = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="bundle"; filename="b.tar.gz"\r\n'
    b"Content-Type: application/gzip\r\n\r\n"
)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app (real Temporal, real S3 token store) with auth on, in this process."""
    import json

    conf = settings.model_copy(
        update={"auth_tokens": json.loads(auth_tokens_env()), "bundle_upload_max_bytes": UPLOAD_LIMIT}
    )
    application = create_app(conf)
    async with application.router.lifespan_context(application):
        yield application


class Exchange:
    """One request through the ASGI app: an endless (or `total`-byte) body, counted as pulled."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.pulled = 0
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if self.total is not None and self.pulled >= self.total:
            return {"type": "http.disconnect"}
        piece = MULTIPART_HEAD if self.pulled == 0 else b"\0" * CHUNK
        if self.total is not None:
            piece = piece[: self.total - self.pulled]
        self.pulled += len(piece)
        more = self.total is None or self.pulled < self.total
        return {"type": "http.request", "body": piece, "more_body": more}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message.get("headers") or [])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def call(app: FastAPI, method: str, path: str, headers: dict[str, str], total: int | None) -> Exchange:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-type", b"multipart/form-data; boundary=" + BOUNDARY))
    raw.append(
        (b"content-length", str(total).encode()) if total is not None else (b"transfer-encoding", b"chunked")
    )
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    exchange = Exchange(total)
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), 120)
    return exchange


def concrete(template: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "none", template)


GUARDED = sorted((m, t) for (m, t), access in RULES.items() if access != "public" and m != "GET")


async def test_an_anonymous_upload_is_refused_before_one_byte_of_it_is_read(app: FastAPI) -> None:
    declared = await call(app, "POST", "/bundles", {}, 20 * 1024 * 1024)
    assert declared.status == 401, declared.body
    assert declared.pulled == 0, f"the app read {declared.pulled} bytes of an anonymous upload"
    chunked = await call(app, "POST", "/bundles", {}, None)
    assert chunked.status == 401 and chunked.pulled == 0, (chunked.status, chunked.pulled)
    # A refused body the server is not going to read: the connection ends with the answer.
    assert chunked.headers.get(b"connection") == b"close"
    assert declared.headers.get(b"www-authenticate") == b"Bearer"


@pytest.mark.parametrize(("method", "template"), GUARDED, ids=[f"{m} {t}" for m, t in GUARDED])
async def test_every_authenticated_route_refuses_before_the_body(
    app: FastAPI, method: str, template: str
) -> None:
    anonymous = await call(app, method, concrete(template), {}, None)
    assert anonymous.status == 401 and anonymous.pulled == 0, (anonymous.status, anonymous.pulled)
    if RULES[(method, template)] != "viewer":
        viewer = await call(app, method, concrete(template), bearer("viewer"), None)
        assert viewer.status == 403 and viewer.pulled == 0, (viewer.status, viewer.pulled)


async def test_a_chunked_upload_over_the_limit_is_cut_at_the_limit(app: FastAPI) -> None:
    exchange = await call(app, "POST", "/bundles", bearer("deployer"), None)  # endless
    assert exchange.status == 413, exchange.body
    limit = UPLOAD_LIMIT + MULTIPART_ALLOWANCE
    assert limit < exchange.pulled <= limit + CHUNK, exchange.pulled
    assert exchange.headers.get(b"connection") == b"close"


# ---------------------------------------------------------------- the same over a real socket


@pytest.fixture(scope="module")
def secured_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    extra = {"SKYLINE_BUNDLE_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT)}
    with secured_api(stack, tmp_path_factory.mktemp("body-api"), extra) as (url, _):
        yield url


def read_answer(sock: socket.socket, deadline: float) -> tuple[int, bytes, bool]:
    """(status, raw answer, closed): reads until the server closes or the deadline passes."""
    data = b""
    closed = False
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        if not piece:
            closed = True
            break
        data += piece
    found = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return (int(found.group(1)) if found else 0), data, closed


def test_the_401_arrives_while_the_upload_is_still_at_its_first_64_kib(secured_url: str) -> None:
    host, port = secured_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /bundles HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
            f"Content-Length: {150 * 1024 * 1024}\r\n\r\n"
        ).encode()
        sock.sendall(head + MULTIPART_HEAD + b"\0" * (CHUNK - len(MULTIPART_HEAD)))
        # Nothing more is sent: a server that waits for the body never answers.
        status, answer, closed = read_answer(sock, time.monotonic() + 15)
    assert status == 401, answer[:300]
    assert b'"code":"unauthenticated"' in answer
    assert closed, "the server kept the connection to read the rest of the body"


def test_a_chunked_body_over_the_limit_gets_413_and_the_connection_ends(secured_url: str) -> None:
    host, port = secured_url.removeprefix("http://").split(":")
    limit = UPLOAD_LIMIT + MULTIPART_ALLOWANCE
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /bundles HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {bearer('deployer')['authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        sock.sendall(head)
        sent, size = 0, 16 * 1024
        assert limit % size == 0
        first = MULTIPART_HEAD
        while sent < limit:  # exactly the limit, then one byte more, then the client waits
            piece = first + b"\0" * (size - len(first))
            first = b""
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sent += len(piece)
        # Not more: bytes the server never reads would turn its close into a reset.
        sock.sendall(b"1\r\n\0\r\n")
        status, answer, closed = read_answer(sock, time.monotonic() + 15)
    assert status == 413, answer[:300]
    assert b"body_too_large" in answer
    assert closed
