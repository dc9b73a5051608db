"""A Module Federation 2 remote's mf-manifest.json: what Skyline keeps, what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skyline.federation import FederationManifestError, join_remote_entry, parse_mf_manifest
from skyline.manifest import ApartmentManifest, Federation, Unit


def mf_manifest(**remote_entry: Any) -> dict[str, Any]:
    """The shape @module-federation/enhanced writes (trimmed)."""
    return {
        "id": "checkout",
        "name": "checkout",
        "metaData": {
            "name": "checkout",
            "type": "app",
            "buildInfo": {"buildVersion": "1.1.0", "buildName": "checkout"},
            "remoteEntry": {"name": "remoteEntry.js", "path": "", "type": "module", **remote_entry},
            "globalName": "checkout",
            "pluginVersion": "2.9.3",
            "publicPath": "auto",
        },
        "shared": [{"id": "checkout:react", "name": "react", "version": "18.3.1", "singleton": True}],
        "remotes": [],
        "exposes": [
            {
                "id": "checkout:Cart",
                "name": "Cart",
                "path": "./Cart",
                "assets": {"js": {"sync": [], "async": []}},
            },
            {"id": "checkout:Pay", "name": "Pay", "path": "./Pay"},
        ],
    }


def parse(doc: Any) -> Any:
    return parse_mf_manifest(json.dumps(doc).encode())


def test_the_remote_entry_name_type_exposes_and_shared_are_kept() -> None:
    remote = parse(mf_manifest())
    assert remote.name == "checkout" and remote.entry == "remoteEntry.js" and remote.type == "module"
    assert remote.global_name == "checkout"
    assert remote.exposes == ["./Cart", "./Pay"] and remote.shared == ["react"]


@pytest.mark.parametrize(
    ("path", "name", "joined"),
    [
        ("", "remoteEntry.js", "remoteEntry.js"),
        (".", "remoteEntry.js", "remoteEntry.js"),
        ("./static/js", "remoteEntry.js", "static/js/remoteEntry.js"),
        ("/static/js/", "remoteEntry.js", "static/js/remoteEntry.js"),
        ("static", "entry.mjs", "static/entry.mjs"),
    ],
)
def test_path_and_name_join_as_the_sdk_joins_them(path: str, name: str, joined: str) -> None:
    assert join_remote_entry(path, name) == joined
    assert parse(mf_manifest(path=path, name=name)).entry == joined


def test_a_classic_script_entry_and_a_missing_type() -> None:
    doc = mf_manifest(type="global")
    assert parse(doc).type == "global"
    del doc["metaData"]["remoteEntry"]["type"]
    assert parse(doc).type == "global"  # the runtime's default
    del doc["name"]
    assert parse(doc).name == "checkout"  # metaData.name


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"name": "x"}).encode(), "no metaData"),
        (json.dumps({"name": "x", "metaData": {"name": "x"}}).encode(), "no metaData.remoteEntry"),
        (json.dumps(mf_manifest(name="")).encode(), "remoteEntry.name must be a non-empty string"),
        (json.dumps(mf_manifest(name=7)).encode(), "remoteEntry.name"),
        (json.dumps(mf_manifest(path=None)).encode(), "remoteEntry.path must be a string"),
        (json.dumps(mf_manifest(path="../other")).encode(), "inside the bundle"),
        (json.dumps(mf_manifest(path="a/../../b")).encode(), "inside the bundle"),
        (json.dumps(mf_manifest(name="../remoteEntry.js")).encode(), "inside the bundle"),
        (json.dumps(mf_manifest(path="https://cdn.example/x")).encode(), "inside the bundle"),
        (json.dumps(mf_manifest(name="a\\b.js")).encode(), "inside the bundle"),
        (json.dumps(mf_manifest(name="remoteEntry.json")).encode(), "not a JavaScript file"),
        (json.dumps(mf_manifest(type="commonjs")).encode(), "not loadable by a browser"),
        (b" " * (1024 * 1024 + 1), "larger than"),
    ],
)
def test_bad_manifests_are_refused_with_what_to_fix(doc: bytes, words: str) -> None:
    with pytest.raises(FederationManifestError, match=words.replace("(", r"\(").replace(".", r"\.")):
        parse_mf_manifest(doc)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(name="has space"), "not a container name"),
        (lambda d: d.update(exposes={"./Cart": {}}), "exposes must be a list"),
        (lambda d: d.update(exposes=["./Cart"]), r"exposes\[0\] must be an object"),
        (lambda d: d.update(shared=[{"version": "1"}]), r"shared\[0\]\.name"),
        (lambda d: d["metaData"].update(globalName=3), "globalName"),
    ],
)
def test_bad_fields_are_named(change: Any, words: str) -> None:
    doc = mf_manifest()
    change(doc)
    with pytest.raises(FederationManifestError, match=words):
        parse(doc)


def test_the_manifest_field_is_optional_and_old_manifests_serialise_unchanged() -> None:
    unit = {
        "id": "checkout@1.0.0",
        "name": "checkout",
        "version": "1.0.0",
        "url": "https://edge/skyline/bundles/checkout/remoteEntry.0123456789abcdef.js",
        "checksum": "sha384-x",
        "size": 10,
    }
    doc = {
        "version": "3",
        "timestamp": "2026-01-01T00:00:00Z",
        "apartments": {
            "shop": {
                "name": "Shop",
                "buildings": {
                    "checkout": {
                        "name": "Checkout",
                        "category": "main",
                        "active_unit": "checkout@1.0.0",
                        "units": {"checkout@1.0.0": unit},
                    }
                },
            }
        },
    }
    before = ApartmentManifest.model_validate(doc).to_json_bytes()
    assert b"federation" not in before
    assert ApartmentManifest.from_json_bytes(before).to_json_bytes() == before
    with_mf = Unit.model_validate(
        {**unit, "federation": {"name": "checkout", "type": "module", "exposes": ["./Cart"]}}
    )
    assert with_mf.federation == Federation(name="checkout", type="module", exposes=["./Cart"])
    assert json.loads(with_mf.model_dump_json(exclude_none=True))["federation"] == {
        "name": "checkout",
        "type": "module",
        "exposes": ["./Cart"],
        "shared": [],
    }
