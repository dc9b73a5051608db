"""ManagedProcess, wait_until and port helpers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stack import processes
from stack.processes import (
    PORT_REGISTRY,
    ManagedProcess,
    StackError,
    _Spawner,
    ephemeral_range,
    free_port,
    port_in_use,
    stop_group,
    wait_until,
)
from tests.stack.helpers import group_members, process_exists

ROOT = Path(__file__).resolve().parents[2]


def _spawn(tmp_path: Path, script: str, name: str = "demo") -> ManagedProcess:
    process = ManagedProcess(name, ["sh", "-c", script], tmp_path / "logs" / f"{name}.log")
    process.start()
    return process


def test_stop_terminates_the_whole_process_group(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "sleep 60 & sleep 60 & echo started; wait")
    assert process.pid is not None
    wait_until(lambda: process.tail() == "started", 5.0, "demo", process)
    members = group_members({process.pid})
    assert len(members) == 3

    process.stop()

    assert not process.alive()
    assert [pid for pid in members if process_exists(pid)] == []
    process.stop()  # idempotent


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "trap '' TERM; echo armed; sleep 60 & wait")
    assert process.pid is not None
    wait_until(lambda: process.tail() == "armed", 5.0, "demo", process)
    members = group_members({process.pid})

    started = time.monotonic()
    process.stop(timeout=0.5)

    assert time.monotonic() - started < 5.0
    assert [pid for pid in members if process_exists(pid)] == []


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "for i in 1 2 3 4 5; do echo line$i; done")
    wait_until(lambda: not process.alive(), 5.0, "demo")
    assert process.tail(2) == "line4\nline5"
    assert process.returncode == 0
    process.stop()


def test_wait_until_reports_a_dead_process_with_its_log(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "echo 'fatal: config is broken' >&2; exit 7", name="edge")
    started = time.monotonic()
    with pytest.raises(StackError) as failure:
        wait_until(lambda: False, 30.0, "edge", process)
    assert time.monotonic() - started < 5.0  # not the full timeout
    assert "edge: process exited with code 7" in str(failure.value)
    assert "fatal: config is broken" in str(failure.value)


def test_wait_until_times_out_with_the_last_error(tmp_path: Path) -> None:
    process = _spawn(tmp_path, "echo still booting; sleep 60", name="api")
    try:

        def probe() -> bool:
            raise ConnectionError("connection refused")

        with pytest.raises(StackError) as failure:
            wait_until(probe, 0.3, "api", process, interval=0.05)
        message = str(failure.value)
        assert "api: not ready after 0.3s" in message
        assert "connection refused" in message
        assert "still booting" in message
    finally:
        process.stop()


def test_starting_a_missing_binary_is_a_stack_error(tmp_path: Path) -> None:
    process = ManagedProcess("ghost", ["/nonexistent/ghostd"], tmp_path / "ghost.log")
    with pytest.raises(StackError, match="ghost: cannot run"):
        process.start()


def test_free_port_and_port_in_use() -> None:
    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_in_use(port)


def test_free_ports_never_come_from_the_range_outgoing_connections_use() -> None:
    """An outgoing connection's source port can never be a port a server is about to bind."""
    low, high = ephemeral_range()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(50)]
        try:
            sources = {c.getsockname()[1] for c in clients}
            assert all(low <= p <= high for p in sources)  # where the kernel draws them from
            picks = [free_port() for _ in range(200)]
        finally:
            for c in clients:
                c.close()
    assert len(set(picks)) == len(picks)  # never handed out twice
    assert not any(low <= p <= high for p in picks)
    assert not sources & set(picks)


def test_with_no_room_below_the_range_the_kernel_picks_but_never_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback for a kernel whose ephemeral range starts low: its `bind(0)` pick, still
    distinct from every port this process handed out (StackPorts.ephemeral relies on it)."""
    low, high = ephemeral_range()
    monkeypatch.setattr(processes, "ephemeral_range", lambda: (processes._LOWEST_PICK + 500, high))
    picks = [free_port() for _ in range(100)]
    assert all(low <= p <= high for p in picks)  # the kernel's own picks
    assert len(set(picks)) == len(picks)


def test_two_processes_never_get_the_same_port_and_a_dead_process_picks_are_freed() -> None:
    """pytest-xdist runs two workers that each start stacks: a port one of them picked (its
    server not bound yet, or stopped for a restart) is never handed to the other."""
    mine = {free_port() for _ in range(300)}
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from stack.processes import free_port as f; "
            "print([os.getpid(), [f() for _ in range(300)]])",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    pid, picks = json.loads(child.stdout)
    theirs = set(picks)
    assert len(theirs) == 300 and not mine & theirs
    free_port()  # rewrites the registry: the child has exited, its picks are free again
    held = [tuple(map(int, line.split())) for line in PORT_REGISTRY.read_text().splitlines()]
    assert mine <= {port for port, _ in held} and pid not in {owner for _, owner in held}


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("when", ["while the child is forked", "just after it was forked"])
def test_an_interrupt_around_a_fork_leaves_no_child_behind(when: str) -> None:
    """`python -m stack run` raises out of start-up on SIGTERM. If that lands while the
    spawner thread forks, or just after (the signal went to another thread, so the main
    thread's handler runs only once its wait has ended), the child the caller never
    received is stopped, not left running, and the caller does not hang."""
    spawner = _Spawner()
    interrupted = threading.Event()
    forked: list[subprocess.Popen[bytes]] = []
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main  # signal handlers run here

    def fork() -> subprocess.Popen[bytes]:
        if when == "while the child is forked":
            # Fork only once the caller's wait has been interrupted. A signal that lands just
            # before the caller blocks is handled only when its wait ends (CPython checks for
            # signals between bytecodes), so signal again until the handler has run.
            for _ in range(1000):
                signal.pthread_kill(main, signal.SIGUSR1)
                if interrupted.wait(0.01):
                    break
            assert interrupted.is_set()
        forked.append(subprocess.Popen(["sleep", "60"], start_new_session=True))
        if when == "just after it was forked":
            # Delivered to this (spawner) thread: the caller's wait is not interrupted; its
            # handler runs when the wait returns with the child.
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        return forked[-1]

    def on_signal(_signum: int, _frame: object) -> None:
        if not interrupted.is_set():  # once, as `python -m stack run`'s handler
            interrupted.set()
            raise _Interrupted

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with pytest.raises(_Interrupted):
            spawner.run(fork, abandon=stop_group)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert len(forked) == 1 and forked[0].poll() is not None  # stopped before the error went on


_ORPHAN_SCRIPT = """
import json, sys, time
from pathlib import Path
from stack.embedded import EmbeddedStack, StackPorts
stack = EmbeddedStack(Path(sys.argv[1]), StackPorts.ephemeral(), {"s3", "edge", "prometheus"})
stack.start()
print(json.dumps(stack.pids()), flush=True)
time.sleep(600)
"""


def test_servers_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """SIGKILL the launcher (no chance to clean up): every server it started goes too."""
    out = tmp_path / "launcher.out"
    with out.open("wb") as sink:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path / "state")],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: out.read_text().startswith("{") or launcher.poll() is not None, 60.0, "launcher")
        assert launcher.poll() is None, out.read_text()
        pids: dict[str, int] = json.loads(out.read_text().splitlines()[0])
        assert set(pids) == {"s3", "edge", "prometheus"}
        everything = group_members(set(pids.values()))  # varnishd's cache child too
        assert len(everything) > len(pids)

        launcher.kill()
        launcher.wait()

        wait_until(lambda: not [p for p in everything if process_exists(p)], 20.0, "servers gone")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
