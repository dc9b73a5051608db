"""Two workflows for the worker's sandbox runner: one within the sandbox's rules, one not."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn
class WithinRules:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name} at {workflow.now().year}"


@workflow.defn
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()  # not deterministic: the sandbox refuses it
