"""`skyline rollout vitals` and GET /rollouts/{id}/vitals: web vitals without a dashboard.

Real Prometheus scraping the test's RUM target (tests/support/rum.py), which exports
the LCP histogram the API's beacon endpoint exports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyline.settings import Settings
from tests.cli.conftest import Cli, refused
from tests.support.rum import RumTarget
from tests.support.scenario import create_apartment, make_bundle, wait_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


def wait_vitals(cli: Cli, rollout_id: str, versions: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer: dict[str, Any] = cli.json("rollout", "vitals", rollout_id, "--window", "60")
        seen = {row["version"] for row in answer["versions"]}
        if versions <= seen or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


async def test_vitals_per_version_from_prometheus(
    cli: Cli, api: httpx.AsyncClient, rum: RumTarget, settings: Settings, tmp_path: Path
) -> None:
    apartment = await create_apartment(api)
    created = cli.json(
        "rollout", "start", "-a", apartment, "-b", "header", "-u", "header", "-V", "1.1.0",
        "--bundle-dir", str(make_bundle(tmp_path / "dist", "1.1.0")),
        "--steps", "5,100", "--bake", "600", "--interval", "60",
    )  # fmt: skip
    rollout_id = created["id"]
    await wait_state(api, rollout_id, {"progressing"})

    # before any page reported a vital: an empty list, not an error
    empty = cli.json("rollout", "vitals", rollout_id)
    assert empty["versions"] == [] and empty["window_seconds"] == 600
    assert "no web vitals reported" in cli("rollout", "vitals", rollout_id).stdout

    # buckets 0.5, 1, 2.5, 4, 10 s: a 3 s LCP is in (2.5, 4], a 0.8 s one in (0.5, 1]
    with (
        rum.traffic(apartment, "header", "header", "1.1.0", lcp_seconds=3.0),
        rum.traffic(apartment, "header", "header", "1.0.0", lcp_seconds=0.8),
    ):
        answer = wait_vitals(cli, rollout_id, {"1.0.0", "1.1.0"})
    assert answer["apartment"] == apartment and answer["building"] == "header"
    rows = {row["version"]: row for row in answer["versions"]}
    assert [row["version"] for row in answer["versions"]] == ["1.1.0", "1.0.0"]  # canary first
    assert rows["1.1.0"]["role"] == "canary" and rows["1.0.0"]["role"] == "baseline"
    canary, baseline = rows["1.1.0"]["vitals"], rows["1.0.0"]["vitals"]
    assert set(canary) == {"lcp"} and set(baseline) == {"lcp"}  # the target reports no INP or CLS
    assert 2.5 < canary["lcp"]["p75"] <= 4.0 and canary["lcp"]["pages"] > 0
    assert 0.5 < baseline["lcp"]["p75"] <= 1.0 and baseline["lcp"]["pages"] > 0

    table = cli("rollout", "vitals", f"{apartment}/header", "--window", "60")
    assert table.exit_code == 0, table.output
    assert "header@1.1.0" in table.stdout and "canary" in table.stdout and "header@1.0.0" in table.stdout

    refused(cli("rollout", "vitals", "rollout.nowhere.header"), "404", "no rollout")
    assert cli("rollout", "vitals", rollout_id, "--window", "1").exit_code == 2  # below the minimum
    direct = await api.get(f"/rollouts/{rollout_id}/vitals", params={"window": 1})
    assert direct.status_code == 422 and direct.json()["error"]["field"]
    cli.json("rollout", "rollback", rollout_id, "-r", "test done")
