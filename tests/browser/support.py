"""Helpers of the browser tests: load the shell as one user, read what the loader did."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from playwright.async_api import Page
from prometheus_client.parser import text_string_to_metric_families

from api.beacon_tokens import BucketKeys
from demo.scenario import Demo
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DONE = "() => window.skyline && window.skyline.done"


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def demo_for(api: httpx.AsyncClient, s3: S3Client, settings: Settings, workdir: Path, apartment: str) -> Demo:
    """The demo's API helpers (apartment, rollouts, shell) on the test stack, quietly."""
    return Demo(
        api,
        s3,
        settings,
        api_url=f"http://{settings.api_host}:{settings.api_port}",
        temporal_ui="",
        workdir=workdir,
        apartment=apartment,
        say=lambda _line: None,
    )


def bucket_key(settings: Settings, user: str) -> str:
    """A bucket key for the id `user`, signed with the stack's beacon key: the page then splits
    as `skyline.split` does for `SplitUser(id=user)`, and its token covers that assignment
    (the API issues random ids; a test picks them to know what each page gets)."""
    assert settings.beacon_key is not None
    return BucketKeys(settings.beacon_key.get_secret_value().encode()).issue(user)


async def load_as(page: Page, shell_url: str, user: str, settings: Settings | None = None) -> dict[str, Any]:
    """Open the shell as `user` (with its bucket key when `settings` are given: without one the
    page is a first visit, on stable units) and return the loader's report once it is done."""
    bucket = f"&skyline_bucket={bucket_key(settings, user)}" if settings is not None else ""
    await page.goto(f"{shell_url}?skyline_user={user}{bucket}")
    await page.wait_for_function(DONE, timeout=20_000)
    report: dict[str, Any] = await page.evaluate("window.skyline.report")
    assert report.get("error") is None, report
    return report


async def slot_text(page: Page, building: str) -> str:
    return await page.inner_text(f'[data-skyline-building="{building}"]')


async def unit_loads(api: httpx.AsyncClient, apartment: str) -> dict[tuple[str, str, str, str], float]:
    """skyline_unit_loads_total of one apartment: (building, unit, version, outcome) -> count.

    Series still at 0 (every outcome of a version exists from its first token) are left out."""
    response = await api.get("/metrics/")
    assert response.status_code == 200
    out: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name == "skyline_unit_loads_total" and s.labels.get("apartment") == apartment and s.value:
                key = (s.labels["building"], s.labels["unit"], s.labels["version"], s.labels["outcome"])
                out[key] = s.value
    return out
