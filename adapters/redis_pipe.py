"""One pipelined Redis connection per event loop: the ledger's scripts (adapters/evidence.py).

redis-py's asyncio client takes a connection from its pool for each command and
keeps one command in flight on it (a lock, a stream read, the pool's bookkeeping
around every call). Every beacon and beacon token is one EVALSHA, and under load
many requests of a process wait on Redis at once: here they share one
connection, each command written as it comes (the commands of one loop
iteration in one write) and the replies matched to their callers in order, as
Redis answers a connection's commands in order.

What stays as with redis-py:
- replies are hiredis's, as redis-py's hiredis parser gives them (bytes, ints,
  lists; no decoding);
- an error reply is redis-py's exception for it (redis-py's own parser's table:
  NoScriptError, ResponseError, AuthenticationError, ...);
- a refused or lost connection is `redis.exceptions.ConnectionError`: every
  command in flight on a lost connection fails with it (none is re-sent: a
  script that may have run is not run twice), and the next command connects
  again;
- a server that answers nothing for `timeout` seconds while commands wait (hung,
  stopped, a network path dropping packets) is `redis.exceptions.TimeoutError`
  for every command in flight, and the connection is closed and made again, as
  redis-py's `socket_timeout` would; without it a beacon request would wait on
  Redis for as long as its client kept the connection.

redis:// and unix:// URLs (host, port, db, username, password); anything else
(rediss://: TLS) is `supported` False and the caller keeps redis-py.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis._parsers import BaseParser  # redis-py's table of error replies to exceptions
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

Arg = str | bytes | int | float
_MORE = object()  # hiredis: no whole reply buffered yet
# hiredis's stub types its argument as a 1-tuple; it takes a command's words, any number,
# and writes a float as its repr, as redis-py's encoder does (a script reads the same argument).
_pack = cast("Callable[[tuple[Arg, ...]], bytes]", hiredis.pack_command)


class _Lane(asyncio.Protocol):
    """One connection: commands out in order, each reply to the oldest caller still waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, timeout: float | None = None) -> None:
        self.loop = loop
        self.where = where
        self.timeout = timeout
        self._replies = 0  # replies read so far: the watch's sign of life
        self._watch: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.connecting: asyncio.Task[None] | None = None  # held: a task nobody holds may be collected
        self.closed = False
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, notEnoughData=_MORE
        )
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._flush_due = False

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise RedisConnectionError(f"connection to Redis at {self.where} is closed")
        reply: asyncio.Future[Any] = self.loop.create_future()
        self._waiting.append(reply)
        self._out.append(command)
        if self.timeout is not None and self._watch is None:
            self._watch = self.loop.call_later(self.timeout, self._check, self._replies)
        if not self._flush_due and self.transport is not None:
            self._flush_due = True
            self.loop.call_soon(self._flush)
        return reply

    def _flush(self) -> None:
        self._flush_due = False
        if self.transport is not None and self._out and not self.closed:
            self.transport.write(b"".join(self._out))
            self._out.clear()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        if self.closed:  # closed while connecting
            transport.close()
            return
        self._flush()  # what was sent while connecting

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not _MORE:
            if not self._waiting:  # a reply nobody asked for: this connection cannot be trusted
                self.fail(InvalidResponse(f"unexpected reply from Redis at {self.where}"))
                return
            waiter = self._waiting.popleft()
            self._replies += 1
            if waiter.done():  # its caller was cancelled; the reply was still its
                continue
            if isinstance(reply, Exception):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def _check(self, replies_then: int) -> None:
        """`timeout` seconds after a command was sent: a reply since, or nothing left to
        wait for, is a live server (watch on); none while commands wait, a hung one."""
        self._watch = None
        if self.closed or not self._waiting:
            return
        if self._replies == replies_then:
            self.fail(RedisTimeoutError(f"Redis at {self.where} answered nothing for {self.timeout:g} s"))
            return
        assert self.timeout is not None
        self._watch = self.loop.call_later(self.timeout, self._check, self._replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self.fail(RedisConnectionError(f"connection to Redis at {self.where} lost{reason}"))

    def fail(self, error: Exception) -> None:
        """Close, and fail every command in flight (their scripts may or may not have run)."""
        self.closed = True
        self._out.clear()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class Pipe:
    """Commands to one Redis server, pipelined on one connection per event loop (made on the
    first command in that loop, and again after it was lost)."""

    def __init__(self, url: str, timeout: float | None = None) -> None:
        self.timeout = timeout
        conf: dict[str, Any] = dict(parse_url(url))
        scheme = url.split("://", 1)[0].lower()
        self.supported = scheme in ("redis", "unix")
        self._path: str | None = conf.get("path")
        self._host: str = conf.get("host", "localhost")
        self._port: int = conf.get("port", 6379)
        self._where = self._path or f"{self._host}:{self._port}"
        # Sent first on each connection, pipelined with what follows; an error of theirs
        # (a wrong password) reaches the callers as the errors of their own commands.
        self._hello: list[bytes] = []
        if conf.get("password"):
            auth = [conf["username"]] if conf.get("username") else []
            self._hello.append(_pack(("AUTH", *auth, conf["password"])))
        if conf.get("db"):
            self._hello.append(_pack(("SELECT", int(conf["db"]))))
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()
        self._last: _Lane | None = None  # the lane of the loop that called last

    async def execute(self, *args: Arg) -> Any:
        """One command's reply, as hiredis parses it; an error reply raised as redis-py's
        exception, a lost connection as redis.exceptions.ConnectionError."""
        return await self._lane().send(_pack(args))

    def _lane(self) -> _Lane:
        loop = asyncio.get_running_loop()
        lane = self._last
        if lane is not None and lane.loop is loop and not lane.closed:
            return lane  # the usual case, without the weak mapping's lookup
        lane = self._lanes.get(loop)
        if lane is None or lane.closed:
            lane = self._lanes[loop] = _Lane(loop, self._where, self.timeout)
            for command in self._hello:
                lane.send(command).add_done_callback(_consume)
            lane.connecting = loop.create_task(self._connect(lane))
        self._last = lane
        return lane

    async def _connect(self, lane: _Lane) -> None:
        try:
            if self._path is not None:
                await lane.loop.create_unix_connection(lambda: lane, self._path)
            else:
                await lane.loop.create_connection(lambda: lane, self._host, self._port)
        except OSError as exc:
            lane.fail(RedisConnectionError(f"Error connecting to Redis at {self._where}: {exc}"))

    async def aclose(self) -> None:
        """Close the running loop's connection (in flight: failed as lost)."""
        lane = self._lanes.pop(asyncio.get_running_loop(), None)
        if lane is self._last:
            self._last = None
        if lane is not None and not lane.closed:
            lane.fail(RedisConnectionError(f"connection to Redis at {self._where} closed"))


def _consume(reply: asyncio.Future[Any]) -> None:
    # A handshake's error is its followers' too (NOAUTH); read it here so asyncio does not
    # report it as never retrieved.
    if not reply.cancelled() and reply.exception() is not None:
        log.warning("Redis handshake failed: %s", reply.exception())
