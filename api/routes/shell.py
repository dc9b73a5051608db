"""A first shell without writing one: a minimal page per apartment, served by the edge.

`GET /apartments/{apartment}/shell` writes the apartment's shell page (the
loader with its SRI, a slot for every building the manifest has now, the
loader's report, a user id form; api/shell_page.py) next to its manifest,
`manifests/<apartment>/shell/watch.html`, and redirects there (307): the edge
serves it, so the page, the manifest, the loader and the bundles share one
origin and the loader's module scripts need no CORS. Each visit rewrites the
page, so a building added later appears on the next visit. `GET /shells`
lists every apartment's shell link (the startup banner prints it). Both are
public like `/loader`: a browser opens them, and they reveal what the edge
serves anyway (apartment ids, building ids).
"""

from __future__ import annotations

import asyncio
import hashlib
import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import SettingsDep, StoreDep
from api.errors import ApiError
from api.routes.loader import browser_base, published_loader
from api.shell_page import manifest_url, publish_shell, shell_key, watch_shell_html
from skyline.manifest import SLUG

router = APIRouter(tags=["shells"])

SHELL_PAGE = "watch.html"


def _api_base(request: Request) -> str:
    # What the browser called: the links of /shells go back to the same API.
    return str(request.base_url).rstrip("/")


@router.get(
    "/apartments/{apartment}/shell",
    response_class=RedirectResponse,
    status_code=307,
    responses={307: {"description": "to the page at the edge"}, 404: {"description": "no such apartment"}},
)
async def apartment_shell(
    request: Request, apartment: str, settings: SettingsDep, store: StoreDep
) -> RedirectResponse:
    """Publish the apartment's minimal shell page to the edge and redirect to it: every
    building mounted by the loader; `?skyline_user=<id>` (or the page's form) sets the user."""
    if not SLUG.match(apartment) or len(apartment) > 63:
        raise ApiError(422, "invalid_apartment", f"{apartment[:70]!r} is not an apartment id", "apartment")
    head = await asyncio.to_thread(store.read, apartment)
    found = head[0].apartments.get(apartment) if head is not None else None
    if found is None:
        raise ApiError(404, "not_found", f"no apartment {apartment!r}", "apartment")
    loader = await published_loader(request, settings, store)
    page = watch_shell_html(
        apartment=apartment,
        name=found.name,
        manifest=manifest_url(settings, apartment),
        beacons=f"{browser_base(request, settings)}/beacons",
        loader=loader,
        buildings=list(found.buildings),
    )
    url = settings.public_url(shell_key(apartment, SHELL_PAGE))
    digest = hashlib.sha256(page.encode()).hexdigest()
    written: dict[str, str] | None = getattr(request.app.state, "shell_pages", None)
    if written is None:
        written = request.app.state.shell_pages = {}
    if written.get(apartment) != digest:  # an anonymous caller cannot make it write twice
        url = await asyncio.to_thread(publish_shell, store.s3, settings, apartment, page, SHELL_PAGE)
        written[apartment] = digest
    query = request.url.query
    return RedirectResponse(
        f"{url}?{query}" if query else url, status_code=307, headers={"Cache-Control": "no-store"}
    )


@router.get("/shells", response_class=HTMLResponse)
async def shells(request: Request, store: StoreDep) -> HTMLResponse:
    """Every apartment's shell page, linked (an empty list until the first apartment)."""
    apartments = await asyncio.to_thread(store.list_apartments)
    base = _api_base(request)
    items = "\n".join(
        f'<li><a href="{html.escape(f"{base}/apartments/{a}/shell")}">{html.escape(a)}</a></li>'
        for a in apartments
        if SLUG.match(a)
    )
    body = items or "<li>no apartment yet: create one (README, A first rollout)</li>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Skyline shells</title></head>
<body style="font-family: system-ui, sans-serif">
<h1>Skyline shells</h1>
<p>A minimal shell page per apartment: the loader mounts every building;
<code>?skyline_user=&lt;id&gt;</code> or the page's form sets the user.</p>
<ul>
{body}
</ul>
</body></html>
"""
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
