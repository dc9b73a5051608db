"""Process-table helpers for the stack tests (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." - comm may contain spaces and parens.
    return raw[raw.rindex(")") + 2 :].split()


def process_exists(pid: int) -> bool:
    """True for a live process (a reaped or zombie one counts as gone)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def group_members(pgids: set[int]) -> set[int]:
    """Live pids whose process group is one of `pgids`."""
    members = set()
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) in pgids and fields[0] not in {"Z", "X"}:
            members.add(pid)
    return members


def children_of(ppid: int) -> set[int]:
    kids = set()
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[1]) == ppid and fields[0] not in {"Z", "X"}:
            kids.add(pid)
    return kids
