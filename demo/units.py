"""The demo's micro-frontends, written as bundle directories the worker publishes.

header@1.0.0, footer@1.0.0   stable chrome around the page
catalog@1.0.0                the unit being replaced
catalog@1.1.0                healthy: a new look, same chunks
catalog@1.2.0                faulty: for about a third of its users it imports a
                             chunk that was never deployed, the classic
                             ChunkLoadError after a release; mount() rejects and
                             the loader reports load_error (and falls back to the
                             stable unit, so the user still gets a page)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FAULTY_SHARE_PERCENT = 35

HEADER = """\
export function mount(el, ctx) {
  el.innerHTML = "";
  const bar = document.createElement("nav");
  bar.style.cssText = "display:flex;gap:24px;align-items:center;padding:14px 24px;"
    + "background:#1d2433;color:#fff";
  const brand = document.createElement("strong");
  brand.textContent = "Skyline Shop";
  bar.append(brand);
  for (const label of ["New in", "Women", "Men", "Sale"]) {
    const a = document.createElement("span");
    a.textContent = label;
    a.style.opacity = "0.8";
    bar.append(a);
  }
  const tag = document.createElement("small");
  tag.style.marginLeft = "auto";
  tag.textContent = `${ctx.unit}`;
  bar.append(tag);
  el.append(bar);
}
"""

FOOTER = """\
export function mount(el, ctx) {
  el.textContent = `© Skyline Shop · served by ${ctx.unit}`;
  el.style.cssText = "padding:12px 24px;background:#e6e9f0;color:#4a5468;font-size:13px";
}
"""

RECOMMENDATIONS = """\
export const recommendations = [
  { name: "Trail runner", price: 89 },
  { name: "Rain shell", price: 129 },
  { name: "Merino tee", price: 45 },
  { name: "Day pack", price: 70 },
  { name: "Wool socks", price: 15 },
  { name: "Cap", price: 25 },
];
"""

CATALOG = """\
// catalog {version}: {note}
const THEME = {theme};

function hash(text) {{
  let h = 7;
  for (const ch of text) h = (Math.imul(h, 31) + ch.codePointAt(0)) >>> 0;
  return h;
}}

async function recommendations(ctx) {{
  {chunk_logic}
}}

export async function mount(el, ctx) {{
  const {{ recommendations: items }} = await recommendations(ctx);
  const title = document.createElement("h1");
  title.textContent = THEME.title;
  title.style.cssText = `margin:0 0 12px;font-size:22px;color:${{THEME.accent}}`;
  const grid = document.createElement("div");
  grid.style.cssText = "display:grid;grid-template-columns:repeat(3,1fr);gap:12px";
  for (const item of items) {{
    const card = document.createElement("div");
    card.style.cssText = `background:#fff;border-radius:${{THEME.radius}};padding:14px;`
      + `border-top:4px solid ${{THEME.accent}}`;
    const name = document.createElement("div");
    name.textContent = item.name;
    name.style.fontWeight = "600";
    const price = document.createElement("div");
    price.textContent = `€ ${{item.price}}`;
    card.append(name, price);
    grid.append(card);
  }}
  const badge = document.createElement("p");
  badge.textContent = `${{ctx.unit}} for user ${{ctx.user.id}}`;
  badge.style.cssText = "color:#6b7488;font-size:12px";
  el.replaceChildren(title, grid, badge);
}}
"""

HEALTHY_CHUNK = 'return import("./chunks/recommendations.js");'
FAULTY_CHUNK = (
    "// The new build asks for a chunk hash that never reached storage.\n"
    f"  if (hash(ctx.user.id) % 100 < {FAULTY_SHARE_PERCENT}) "
    'return import("./chunks/recommendations.3f9a1c.js");\n'
    '  return import("./chunks/recommendations.js");'
)


@dataclass(frozen=True)
class DemoUnit:
    building: str
    unit_id: str
    version: str
    files: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.unit_id}@{self.version}"

    def write(self, root: Path) -> Path:
        """The bundle directory for POST /rollouts {"bundle": {"path": ...}}."""
        out = root / self.unit_id / self.version
        for name, text in self.files.items():
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return out


def _catalog(version: str, note: str, theme: str, chunk_logic: str) -> DemoUnit:
    entry = CATALOG.format(version=version, note=note, theme=theme, chunk_logic=chunk_logic)
    return DemoUnit(
        "main",
        "catalog",
        version,
        {"index.js": entry, "chunks/recommendations.js": RECOMMENDATIONS},
    )


HEADER_1_0_0 = DemoUnit("header", "header", "1.0.0", {"index.js": HEADER})
FOOTER_1_0_0 = DemoUnit("footer", "footer", "1.0.0", {"index.js": FOOTER})
CATALOG_1_0_0 = _catalog(
    "1.0.0", "the current catalog", '{title: "Catalog", accent: "#5b6478", radius: "2px"}', HEALTHY_CHUNK
)
CATALOG_1_1_0 = _catalog(
    "1.1.0",
    "new look, healthy",
    '{title: "Catalog — new look", accent: "#1565c0", radius: "10px"}',
    HEALTHY_CHUNK,
)
CATALOG_1_2_0 = _catalog(
    "1.2.0",
    "faster, but one chunk was never deployed",
    '{title: "Catalog — faster", accent: "#6a1b9a", radius: "10px"}',
    FAULTY_CHUNK,
)

STABLE = (HEADER_1_0_0, CATALOG_1_0_0, FOOTER_1_0_0)


def faulty_user(user_id: str) -> bool:
    """Whether catalog@1.2.0 fails for this user (the same hash as its JavaScript)."""
    h = 7
    for ch in user_id:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    return h % 100 < FAULTY_SHARE_PERCENT
