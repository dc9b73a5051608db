"""Child processes of the embedded stack: start, health-wait, stop, show logs.

Every process runs in its own session (process group), so `stop()` reaches
the children it forks too (varnishd's cache child, for instance) and a Ctrl-C
in the launcher's terminal does not hit them before the launcher decides the
shutdown order.

Every process also dies with the process that started it: the child asks the
kernel for SIGTERM when its parent goes (`prctl(PR_SET_PDEATHSIG)`), so a
killed test runner, `make run` or benchmark leaves no server behind. The
kernel ties that signal to the parent *thread* that forked, so every start
goes through one spawner thread that lives as long as the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import queue
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")


class StackError(RuntimeError):
    """A component of the embedded stack could not be started or is unhealthy."""


_PR_SET_PDEATHSIG = 1
try:  # resolved before any fork: the child only calls it
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn: SIGTERM this child when `parent` (its forking thread) goes away."""
    prctl = _prctl
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class _Job(Generic[T]):
    """A call run on the spawner thread; its outcome stays here until read, so a caller
    interrupted before *or after* it finished still finds it."""

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._state = "queued"

    def __call__(self) -> None:
        with self._lock:
            if self._state == "cancelled":
                return
            self._state = "running"
        try:
            self.result = self.call()
        except BaseException as exc:  # handed to the caller
            self.error = exc
        finally:
            self.done.set()

    def cancel(self) -> bool:
        """True if the call will never run; False if it runs or ran (wait for `done`)."""
        with self._lock:
            if self._state == "queued":
                self._state = "cancelled"
            return self._state == "cancelled"


class _Spawner:
    """One daemon thread that forks every child, so PDEATHSIG fires only when the process dies."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, call: Callable[[], T], abandon: Callable[[T], object] | None = None) -> T:
        """`call()` on the spawner thread. If the wait is interrupted (a signal handler raised,
        as `python -m stack run`'s does on Ctrl-C during start-up), the call still finishes and
        `abandon` undoes its result, which the caller will never see, before the error goes on:
        a CI run caught a varnishd forked just as SIGTERM came outliving its launcher.

        The handler may run before the call finished or just after (a signal delivered to
        another thread reaches the main thread's handler only once its wait ends): the
        outcome is kept on the job, never consumed by the interrupted wait."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="stack-spawner", daemon=True)
                self._thread.start()
        job = _Job(call)
        try:
            self._jobs.put(job)  # inside: an interrupt may come before or just after the put
            job.done.wait()
        except BaseException:
            if not job.cancel():
                job.done.wait()
                if abandon is not None and job.error is None:
                    abandon(job.result)  # type: ignore[arg-type]
            raise
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _loop(self) -> None:
        while True:
            self._jobs.get()()


_SPAWNER = _Spawner()


def spawn(
    argv: Sequence[str], adopt: Callable[[subprocess.Popen[bytes]], object] | None = None, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """subprocess.Popen in a new session whose child gets SIGTERM when this process dies.

    `adopt` gets the child on the spawner thread, before this returns, so no interrupt of
    the caller falls between the fork and the caller knowing its child."""
    parent = os.getpid()

    def job() -> subprocess.Popen[bytes]:
        popen = subprocess.Popen(list(argv), start_new_session=True, preexec_fn=_die_with(parent), **kwargs)
        if adopt is not None:
            adopt(popen)
        return popen

    return _SPAWNER.run(job, abandon=stop_group)


class ManagedProcess:
    """One long-running command, its pid and its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self._popen is not None:
            raise StackError(f"{self.name}: already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        try:
            spawn(
                self.argv,
                adopt=self._adopt,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        except OSError as exc:
            self._close_log()
            raise StackError(f"{self.name}: cannot run {self.argv[0]!r}: {exc}") from exc

    def _adopt(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL it. Idempotent."""
        if self._popen is not None:
            stop_group(self._popen, timeout)
            self._close_log()

    def tail(self, n: int = 40) -> str:
        try:
            with self.log_path.open("rb") as f:
                lines = deque(f, maxlen=n)
        except OSError:
            return ""
        return b"".join(lines).decode("utf-8", errors="replace").rstrip()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"


def stop_group(popen: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group `popen` leads (`spawn` starts a session), wait up to
    `timeout`, then SIGKILL it."""
    pgid = popen.pid  # start_new_session: the leader's pid is the group id
    if _group_exists(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        if not _wait_group_gone(popen, pgid, timeout):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            _wait_group_gone(popen, pgid, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=1.0)


def _group_exists(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group.

    Orphaned members are reparented to PID 1, which may reap them late; a
    zombie holds no resources and must not delay the shutdown.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces and parens
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split(maxsplit=3)[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


def _wait_group_gone(popen: subprocess.Popen[bytes], pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        popen.poll()  # reap the leader as soon as it exits
        if popen.returncode is not None and not _group_exists(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# Ports handed out below the kernel's ephemeral range start here: low enough
# to leave room (10k+ ports under Linux's default 32768), high enough to stay
# clear of the registered ports system services tend to use.
_LOWEST_PICK = 20000
_LINUX_EPHEMERAL = (32768, 60999)
# Every process on this machine that picks ports (the two pytest-xdist workers of
# `make test`, a benchmark beside them) records its picks here with its pid, under
# an flock: a port a living process picked is never picked again, neither before
# its server binds it nor while that server is stopped for a restart.
PORT_REGISTRY = Path(tempfile.gettempdir()) / "skyline-picked-ports"
_picked_lock = threading.Lock()  # threads of this process; the flock is per open file
_picked: set[int] = set()  # this process's picks, if the registry cannot be used
_rng = random.SystemRandom()  # no state: forked children never repeat a parent's picks


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for source ports of outgoing connections (and `bind(0)`)."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return _LINUX_EPHEMERAL
    return low, high


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def _held(text: str) -> dict[int, int]:
    """port -> pid of the registry's entries whose process still runs."""
    held: dict[int, int] = {}
    alive: dict[int, bool] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            continue  # a line torn by a crash mid-write: ignore it
        port, pid = int(fields[0]), int(fields[1])
        if alive.setdefault(pid, pid == os.getpid() or _alive(pid)):
            held[port] = pid
    return held


def _pick(host: str, low: int, taken: Callable[[int], bool]) -> int | None:
    for _ in range(200):
        port = _rng.randrange(_LOWEST_PICK, low)
        if port not in _picked and not taken(port) and not port_in_use(port, host):
            return port
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on, and no living process on this machine was handed.

    Picked below the kernel's ephemeral range on purpose. A `bind(0)` port
    comes from the range the kernel also draws outgoing connections' source
    ports from, so between the pick and the server binding it, any client
    connection (a worker dialling Temporal, a scrape) can take it. A CI run
    failed exactly so: the fault rig's API port was taken by the time the API
    started. Below the range only an explicit bind takes a port, and picks of
    other processes are in `PORT_REGISTRY`.
    """
    low, _ = ephemeral_range()
    if low - _LOWEST_PICK >= 1000:
        with _picked_lock:
            try:
                with open(PORT_REGISTRY, "a+") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
                    fh.seek(0)
                    held = _held(fh.read())
                    port = _pick(host, low, held.__contains__)
                    if port is not None:
                        held[port] = os.getpid()
                        fh.seek(0)
                        fh.truncate()
                        fh.write("".join(f"{p} {pid}\n" for p, pid in held.items()))
            except OSError:  # no writable temp dir: this process's own picks still differ
                port = _pick(host, low, lambda _: False)
            if port is not None:
                _picked.add(port)
                return port
    # A kernel configured with (almost) no room below its range: take its pick, but still
    # never one this process handed out before.
    with _picked_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if port not in _picked:
                _picked.add(port)
                return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if binding `host:port` fails, i.e. something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if a TCP connection to `host:port` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `predicate` until it returns True.

    Exceptions raised by the predicate count as "not yet" (the last one is
    reported). Raises StackError naming `what`, with the process's log tail,
    on timeout or as soon as `process` has exited.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if predicate():
                return
            last_error = None
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
        if process is not None and not process.alive():
            raise StackError(_failure(f"{what}: process exited with code {process.returncode}", process))
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise StackError(_failure(f"{what}: not ready after {timeout:g}s{detail}", process))
        time.sleep(interval)


def _failure(message: str, process: ManagedProcess | None) -> str:
    if process is None:
        return message
    tail = process.tail()
    log = f"\n--- last lines of {process.log_path} ---\n{tail}" if tail else ""
    return f"{message}{log}"
