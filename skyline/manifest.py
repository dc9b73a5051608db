"""The manifest schema shells load, faithful to seed 000.

ApartmentManifest → Apartment → Building → Unit, plus RolloutConfig and
RolloutCriteria. One manifest document is kept per apartment (its `apartments`
map holds exactly that apartment), so a rollout in one shell never forces every
other shell to re-fetch. `version` is the manifest revision number as a string;
it only ever grows.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
SLUG_HELP = "lowercase letters, digits and '-', starting with a letter or digit, at most 63"

# Seed 000's five plus what bundles are built with today; "unknown": not given, and the
# bundle did not say (skyline/frameworks.py). A unit without the field reads as react, as before.
Framework = Literal[
    "react", "preact", "vue", "svelte", "angular", "wasm", "vanilla", "solid", "lit", "unknown"
]
UnitStatus = Literal["stable", "beta", "canary", "deprecated"]
Category = Literal["header", "main", "sidebar", "footer"]
StrategyName = Literal["immediate", "gradual", "canary", "ab_test"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomRule(Model):
    attribute: str
    operator: Literal["eq", "neq", "in", "not_in"] = "eq"
    values: list[str] = Field(default_factory=list)


class RolloutCriteria(Model):
    """Regions, segments and flags are lower-cased: the resolver compares them case-insensitively."""

    user_segments: list[str] | None = None
    geo_regions: list[str] | None = None
    feature_flags: list[str] | None = None
    custom_rules: list[CustomRule] | None = None

    @field_validator("user_segments", "geo_regions", "feature_flags")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.lower() for v in value]


class MonitoringConfig(Model):
    max_error_rate: float | None = None
    max_p99_seconds: float | None = None


class RolloutConfig(Model):
    strategy: StrategyName = "canary"
    percentage: float = Field(ge=0, le=100)
    duration: float = Field(default=0, ge=0, description="minutes")
    criteria: RolloutCriteria = Field(default_factory=RolloutCriteria)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    rollout_id: str | None = None


class UnitMetadata(Model):
    model_config = ConfigDict(extra="allow")
    bundle_prefix: str | None = None
    entry: str | None = None
    files: int | None = None
    published_at: str | None = None


FileKind = Literal["module", "style", "other"]


class UnitFile(Model):
    """One published file of a unit, as the browser fetches it (see docs/loader.md).

    `kind`: "module" (a JavaScript module: the entry, its static and dynamic chunks;
    the loader hands the browser its integrity in an import map), "style" (a
    stylesheet the loader links before mounting), "other" (a stylesheet the loader
    does not link, e.g. a lazy chunk's own CSS that the bundler also folded into
    the entry's stylesheet; recorded for a unit that links it itself).
    """

    url: str
    integrity: str
    kind: FileKind = "other"


class Federation(Model):
    """A Module Federation 2 remote's container, from its mf-manifest.json (skyline/federation.py).

    The runtime plugin (loader/skyline-mf-plugin.js) matches a host's remote by `name`
    and loads `Unit.url`, the container entry, as `type` says ("module"/"esm": import(),
    otherwise a classic script setting `global_name`).
    """

    name: str
    type: str = "global"
    global_name: str | None = None
    exposes: list[str] = Field(default_factory=list)
    shared: list[str] = Field(default_factory=list)


class Unit(Model):
    id: str
    name: str
    version: str
    framework: Framework = "react"
    url: str
    wasm_url: str | None = None
    checksum: str
    size: int = Field(ge=0)
    dependencies: list[str] = Field(default_factory=list)
    compatibility: str = "*"
    status: UnitStatus = "stable"
    rollout: RolloutConfig | None = None
    metadata: UnitMetadata = Field(default_factory=UnitMetadata)
    # Every module and stylesheet of the published bundle: relative path in the bundle ->
    # URL, SRI, kind. Optional: units published before it existed (and hand-written ones)
    # carry only `url` + `checksum`, and the loader then verifies the entry alone.
    files: dict[str, UnitFile] | None = None
    # A Module Federation 2 remote (its bundle held mf-manifest.json): the container's name,
    # entry type and exposes; `url` is its remote entry. Optional, absent for other units.
    federation: Federation | None = None


class RoutingConfig(Model):
    model_config = ConfigDict(extra="allow")
    mount: str | None = Field(default=None, description="CSS selector the shell mounts into")


class Building(Model):
    name: str
    category: Category
    active_unit: str | None = None
    units: dict[str, Unit] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    def canary(self) -> Unit | None:
        """The unit currently in rollout, if any (at most one per building)."""
        for unit in self.units.values():
            if unit.rollout is not None and unit.id != self.active_unit:
                return unit
        return None

    def active(self) -> Unit | None:
        return self.units.get(self.active_unit) if self.active_unit else None


class ApartmentConfig(Model):
    model_config = ConfigDict(extra="allow")


class Apartment(Model):
    name: str
    version: str = "1.0.0"
    description: str = ""
    buildings: dict[str, Building]
    config: ApartmentConfig = Field(default_factory=ApartmentConfig)

    @field_validator("buildings")
    @classmethod
    def _building_ids(cls, value: dict[str, Building]) -> dict[str, Building]:
        for key in value:
            if not SLUG.match(key):
                raise ValueError(f"building id {key!r} must be {SLUG_HELP}")
        return value


class GlobalSettings(Model):
    model_config = ConfigDict(extra="allow")
    cdn_base_url: str | None = None


class ManifestChange(Model):
    """Who made this revision and why; `id` makes retried writes idempotent."""

    id: str
    actor: str
    reason: str
    parent: str | None = None


class ApartmentManifest(Model):
    version: str
    timestamp: str
    apartments: dict[str, Apartment]
    global_: GlobalSettings = Field(default_factory=GlobalSettings, alias="global")
    change: ManifestChange | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def revision(self) -> int:
        return int(self.version)

    def apartment(self, apartment_id: str) -> Apartment:
        return self.apartments[apartment_id]

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=2).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes) -> ApartmentManifest:
        return cls.model_validate_json(data)

    def content(self) -> dict[str, Any]:
        """The part that describes what shells load, without revision bookkeeping."""
        return self.model_dump(by_alias=True, exclude={"version", "timestamp", "change"})


def unit_key(unit_id: str, version: str) -> str:
    """Key of one build in `Building.units` and the value of `active_unit`."""
    return f"{unit_id}@{version}"


MODULE_SUFFIXES = (".js", ".mjs")
STYLE_SUFFIX = ".css"


def unit_files(
    entry: str, entry_url: str, entry_key: str | None, keys: Mapping[str, str], integrity: Mapping[str, str]
) -> dict[str, UnitFile] | None:
    """`Unit.files` from a publish result: every module and stylesheet, with its SRI.

    `keys` (relative path -> storage key) and `integrity` (relative path -> sha384 SRI)
    come from PublishBundleResult; a file's URL is its key under the same public base
    as the entry's. Stylesheets the loader links ("style") are the ones named after the
    entry in its directory (`index.css` next to `index.js`: the entry's CSS bundle, which
    esbuild and Vite's library mode emit), or, when there is none, every stylesheet of the
    bundle. Source maps, images and fonts are left out: the browser cannot verify them.
    None when the result has no per-file data (published before it existed).
    """
    if not keys or entry_key is None or not entry_url.endswith(entry_key) or entry not in keys:
        return None
    base = entry_url[: len(entry_url) - len(entry_key)]
    directory, name = posixpath.split(entry)
    stem = name.split(".", 1)[0]

    def named_after_entry(relpath: str) -> bool:
        return posixpath.dirname(relpath) == directory and posixpath.basename(relpath).startswith(stem + ".")

    styles = [r for r in keys if r.endswith(STYLE_SUFFIX) and named_after_entry(r)]
    if not styles:
        styles = [r for r in keys if r.endswith(STYLE_SUFFIX)]
    files: dict[str, UnitFile] = {}
    for relpath in sorted(keys):
        sri = integrity.get(relpath)
        if sri is None:
            continue
        if relpath.endswith(MODULE_SUFFIXES):
            kind: FileKind = "module"
        elif relpath.endswith(STYLE_SUFFIX):
            kind = "style" if relpath in styles else "other"
        else:
            continue
        files[relpath] = UnitFile(url=base + keys[relpath], integrity=sri, kind=kind)
    return files
