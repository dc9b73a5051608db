"""`python -m stack.s3server`: moto's S3 API server, made durable by a write-after journal.

moto is the S3 implementation (conditional writes, ETags, listing, bucket
policies, everything boto3 and `aws s3` use); it keeps its state in memory.
This module wraps moto's WSGI application in a small middleware that makes the
state survive a restart, a Ctrl-C or a SIGKILL of this process:

* Every *mutating* request (PUT, POST, DELETE) runs under one lock; if moto
  answers it with a 2xx, one JSON line describing the request (method, URL,
  headers, body) is appended to `<data-dir>/journal.jsonl` and flushed to the
  kernel **before** the response is sent. An acknowledged write is therefore
  always in the journal (the page cache outlives a killed process); a write
  the client never saw acknowledged may or may not be. Reads are not
  journaled.
* The lock makes the journal order the order moto applied the writes in, so a
  race between two `If-Match` writers replays with the same winner. The
  conditional headers themselves are dropped from the record: the condition
  held when the write was acknowledged, and replaying the same sequence
  unconditionally rebuilds the same state.
* On start, before the port opens, the journal is replayed in process into a
  fresh moto backend (a torn last line, never acknowledged, is cut off), then
  compacted: an object PUT that a later PUT or DELETE of the same key
  superseded is dropped, so the journal grows with what is stored, not with
  how often the manifest was rewritten.

ETags are MD5s of the content, so they are the same after a replay;
Last-Modified becomes the replay time.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

JOURNAL = "journal.jsonl"
MUTATING = frozenset({"PUT", "POST", "DELETE"})
# Conditions held when the write was acknowledged; replaying them could only fail.
_DROPPED = frozenset({"HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_TRANSFER_ENCODING", "CONTENT_LENGTH"})
_KEPT = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REQUEST_URI", "RAW_URI", "CONTENT_TYPE")
_PRESERVED = "moto.preserved_header_names"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Journal:
    """Append-only JSON lines, one per acknowledged write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None

    def records(self) -> list[dict[str, Any]]:
        """Every complete record; a torn tail (killed mid-append) is cut off the file."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(json.loads(line))
            except ValueError:
                break
            good += len(line)
        if good != len(data):
            with self.path.open("r+b") as f:
                f.truncate(good)
        return records

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            for record in records:
                f.write(_line(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        line = _line(record)
        written = 0
        while written < len(line):  # one write() in practice; loop for the pedantic case
            written += os.write(self._fd, line[written:])


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _record(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    env = {
        k: v
        for k, v in environ.items()
        if isinstance(v, str) and (k in _KEPT or k.startswith("HTTP_")) and k not in _DROPPED
    }
    preserved = environ.get(_PRESERVED)
    return {
        "env": env,
        "preserved": dict(preserved) if isinstance(preserved, dict) else {},
        "body": base64.b64encode(body).decode("ascii"),
        "at": time.time(),
    }


def _object_target(record: dict[str, Any]) -> tuple[str, str] | None:
    """(method, path) of a plain object write or delete; None for anything else (never dropped)."""
    env = record["env"]
    method = env.get("REQUEST_METHOD", "")
    path = unquote(env.get("PATH_INFO", ""))
    query = env.get("QUERY_STRING", "")
    if method not in ("PUT", "DELETE") or query or path.count("/") < 2:
        return None  # bucket operation, multipart part/completion, tagging, ACL ...
    if "HTTP_X_AMZ_COPY_SOURCE" in env:
        return None
    return method, path


def compact(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop plain object PUT/DELETEs superseded by a later plain PUT/DELETE of the same key.

    A key that some other kind of write touches (multipart, tagging, ACL ...)
    keeps all its records; with a copy anywhere nothing is dropped (a copy
    reads another key's state at its point in the sequence).
    """
    if any("HTTP_X_AMZ_COPY_SOURCE" in r["env"] for r in records):
        return records
    last: dict[str, int] = {}
    pinned: set[str] = set()
    for i, record in enumerate(records):
        target = _object_target(record)
        if target is not None:
            last[target[1]] = i
        else:
            path = unquote(record["env"].get("PATH_INFO", "")).rstrip("/")
            if path.count("/") >= 2:
                pinned.add(path)
    kept: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        target = _object_target(record)
        droppable = target is not None and target[1] not in pinned
        if droppable and target is not None and (last[target[1]] != i or target[0] == "DELETE"):
            continue  # superseded, or the key's last word is "gone"
        kept.append(record)
    return kept


class DurableApp:
    """WSGI middleware: serialise and journal acknowledged writes; replay them on start."""

    def __init__(self, app: WSGIApp, journal: Journal) -> None:
        self.app = app
        self.journal = journal
        self._lock = threading.Lock()

    def replay(self) -> int:
        records = compact(self.journal.records())
        failed = 0
        for record in records:
            environ = _environ(record)
            status = self._call(environ)[0]
            if not status.startswith("2"):
                failed += 1
                print(f"[s3] replay: {record['env'].get('REQUEST_METHOD')} "
                      f"{record['env'].get('PATH_INFO')} answered {status}", flush=True)  # fmt: skip
        self.journal.rewrite(records)
        return len(records) - failed

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], body

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in MUTATING or str(environ.get("PATH_INFO", "")).startswith(
            "/moto-api"
        ):
            return self.app(environ, start_response)
        body = _read_body(environ)
        if body is None:
            # The client went away mid-body (a worker SIGKILLed during a PUT): S3 refuses such a
            # request. Passed on with CONTENT_LENGTH set to what arrived, moto would store the
            # short body under the client's checksum header, a torn object every GET then fails.
            start_response("400 Bad Request", [("Content-Type", "application/xml")])
            return [INCOMPLETE_BODY]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        with self._lock:
            status, headers, payload = self._call(environ)
            if status.startswith("2"):
                self.journal.append(_record(environ, body))
        start_response(status, headers)
        return [payload]


INCOMPLETE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>IncompleteBody</Code><Message>You did not '
    b"provide the number of bytes specified by the Content-Length HTTP header</Message></Error>"
)


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body; None when fewer bytes arrived than its Content-Length says."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated") or "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")):
        return bytes(stream.read())
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length <= 0:
        return b""
    body = bytearray()
    while len(body) < length:  # a socket read may return less than asked before the end
        chunk = stream.read(length - len(body))
        if not chunk:
            return None
        body += chunk
    return bytes(body)


def _environ(record: dict[str, Any]) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    env = record["env"]
    body = base64.b64decode(record["body"])
    environ = EnvironBuilder(
        path=env.get("PATH_INFO", "/"),
        method=env.get("REQUEST_METHOD", "PUT"),
        query_string=env.get("QUERY_STRING", ""),
    ).get_environ()
    environ.update(env)
    environ[_PRESERVED] = dict(record.get("preserved") or {})
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def build_app(data_dir: Path) -> tuple[DurableApp, int]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DurableApp(DomainDispatcherApplication(create_backend_app), Journal(data_dir / JOURNAL))
    return app, app.replay()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stack.s3server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--data-dir", type=Path, required=True, help="where the journal lives")
    parser.add_argument(
        "--credentials-file",
        type=Path,
        help="JSON {access_key_id, secret_access_key}: only requests signed with it are served, "
        "besides anonymous reads of the edge's public prefixes (stack/s3auth.py)",
    )
    parser.add_argument(
        "--bucket", default="skyline", help="the bucket whose public prefixes anyone may read"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    started = time.monotonic()
    app, replayed = build_app(args.data_dir)
    print(
        f"[s3] replayed {replayed} write(s) from {args.data_dir / JOURNAL} "
        f"in {time.monotonic() - started:.2f}s",
        flush=True,
    )
    served: WSGIApp = app
    if args.credentials_file is not None:
        from stack.s3auth import KeyPair, SigV4Gate

        keys = KeyPair.load(args.credentials_file)
        served = SigV4Gate(app, keys, args.bucket, _read_body, INCOMPLETE_BODY)
    server = make_server(args.host, args.port, served, threaded=True, request_handler=MotoRequestHandler)

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"[s3] serving on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
