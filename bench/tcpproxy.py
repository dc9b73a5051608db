"""A loopback TCP proxy that counts bytes and can play a dead server.

Sits between clients and the S3 server so that
- the publishing benchmark can count the bytes each tool sends, on the wire,
  with the same method for Skyline and `aws s3 sync`;
- the fault suite can take the S3 endpoint away (connections refused, open
  ones reset) while the in-memory S3 server keeps its data, and can cut a
  request half-way through its body.

It runs its own event loop in a daemon thread, so synchronous callers and
other event loops use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
HOST = "127.0.0.1"
CHUNK = 1 << 16


class _Cut:
    """An armed fault: the request whose bytes contain `marker` is cut mid-body."""

    def __init__(self, marker: bytes, down_for: float | None) -> None:
        self.marker = marker
        self.down_for = down_for
        self.fired = threading.Event()
        self.fired_at: float | None = None
        self.forwarded: bytes = b""


class TcpProxy:
    def __init__(self, listen_port: int, upstream_port: int, host: str = HOST) -> None:
        self.host = host
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.bytes_up = 0  # client → server
        self.bytes_down = 0  # server → client
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcpproxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut: _Cut | None = None
        self._up_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ control

    def start(self) -> TcpProxy:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        """Accept connections again (after `down`)."""
        self._call(self._listen())

    def down(self) -> None:
        """Refuse new connections and reset every open one, like a server that died."""
        self._call(self._go_down())

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def reset_counters(self) -> None:
        self.bytes_up = self.bytes_down = self.connections = 0

    def cut_on(self, marker: bytes, down_for: float | None = None) -> _Cut:
        """Arm a cut: the next request containing `marker` gets only half its body through,
        then the proxy goes down (for `down_for` seconds, or until `up()`)."""
        cut = _Cut(marker, down_for)
        self._cut = cut
        return cut

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._go_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._up_timer is not None:
            self._up_timer.cancel()
            self._up_timer = None
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.listen_port, reuse_address=True
            )

    async def _go_down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def _schedule_up(self, after: float) -> None:
        def again() -> None:
            self._up_timer = None
            asyncio.ensure_future(self._listen())

        self._up_timer = self._loop.call_later(after, again)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            _reset(writer)
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, upstream=True)),
            asyncio.ensure_future(self._pump(up_reader, writer, upstream=False)),
        ]
        # HTTP: once either side is done, the exchange is over.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _fire(self, cut: _Cut, dst: asyncio.StreamWriter, partial: bytes) -> None:
        dst.write(partial)
        self.bytes_up += len(partial)
        await dst.drain()
        cut.forwarded = partial
        cut.fired_at = time.monotonic()
        self._cut = None
        await self._go_down()
        if cut.down_for is not None:
            self._schedule_up(cut.down_for)
        cut.fired.set()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        pending_cut = False  # headers of the marked request went through; cut in its body
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while True:
                chunk = await src.read(CHUNK)
                if not chunk:
                    return
                cut = self._cut if upstream else None
                if cut is not None and not cut.fired.is_set() and (pending_cut or cut.marker in chunk):
                    partial = _half_body(chunk, headers_seen=pending_cut)
                    if partial is not None:
                        await self._fire(cut, dst, partial)
                        return
                    pending_cut = True  # only headers so far: cut inside the body
                dst.write(chunk)
                if upstream:
                    self.bytes_up += len(chunk)
                else:
                    self.bytes_down += len(chunk)
                await dst.drain()


def _half_body(chunk: bytes, headers_seen: bool) -> bytes | None:
    """What to forward of a chunk of the request being cut; None if it holds no body yet."""
    if headers_seen:
        return chunk[: max(1, len(chunk) // 2)]
    end = chunk.find(b"\r\n\r\n")
    if end < 0 or end + 4 >= len(chunk):
        return None
    body_start = end + 4
    return chunk[: body_start + max(1, (len(chunk) - body_start) // 2)]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as the peer of a crashed process sees it."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
