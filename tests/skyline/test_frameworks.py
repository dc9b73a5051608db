"""What a bundle says it is built with (skyline/frameworks.py)."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from skyline.frameworks import PACKAGES, detect_framework, imported_packages, package_name
from skyline.manifest import Framework, Unit


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('import { h } from "preact";\nimport "preact/hooks";', "preact"),
        ("import React from 'react';\nimport { createRoot } from 'react-dom/client';", "react"),
        ('import { createApp } from "vue"', "vue"),
        ('import { mount } from "svelte";', "svelte"),
        ('import { render } from "solid-js/web";', "solid"),
        ('import { LitElement, html } from "lit";', "lit"),
        ('import { Component } from "@angular/core";', "angular"),
        ('const m = await import("vue");', "vue"),
        ('export { h } from "preact";', "preact"),
        # preact/compat stands in for react: the more specific one decides
        ('import React from "react";\nimport { h } from "preact";', "preact"),
        # relative imports, URLs, a word in a string: nothing
        ('import "./chunk-1.js"; import x from "/abs.js"; import y from "https://esm.sh/react";', "unknown"),
        ('const s = "react"; console.log("vue");', "unknown"),
        ("", "unknown"),
    ],
)
def test_the_entrys_imports_name_the_framework(source: str, expected: str) -> None:
    assert detect_framework(None, source) == expected


def test_package_json_runtime_dependencies_win_over_the_entry() -> None:
    pkg = json.dumps({"dependencies": {"vue": "^3"}, "devDependencies": {"react": "^18"}})
    assert detect_framework(pkg, 'import React from "react";') == "vue"
    peer = json.dumps({"peerDependencies": {"@angular/core": "^18"}})
    assert detect_framework(peer, None) == "angular"
    # only build tools, or not JSON at all: the entry decides
    tools = json.dumps({"devDependencies": {"react": "^18", "esbuild": "^0.24"}})
    assert detect_framework(tools, 'import { h } from "preact";') == "preact"
    assert detect_framework("{not json", 'import { h } from "preact";') == "preact"
    assert detect_framework("[]", None) == "unknown"
    assert detect_framework(None, None) == "unknown"


def test_package_names_of_specifiers() -> None:
    assert package_name("react-dom/client") == "react-dom"
    assert package_name("@angular/core/testing") == "@angular/core"
    assert package_name("@scope") is None
    assert package_name("./x.js") is None and package_name("data:text/javascript,1") is None
    assert imported_packages("import a from\"react\";import b from 'lit/decorators.js'") == {"react", "lit"}


def test_every_detected_framework_is_a_manifest_value_and_old_units_stay_valid() -> None:
    allowed = set(get_args(Framework))
    assert {name for name, _ in PACKAGES} | {"unknown"} <= allowed
    # seed 000's five are still there, and a unit written before the field had a default reads as react
    assert {"react", "vue", "svelte", "angular", "wasm"} <= allowed
    old = Unit.model_validate(
        {"id": "h@1", "name": "h", "version": "1", "url": "https://x/h.js", "checksum": "sha384-x", "size": 1}
    )
    assert old.framework == "react"
