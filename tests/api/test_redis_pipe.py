"""The ledger's pipelined Redis connection (adapters/redis_pipe.py) against a real redis-server.

Its own server per test module (killed and restarted here, so never the stack's): replies
as redis-py gives them, redis-py's exceptions, NOSCRIPT reloaded, a lost connection failing
what was in flight and the next call connecting again, one connection per event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.evidence import INGEST_SCRIPT, EvidenceUnavailable, RedisEvidence, Sighting
from adapters.redis_pipe import Pipe
from skyline.rate_limit import RateCheck
from stack.embedded import redis_ready
from stack.processes import ManagedProcess, free_port, wait_until
from stack.system_packages import find_binary
from tests.support.scenario import unique

ECHO = "return ARGV"  # a script that answers its arguments: whose reply is whose


class Server:
    """One redis-server on one port, killed and started again by the tests."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ManagedProcess | None = None
        self.runs = 0

    def start(self) -> None:
        binary = find_binary("redis-server")
        assert binary is not None, "redis-server not installed"
        self.runs += 1
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = ManagedProcess(
            "redis", argv, self.log_dir / f"redis-{self.runs}.log", cwd=self.log_dir
        )
        self.process.start()
        wait_until(lambda: redis_ready(self.port), 30, "redis", self.process)

    def pause(self, stopped: bool) -> None:
        """SIGSTOP (a hung server: connections stay open, nothing is answered) or SIGCONT."""
        assert self.process is not None and self.process.pid is not None
        os.kill(self.process.pid, signal.SIGSTOP if stopped else signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None and self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.stop()

    def clients(self) -> int:
        with redis.Redis.from_url(self.url) as c:
            return int(c.info("clients")["connected_clients"]) - 1  # less this one


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("redis-pipe"))
    s.start()
    try:
        yield s
    finally:
        if s.process is not None:
            s.process.stop()


def ingest_args(session: str) -> tuple[list[str], list[Any]]:
    keys = [f"sk:rate:t:{session}", f"sk:cap:{session}", f"sk:seen:{session}"]
    args: list[Any] = [1e6, 1e6, 2, 20, 4_000_000_000, "10.0.0.0", 60]
    for unit, outcome in (("u1", "loaded"), ("u1", "failed")):
        args += [f"o|main|{unit}|{outcome}", f"v|main|{unit}", "b|main", 1, int(outcome != "loaded"),
                 f"sk:ev:{session}:1", f"sk:bld:{session}:1"]  # fmt: skip
    return keys, args


async def test_replies_are_redis_pys(server: Server) -> None:
    pipe, client = Pipe(server.url), aredis.Redis.from_url(server.url)
    try:
        sha = await client.script_load(INGEST_SCRIPT)
        keys, args = ingest_args(unique("pipe"))
        first = [await pipe.execute("EVALSHA", sha, 3, *keys, *args) for _ in range(2)]
        keys, args = ingest_args(unique("redis-py"))
        second = [await client.evalsha(sha, 3, *keys, *args) for _ in range(2)]
        assert first == second == [[b"ok", b"111", b"100"], [b"ok", b"000", b"000"]]
        key = unique("n")
        assert await pipe.execute("INCRBY", key, 5) == 5 and await client.get(key) == b"5"
        assert await pipe.execute("INCRBY", key, 5) == await client.incrby(key, 0) == 10
        assert await pipe.execute("GET", unique("none")) is None
        words = (1.5, 1e6, 1e20, 1e-7, 0.1 + 0.2, 2, "é", b"\x00")
        echoed = await pipe.execute("EVAL", ECHO, 0, *words)
        assert echoed == await client.eval(ECHO, 0, *words)
        assert echoed[:3] == [b"1.5", b"1000000.0", b"1e+20"] and echoed[-2:] == ["é".encode(), b"\x00"]
    finally:
        await pipe.aclose()
        await client.aclose()


async def test_error_replies_are_redis_pys_exceptions(server: Server) -> None:
    pipe, client = Pipe(server.url), aredis.Redis.from_url(server.url)
    key = unique("set")
    await client.sadd(key, "x")
    try:
        with pytest.raises(NoScriptError):
            await pipe.execute("EVALSHA", "0" * 40, 0)
        with pytest.raises(NoScriptError):
            await client.evalsha("0" * 40, 0)
        raised: list[str] = []
        for call in (lambda: pipe.execute("INCR", key), lambda: client.incr(key)):
            with pytest.raises(ResponseError) as info:
                await call()
            raised.append(str(info.value))
        assert raised[0] == raised[1] and "WRONGTYPE" in raised[0]
        # The connection goes on answering after an error reply.
        assert await pipe.execute("EVAL", ECHO, 0, "after") == [b"after"]
    finally:
        await pipe.aclose()
        await client.aclose()


async def test_concurrent_calls_share_one_connection_each_reply_its_own(server: Server) -> None:
    pipe = Pipe(server.url)
    before = server.clients()
    try:
        replies = await asyncio.gather(*(pipe.execute("EVAL", ECHO, 0, str(i)) for i in range(500)))
        assert replies == [[str(i).encode()] for i in range(500)]
        assert server.clients() == before + 1
        # A caller that gives up (cancelled) does not shift the replies of those after it.
        gone = asyncio.ensure_future(
            pipe.execute("EVAL", "redis.call('INCR', KEYS[1]) return 'gone'", 1, unique("c"))
        )
        kept = asyncio.ensure_future(pipe.execute("EVAL", ECHO, 0, "kept"))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == [b"kept"] and gone.cancelled()
        assert await pipe.execute("EVAL", ECHO, 0, "next") == [b"next"]
    finally:
        await pipe.aclose()


async def test_a_flushed_server_gets_the_ledgers_scripts_again(server: Server) -> None:
    ledger = RedisEvidence(server.url)
    check = RateCheck(unique("bucket"), "127.0.0.9", rate=1000, burst=1000)
    try:
        assert await ledger.take(check) == 0
        await ledger.client.script_flush()
        assert await ledger.take(check) == 0  # NOSCRIPT: loaded again, run again
        assert await ledger.client.script_exists(ledger._rate.sha) == [True]
    finally:
        await ledger.aclose()


async def test_a_lost_server_fails_the_calls_in_flight_and_the_next_call_reconnects(server: Server) -> None:
    ledger = RedisEvidence(server.url)
    sighting = Sighting(("a", "main", "u", "1"), "o|x", "v|x", "b|x", counted=True, failed=False)
    outcomes: list[str] = []
    stop = asyncio.Event()

    async def page_loads(k: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            rate = RateCheck("beacons", f"10.1.{k}.{n % 250}", 1e6, 1e6)
            try:
                got = await ledger.ingest(rate, unique("s"), 4e9, 20, "10.1.0.0", [sighting])
                outcomes.append("ok" if got.firsts == ((True, True, True),) else f"bad {got}")
            except EvidenceUnavailable as exc:  # the ledger's word for any Redis error
                outcomes.append("lost" if isinstance(exc.__cause__, RedisConnectionError) else repr(exc))

    try:
        workers = [asyncio.ensure_future(page_loads(k)) for k in range(16)]
        await _until(lambda: outcomes.count("ok") >= 200, "calls before the kill")
        server.kill()
        await _until(lambda: outcomes[-32:].count("lost") == 32, "calls failing while Redis is down")
        stop.set()
        # Nothing hangs: every worker's call in flight ended (failed) without Redis.
        await asyncio.wait_for(asyncio.gather(*workers), 10)
        assert "lost" in outcomes and not [o for o in outcomes if o not in ("ok", "lost")]
        with pytest.raises(EvidenceUnavailable) as down:
            await asyncio.wait_for(ledger.take(RateCheck("b", "c", 1, 1)), 10)
        assert isinstance(down.value.__cause__, RedisConnectionError)
        server.start()  # empty: the scripts are loaded again on NOSCRIPT
        got = await asyncio.wait_for(ledger.ingest(
            RateCheck("beacons", "10.2.0.1", 1e6, 1e6), unique("s"), 4e9, 20, "10.2.0.0", [sighting]
        ), 10)  # fmt: skip
        assert got.firsts == ((True, True, True),)
        assert (
            await asyncio.gather(*(ledger.take(RateCheck("b", f"c{i}", 1e6, 1e6)) for i in range(50)))
            == [0.0] * 50
        )
    finally:
        stop.set()
        await ledger.aclose()


def test_one_connection_per_event_loop(server: Server) -> None:
    """The test suite and uvicorn may run the ledger on more than one loop over time, or on two
    at once in two threads: each its own connection, neither one's replies the other's."""
    pipe = RedisEvidence(server.url).pipe
    assert pipe is not None
    before = server.clients()
    seen: dict[str, list[Any]] = {}

    async def calls(name: str) -> None:
        replies = await asyncio.gather(*(pipe.execute("EVAL", ECHO, 0, f"{name}{i}") for i in range(200)))
        seen[name] = [r[0].decode() for r in replies]
        seen[name + "-clients"] = [server.clients()]

    asyncio.run(calls("first"))  # a loop that ends, then another
    asyncio.run(calls("second"))
    threads = [threading.Thread(target=asyncio.run, args=(calls(f"t{k}"),)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name in ("first", "second", "t0", "t1"):
        assert seen[name] == [f"{name}{i}" for i in range(200)]
    # 200 calls at once on one loop: one connection (a finished loop's may linger until collected)
    assert seen["first-clients"] == [before + 1]


async def _until(done: Any, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_hung_server_fails_the_calls_in_flight_after_the_timeout(server: Server) -> None:
    """A stopped redis-server keeps its connections open and answers nothing: past `timeout`
    every call in flight fails with redis-py's TimeoutError (not a wait for as long as the
    caller's client keeps its connection), and once it runs again the next call reconnects."""
    pipe = Pipe(server.url, timeout=0.3)
    try:
        # A live server under a steady stream of calls never trips the watch.
        for _ in range(20):
            replies = await asyncio.gather(*(pipe.execute("EVAL", ECHO, 0, f"x{i}") for i in range(50)))
            assert [r[0] for r in replies] == [f"x{i}".encode() for i in range(50)]
            await asyncio.sleep(0.02)
        server.pause(True)
        try:
            started = time.monotonic()
            calls = [pipe.execute("EVAL", ECHO, 0, "y") for _ in range(16)]
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
            waited = time.monotonic() - started
            assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes
            assert 0.3 <= waited < 3, waited
        finally:
            server.pause(False)
        assert (await asyncio.wait_for(pipe.execute("EVAL", ECHO, 0, "z"), 10))[0] == b"z"
    finally:
        await pipe.aclose()
