"""HTTP for the CLI on the standard library (urllib.request), not httpx.

Why: importing httpx and building its client (httpcore, h11, certifi's CA
bundle, and httpx's own command line with click, pygments and rich.progress)
costs about 140 ms of CPU per command, a third of what `skyline rollout get`
may take (docs/cli.md#startup); urllib.request costs about 30 ms. What httpx
gave the CLI is kept: a 5 s connect timeout apart from the 120 s read timeout,
HTTP(S)_PROXY / NO_PROXY from the environment, TLS verified against the system
store (SSL_CERT_FILE / SSL_CERT_DIR honoured), multipart upload of a bundle.
One connection per request: the CLI makes one or a few calls, `watch` one a
second.
"""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

CONNECT_TIMEOUT_SECONDS = 5.0
# Rollback and undo answer only once the edge serves the restored manifest.
READ_TIMEOUT_SECONDS = 120.0

# What a failed exchange raises: no connection, a reset, a timeout, a garbled answer.
TransportError = (urllib.error.URLError, OSError, http.client.HTTPException)


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT_SECONDS
        super().connect()
        self.sock.settimeout(READ_TIMEOUT_SECONDS)


class _TlsConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT_SECONDS
        super().connect()  # the TLS handshake too, under the connect timeout
        self.sock.settimeout(READ_TIMEOUT_SECONDS)


class _HttpHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_Connection, req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_TlsConnection, req, context=ssl.create_default_context())


def query_string(params: dict[str, Any]) -> str:
    """`?a=1&b=x&b=y` as httpx wrote it: booleans lower-case, a list repeats its key."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return "?" + urlencode(pairs) if pairs else ""


def multipart(files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload (RFC 7578)."""
    boundary = secrets.token_hex(16)
    parts: list[bytes] = []
    for field, (filename, data, content_type) in files.items():
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Transport:
    """Sends one request and answers (status, body bytes); raises a TransportError when none came."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self._opener = urllib.request.build_opener(_HttpHandler, _HttpsHandler)

    def send(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        body: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        headers = {**self.headers, **(extra_headers or {})}
        data: bytes | None = None
        if files:
            data, headers["content-type"] = multipart(files)
        elif body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["content-type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path + query_string(params), data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as answered:  # 4xx/5xx: an answer all the same
            with answered:
                return answered.code, answered.read()
