"""A real HTTP server on loopback that records webhook calls and answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Receivers listen here, not on 127.0.0.1 where the stack's own servers are: the
# test stack allowlists this address only (SKYLINE_WEBHOOK_ALLOWED_HOSTS).
WEBHOOK_HOST = "127.0.0.2"


@dataclass
class Receiver:
    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; then `default`
    default: int = 200
    error_body: bytes = b"not yet"  # what a non-2xx answer carries
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # GET path -> (body, content type)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set `hold` to keep every call waiting (a slow webhook) until it is set; `arrived` is set
    # as soon as a call came in.
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    arrivals: int = 0
    delay: float = 0.0  # seconds every call waits before it is answered

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.default

    def events(self) -> list[str]:
        with self.lock:
            return [c["headers"].get("x-skyline-event", "") for c in self.calls]


@contextmanager
def webhook_receiver(host: str = WEBHOOK_HOST, port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - a smoke URL is fetched with GET
            if self.path in receiver.files:
                body, content_type = receiver.files[self.path]
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.do_POST()

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.arrivals += 1
            receiver.arrived.set()
            if receiver.hold is not None:
                receiver.hold.wait(timeout=120)
            if receiver.delay:
                threading.Event().wait(receiver.delay)  # a slow receiver, not synchronisation
            status = receiver.answer()
            with receiver.lock:
                receiver.calls.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body or b"{}"),
                        "status": status,
                    }
                )
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else receiver.error_body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    receiver.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(timeout=5)
