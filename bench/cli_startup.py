"""`python -m bench --only cli`: how long `skyline` takes to answer, against `python -c pass`.

Offline (no stack). Each round runs, one after the other so they share the
machine's load: `python -c pass` (the interpreter's own start, the floor),
`skyline --help`, and `skyline rollout get shop/header` against an unreachable
API (a closed local port: the command imports and builds everything it needs,
connects, is refused and exits 4, so no server's latency is in the figure;
rendering a status table instead of the error adds no imports). Wall time per
run and CPU time (user + system, less sensitive to a loaded machine); the
ratio is each command's p50 over `python -c pass`'s p50 in the same run.

The budget (issue 24) is 300 ms of wall time per command on this machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.report import ms, summary, table, write

BUDGET_S = 0.300
ROUNDS = 15


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released: refused, not filtered)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _skyline() -> list[str]:
    """The installed `skyline` script (what a user runs), else `python -m cli`."""
    script = Path(sys.executable).parent / "skyline"
    found = str(script) if script.exists() else shutil.which("skyline")
    return [found] if found else [sys.executable, "-m", "cli"]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main(rounds: int = ROUNDS) -> dict[str, object]:
    skyline = _skyline()
    api_url = f"http://127.0.0.1:{_closed_port()}"
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], 0),
        "skyline --help": ([*skyline, "--help"], 0),
        "skyline rollout get shop/header (API unreachable)": (
            [*skyline, "--api-url", api_url, "rollout", "get", "shop/header"],
            4,
        ),
    }
    # No .pyc writes mid-run, no user site: the same interpreter state for every round.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    for argv, _ in commands.values():  # warm the OS page cache and the .pyc files once
        _run(argv, {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (argv, expected) in commands.items():
            wall, cpu, code = _run(argv, env)
            if code != expected:
                raise RuntimeError(f"{name} exited {code}, not {expected}")
            walls[name].append(wall)
            cpus[name].append(cpu)
    wall_s = {name: summary(v) for name, v in walls.items()}
    cpu_s = {name: summary(v) for name, v in cpus.items()}
    floor = wall_s["python -c pass"]["p50"]
    rows = [
        [
            name,
            ms(wall_s[name]["p50"]),
            ms(wall_s[name]["min"]),
            ms(wall_s[name]["p95"]),
            ms(cpu_s[name]["p50"]),
            f"{wall_s[name]['p50'] / floor:.1f}x",
            "-" if name == "python -c pass" else ("yes" if wall_s[name]["p50"] <= BUDGET_S else "NO"),
        ]
        for name in commands
    ]
    load = os.getloadavg()
    text = table(
        f"CLI startup, {rounds} interleaved rounds (ms)",
        ["command", "wall p50", "wall min", "wall p95", "CPU p50", "vs pass (p50)", "<= 300 ms"],
        rows,
        notes=[
            f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            f"on {os.cpu_count()} CPUs; wall time grows with the load, CPU time much less.",
            "`rollout get` is against a closed local port (exit 4): startup, imports, the HTTP "
            "client and the error path, no server time.",
        ],
    )
    results: dict[str, object] = {
        "budget_ms": BUDGET_S * 1000,
        "command": skyline,
        "wall": wall_s,
        "cpu": cpu_s,
        "samples": {"wall": walls, "cpu": cpus},
        "load_average": load,
    }
    write("cli", {"rounds": rounds}, results, text)
    return results


if __name__ == "__main__":
    main()
