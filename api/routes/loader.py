"""Where shells get the loader: published to storage, served by the edge.

The loader is published like a bundle: `loader/skyline-loader.<sha256>.js`,
`Cache-Control: immutable`, with a sha384 SRI shells pin. The edge serves it,
so page loads never depend on the API being up (only beacons do), it is cached
next to the bundles it loads, and a new loader is a new URL, never a purge.
The API only says where it is: `GET /loader` for the URL + integrity + a
ready `<script>` tag, `GET /loader.js` as a short-lived redirect for shells
that do not pin.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from adapters.storage import IMMUTABLE, is_missing
from api.deps import SettingsDep, StoreDep
from api.errors import ApiError
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOADER_SOURCE = Path(__file__).resolve().parents[2] / "loader" / "skyline-loader.js"

router = APIRouter(tags=["loader"])


class LoaderAsset(BaseModel):
    key: str
    url: str
    integrity: str
    size: int

    def script_tag(self) -> str:
        return (
            f'<script type="module" src="{self.url}" integrity="{self.integrity}" '
            'crossorigin="anonymous"></script>'
        )


class LoaderInfo(LoaderAsset):
    script: str
    # Where the page's loader configuration sends beacons (`beacons`): the collector when
    # one is configured. Optional for clients written before it.
    beacons: str | None = None


def browser_base(request: Request, settings: Settings) -> str:
    """Where pages send beacons and ask for tokens: the collector when one is configured
    (SKYLINE_COLLECTOR_URL), else the process the browser called."""
    return (settings.collector_url or str(request.base_url)).rstrip("/")


def loader_asset(settings: Settings, source: bytes) -> LoaderAsset:
    digest = hashlib.sha256(source).hexdigest()[:20]
    key = f"loader/skyline-loader.{digest}.js"
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(source).digest()).decode()
    return LoaderAsset(key=key, url=settings.public_url(key), integrity=integrity, size=len(source))


def loader_source(settings: Settings) -> Path:
    return settings.loader_source or LOADER_SOURCE


def publish_loader(s3: S3Client, settings: Settings, source_path: Path | None = None) -> LoaderAsset:
    """Upload the loader under its content hash unless it is there already. Idempotent."""
    source = (source_path or loader_source(settings)).read_bytes()
    asset = loader_asset(settings, source)
    try:
        s3.head_object(Bucket=settings.s3_bucket, Key=asset.key)
    except ClientError as exc:
        if not is_missing(exc):
            raise
        s3.put_object(
            Bucket=settings.s3_bucket,
            Key=asset.key,
            Body=source,
            ContentType="text/javascript; charset=utf-8",
            CacheControl=IMMUTABLE,
        )
    return asset


async def published_loader(request: Request, settings: SettingsDep, store: StoreDep) -> LoaderAsset:
    asset: LoaderAsset | None = getattr(request.app.state, "loader_asset", None)
    if asset is None:
        source = loader_source(settings)
        if not source.is_file():
            raise ApiError(
                503,
                "loader_missing",
                f"this installation has no {source}; set SKYLINE_LOADER_SOURCE to the loader's "
                "path (loader/skyline-loader.js of the repository) to publish it",
            )
        asset = await asyncio.to_thread(publish_loader, store.s3, settings)
        request.app.state.loader_asset = asset
    return asset


@router.get("/loader", response_model=LoaderInfo)
async def loader_info(request: Request, settings: SettingsDep, store: StoreDep) -> LoaderInfo:
    """The loader's edge URL and SRI, the `<script>` tag a shell includes, and where its
    configuration sends beacons."""
    asset = await published_loader(request, settings, store)
    beacons = f"{browser_base(request, settings)}/beacons"
    return LoaderInfo(**asset.model_dump(), script=asset.script_tag(), beacons=beacons)


# One route per method, each with its own operation id: a GET+HEAD api_route gives both
# FastAPI's id `loader_js_loader_js_get` (its first method), which it logs as a duplicate.
@router.get("/loader.js", response_class=RedirectResponse, status_code=307, operation_id="loader_js")
@router.head("/loader.js", response_class=RedirectResponse, status_code=307, operation_id="loader_js_head")
async def loader_js(request: Request, settings: SettingsDep, store: StoreDep) -> RedirectResponse:
    """Redirect to the current loader at the edge (cached a minute; pin /loader's URL instead)."""
    asset = await published_loader(request, settings, store)
    return RedirectResponse(asset.url, status_code=307, headers={"Cache-Control": "public, max-age=60"})
