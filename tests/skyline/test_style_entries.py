"""skyline/style_entries.py and the styled bucket map: which units get an entry module, and
that the map names its URL and SRI (the browser side is tests/browser/test_shell_styles.py)."""

from __future__ import annotations

import base64
import hashlib

from skyline.importmap import bucket_map, styled_bucket_map
from skyline.manifest import ApartmentManifest, Unit, UnitFile
from skyline.style_entries import ENTRY_PREFIX, entry_source, style_entry, stylesheets
from tests.skyline.test_importmap import APARTMENT, MANIFEST

EDGE = "https://edge.example/skyline/"


def unit(**files: UnitFile) -> Unit:
    return Unit(
        id="header@1.0.0",
        name="header",
        version="1.0.0",
        url="https://edge.example/skyline/bundles/header/index.aaaa.js",
        checksum="sha384-entry",
        size=10,
        files=files or None,
    )


BUNDLE = "https://edge.example/skyline/bundles/header/"
CSS = UnitFile(url=BUNDLE + "index.bbbb.css", integrity="sha384-css", kind="style")
LAZY_CSS = UnitFile(url=BUNDLE + "lazy.cccc.css", integrity="sha384-l", kind="other")
MODULE = UnitFile(url=BUNDLE + "index.aaaa.js", integrity="sha384-entry", kind="module")


def test_only_units_with_linked_stylesheets_get_an_entry() -> None:
    assert entry_source(unit()) is None
    assert entry_source(unit(**{"index.js": MODULE, "lazy.css": LAZY_CSS})) is None
    styled = unit(**{"index.js": MODULE, "index.css": CSS, "lazy.css": LAZY_CSS})
    assert stylesheets(styled) == [CSS]
    source = entry_source(styled)
    assert source is not None
    text = source.decode()
    # the unit's own namespace, its stylesheet with SRI, nothing it does not link
    assert f'export * from "{styled.url}";' in text and "export default unit.default;" in text
    assert f'["{CSS.url}", "{CSS.integrity}"]' in text and LAZY_CSS.url not in text
    assert 'link.crossOrigin = "anonymous"' in text and "await Promise.all" in text


def test_the_entry_is_content_addressed_with_its_sri() -> None:
    styled = unit(**{"index.js": MODULE, "index.css": CSS})
    entry = style_entry(styled)
    assert entry is not None
    assert entry.key == f"{ENTRY_PREFIX}{hashlib.sha256(entry.body).hexdigest()[:32]}.js"
    assert entry.integrity == "sha384-" + base64.b64encode(hashlib.sha384(entry.body).digest()).decode()
    other = style_entry(unit(**{"index.js": MODULE, "index.css": CSS.model_copy(update={"integrity": "x"})}))
    assert other is not None and other.key != entry.key  # another stylesheet, another URL
    assert style_entry(styled) == entry  # a pure function of the unit


def test_a_script_breaking_url_stays_a_string() -> None:
    sneaky = CSS.model_copy(update={"url": 'https://e/x.css"];alert(1);//</script>'})
    source = entry_source(unit(**{"index.css": sneaky}))
    assert source is not None
    assert b'x.css\\"];alert(1);//<\\/script>' in source
    odd = unit(**{"index.css": CSS}).model_copy(update={"id": "x\u2028alert(1)\nalert(2)"})
    text = (entry_source(odd) or b"").decode()
    assert "\u2028" not in text and "\nalert(2)" not in text  # no line ends early, not even a comment


def test_styled_map_names_the_entry_and_keeps_unstyled_units_as_they_were() -> None:
    buckets = {b: 0 for b in MANIFEST.apartment(APARTMENT).buildings}
    plain, no_entries = styled_bucket_map(MANIFEST, APARTMENT, buckets, lambda k: EDGE + k)
    assert no_entries == [] and plain.body() == bucket_map(MANIFEST, APARTMENT, buckets).body()

    data = MANIFEST.model_dump(by_alias=True)
    header = data["apartments"][APARTMENT]["buildings"]["header"]
    active = header["units"][header["active_unit"]]
    active["files"] = {"index.js": {"url": active["url"], "integrity": active["checksum"], "kind": "module"}}
    active["files"]["index.css"] = CSS.model_dump()
    manifest = ApartmentManifest.model_validate(data)
    buckets["header"] = 9999  # outside any canary: the active unit
    styled, entries = styled_bucket_map(manifest, APARTMENT, buckets, lambda k: EDGE + k)
    before = bucket_map(manifest, APARTMENT, buckets)
    assert [e.key for e in entries] == [entries[0].key]
    url = EDGE + entries[0].key
    assert styled.imports[f"@{APARTMENT}/header"] == url
    assert styled.integrity == {**before.integrity, url: entries[0].integrity}
    assert {k: v for k, v in styled.imports.items() if not k.endswith("/header")} == {
        k: v for k, v in before.imports.items() if not k.endswith("/header")
    }
    assert styled.variant == before.variant
