"""Unit.files: every module and stylesheet of a published unit, with its SRI (docs/loader.md)."""

from __future__ import annotations

from typing import Any

from skyline.manifest import ApartmentManifest, Unit, unit_files

BASE = "http://edge.test/skyline/"
KEYS = {
    "index.js": "bundles/catalog/index.0123456789abcdef.js",
    "index.js.map": "bundles/catalog/index.fedcba9876543210.js.map",
    "index.css": "bundles/catalog/index.00112233aabbccdd.css",
    "chunk-ABC.js": "bundles/catalog/chunk-ABC.js",
    "lazy-DEF.js": "bundles/catalog/lazy-DEF.js",
    "lazy-GHI.css": "bundles/catalog/lazy-GHI.css",
    "assets/logo.svg": "bundles/catalog/assets/logo.svg",
}
SRI = {relpath: f"sha384-{i}" for i, relpath in enumerate(KEYS)}


def test_modules_and_the_entrys_stylesheet_are_recorded_with_url_and_integrity() -> None:
    files = unit_files("index.js", BASE + KEYS["index.js"], KEYS["index.js"], KEYS, SRI)
    assert files is not None
    assert {r: f.kind for r, f in files.items()} == {
        "index.js": "module",
        "chunk-ABC.js": "module",
        "lazy-DEF.js": "module",
        # esbuild folds a lazy chunk's CSS into the entry's stylesheet too: linked once
        "index.css": "style",
        "lazy-GHI.css": "other",
    }
    for relpath, file in files.items():
        assert file.url == BASE + KEYS[relpath]
        assert file.integrity == SRI[relpath]


def test_without_a_stylesheet_named_after_the_entry_every_stylesheet_is_linked() -> None:
    keys = {"index.js": "bundles/u/abc/index.js", "style.css": "bundles/u/abc/style.css"}
    files = unit_files(
        "index.js", BASE + keys["index.js"], keys["index.js"], keys, {k: "sha384-x" for k in keys}
    )
    assert files is not None and files["style.css"].kind == "style"


def test_a_result_without_per_file_data_gives_no_files() -> None:
    assert unit_files("index.js", BASE + "bundles/u/index.js", None, {}, {}) is None
    assert unit_files("index.js", "http://other/x.js", "bundles/u/index.js", {"index.js": "k"}, {}) is None


def unit_doc(**extra: Any) -> dict[str, Any]:
    return {
        "id": "u@1.0.0",
        "name": "u",
        "version": "1.0.0",
        "url": "http://x/u.js",
        "checksum": "sha384-a",
        "size": 1,
        **extra,
    }


def test_files_is_optional_and_old_manifests_still_validate_and_serialise_unchanged() -> None:
    doc = {
        "version": "3",
        "timestamp": "2024-01-01T00:00:00Z",
        "apartments": {
            "shop": {
                "name": "Shop",
                "buildings": {
                    "header": {"name": "H", "category": "header", "units": {"u@1.0.0": unit_doc()}}
                },
            }
        },
    }
    manifest = ApartmentManifest.model_validate(doc)
    unit = manifest.apartments["shop"].buildings["header"].units["u@1.0.0"]
    assert unit.files is None
    assert b'"files"' not in manifest.to_json_bytes()


def test_files_round_trip() -> None:
    files = {"index.js": {"url": "http://x/u.js", "integrity": "sha384-a", "kind": "module"}}
    unit = Unit.model_validate(unit_doc(files=files))
    assert unit.model_dump(exclude_none=True)["files"] == files
