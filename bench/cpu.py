"""CPU time by process, for "where does the time go" on a machine every part shares.

Read from /proc (Linux): a process's user + system time with its descendants'
(Varnish's cache child, uvicorn's workers), and the machine's busy share, so a
benchmark can say whether its wall time is CPU (the machine saturated, and by
whom) or waiting.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process (0 once it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            found.setdefault(int(fields[1]), []).append(int(entry.name))
    return found


def tree_seconds(pid: int, children: Mapping[int, list[int]] | None = None) -> float:
    """CPU time of a process and its living descendants."""
    tree = _children() if children is None else children
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_seconds(current)
        todo.extend(tree.get(current, []))
    return total


def machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICK, sum(fields) / TICK


def own_seconds() -> float:
    """This process's CPU time (the benchmark's clients and synthetic targets)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSnapshot:
    by_process: dict[str, float]
    busy: float
    total: float

    @classmethod
    def take(cls, pids: Mapping[str, int | None]) -> CpuSnapshot:
        tree = _children()
        by = {name: tree_seconds(pid, tree) for name, pid in pids.items() if pid is not None}
        by["bench (clients, RUM target)"] = own_seconds()
        busy, total = machine()
        return cls(by, busy, total)

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per process between two snapshots, plus `machine busy %`."""
        out = {name: round(self.by_process[name] - before.by_process.get(name, 0.0), 1)
               for name in self.by_process}  # fmt: skip
        span = self.total - before.total
        out["machine busy %"] = round(100 * (self.busy - before.busy) / span, 1) if span else 0.0
        return out
