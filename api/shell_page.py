"""Shell pages: slots for the buildings, the loader config, the loader itself.

`shell_html` is the demo's and the browser tests' page; `watch_shell_html` the
minimal page the stack serves per apartment (api/routes/shell.py).

Shells are published to storage and served by the edge, like the manifest
and the bundles, so the page, the manifest and every unit module share one
origin: no CORS setup is needed for module scripts with SRI on this stack.
Beacons go to the API (another origin) as CORS simple requests.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adapters.manifest_store import head_key
from adapters.storage import MANIFEST_CACHE_CONTROL
from api.routes.loader import LoaderAsset
from skyline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STYLE = """
  :root { font-family: system-ui, sans-serif; color: #1d2433; background: #f4f6fa; }
  body { margin: 0; display: grid; grid-template-columns: 1fr 300px; grid-template-rows: auto 1fr auto;
         grid-template-areas: "header header" "main status" "footer footer"; min-height: 100vh; }
  [data-skyline-building] { min-height: 48px; }
  [data-skyline-building="header"] { grid-area: header; }
  [data-skyline-building="main"] { grid-area: main; padding: 16px; }
  [data-skyline-building="footer"] { grid-area: footer; }
  [data-skyline-state="load_error"] { outline: 3px dashed #c62828; }
  #skyline-status { grid-area: status; padding: 16px; font: 12px/1.5 ui-monospace, monospace;
                    background: #fff; border-left: 1px solid #dde2ec; }
  #skyline-status h2 { font: 600 13px system-ui, sans-serif; margin: 0 0 8px; }
  #skyline-status td { padding: 1px 6px 1px 0; vertical-align: top; }
"""

# Classic script, before the loader: listening before the loader can finish.
STATUS_SCRIPT = """
document.addEventListener("skyline:done", (event) => {
  const r = event.detail, box = document.getElementById("skyline-status");
  // textContent only: the user id comes from the query string.
  const el = (tag, text) => { const e = document.createElement(tag); e.textContent = text; return e; };
  const table = document.createElement("table");
  for (const [b, e] of Object.entries(r.buildings || {})) {
    const tr = table.insertRow();
    for (const v of [b, e.unit || "-", e.state, `${e.reason} #${e.bucket}`]) tr.append(el("td", v));
  }
  box.replaceChildren(el("h2", "Skyline loader"), el("div", `user ${r.user}`),
    el("div", `manifest revision ${r.revision}`), el("div", `beacons: HTTP ${r.beacon_status}`), table);
  if (r.error) box.append(el("p", r.error));
});
"""


def manifest_url(settings: Settings, apartment: str) -> str:
    return settings.public_url(head_key(apartment))


def shell_key(apartment: str, name: str = "index.html") -> str:
    # Next to the apartment's manifest: the edge serves manifests/, bundles/ and loader/ only.
    return f"manifests/{apartment}/shell/{name}"


def shell_html(
    *,
    title: str,
    apartment: str,
    manifest: str,
    beacons: str | None,
    loader: LoaderAsset,
    buildings: Sequence[str] = ("header", "main", "footer"),
    user: dict[str, Any] | None = None,
) -> str:
    config: dict[str, Any] = {"apartment": apartment, "manifest": manifest, "beacons": beacons}
    if user is not None:
        config["user"] = user
    # `</` cannot end the JSON's script element early.
    config_json = json.dumps(config).replace("</", "<\\/")
    slots = "\n".join(f'  <div data-skyline-building="{html.escape(b)}"></div>' for b in buildings)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(title)}</title>
  <style>{STYLE}</style>
</head>
<body>
{slots}
  <aside id="skyline-status">loading…</aside>
  <script>{STATUS_SCRIPT}</script>
  <script type="application/json" data-skyline>{config_json}</script>
  {loader.script_tag()}
</body>
</html>
"""


def publish_shell(
    s3: S3Client, settings: Settings, apartment: str, page: str, name: str = "index.html"
) -> str:
    """Store the page next to the manifest; returns its URL at the edge."""
    key = shell_key(apartment, name)
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=key,
        Body=page.encode(),
        ContentType="text/html; charset=utf-8",
        CacheControl=MANIFEST_CACHE_CONTROL,
    )
    return settings.public_url(key)


# The page the stack serves per apartment (api/routes/shell.py): every building stacked, the
# loader's report, and a form to load the page as another user id or as a new browser.
WATCH_STYLE = """
  :root { font-family: system-ui, sans-serif; color: #1d2433; background: #f4f6fa; }
  body { margin: 0 auto; max-width: 960px; padding: 12px; }
  #skyline-controls { display: flex; gap: 8px; align-items: center; margin-bottom: 12px; }
  [data-skyline-building] { min-height: 48px; margin: 6px 0; background: #fff; border: 1px solid #dde2ec; }
  [data-skyline-building]::before { content: attr(data-skyline-building); display: block;
    font: 11px ui-monospace, monospace; color: #6b7385; padding: 2px 6px; }
  [data-skyline-state="load_error"] { outline: 3px dashed #c62828; }
  #skyline-status { margin-top: 12px; font: 12px/1.5 ui-monospace, monospace; }
  #skyline-status h2 { font: 600 13px system-ui, sans-serif; margin: 0 0 8px; }
  #skyline-status td { padding: 1px 6px 1px 0; vertical-align: top; }
"""

# The user id goes to the loader as `?skyline_user=`; "new browser" forgets this browser's
# bucket key (and the rest of the loader's localStorage), so the next page is a first visit
# and the one after it splits by a fresh key (docs/loader.md#first-visits-and-the-bucket-key).
CONTROLS_SCRIPT = """
(() => {
  const params = new URL(location.href).searchParams;
  document.getElementById("skyline-user").value = params.get("skyline_user") || "";
  document.getElementById("skyline-new").addEventListener("click", () => {
    for (const key of Object.keys(localStorage)) if (key.startsWith("skyline.")) localStorage.removeItem(key);
    const next = new URL(location.href);
    next.searchParams.delete("skyline_bucket");
    location.assign(next.href);
  });
})();
"""


def watch_shell_html(
    *, apartment: str, name: str, manifest: str, beacons: str, loader: LoaderAsset, buildings: Sequence[str]
) -> str:
    """A minimal shell for `apartment`: the loader, a slot for every building, the user id form."""
    config = json.dumps({"apartment": apartment, "manifest": manifest, "beacons": beacons})
    config = config.replace("</", "<\\/")
    slots = "\n".join(f'  <div data-skyline-building="{html.escape(b)}"></div>' for b in buildings)
    title = html.escape(f"{name} ({apartment}): Skyline shell")
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <style>{WATCH_STYLE}</style>
</head>
<body>
  <form id="skyline-controls" method="get">
    <strong>{title}</strong>
    <label>user id <input id="skyline-user" name="skyline_user" placeholder="random"></label>
    <button type="submit">load as this user</button>
    <button type="button" id="skyline-new">new browser</button>
  </form>
{slots}
  <aside id="skyline-status">loading…</aside>
  <script>{CONTROLS_SCRIPT}</script>
  <script>{STATUS_SCRIPT}</script>
  <script type="application/json" data-skyline>{config}</script>
  {loader.script_tag()}
</body>
</html>
"""
