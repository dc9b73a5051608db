"""Who may call what: the one table every API route's authorization reads.

`RULES` maps (method, path template) to the least role the route needs, or
"public". The gate (api/gate.py) reads it before a request's body is received,
and the routes' `Caller` dependency (api/auth.py) reads it again for the
template the router matched. A route without an entry is unreachable (404 for
everyone) and fails tests/security/test_route_matrix.py, which calls every
route of the OpenAPI schema (and the few outside it) as anonymous, viewer,
deployer and admin and expects exactly what this table says. docs/security.md
prints the same table, and a test holds the two equal, so loosening a rule is
an edit of both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from starlette.routing import compile_path

Access = Literal["public", "viewer", "deployer", "admin"]
RANK: dict[str, int] = {"viewer": 0, "deployer": 1, "admin": 2}

RULES: dict[tuple[str, str], Access] = {
    # Browsers, orchestrators and scrapers: no token exists on their side.
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/metrics/"): "public",
    ("POST", "/beacons"): "public",  # signed per page load instead (api/beacon_tokens.py)
    ("OPTIONS", "/beacons"): "public",
    ("GET", "/beacon-token"): "public",
    ("GET", "/apartments/{apartment}/importmap.json"): "public",
    ("GET", "/loader"): "public",
    ("GET", "/shells"): "public",  # a browser opens it; links to what the edge serves anyway
    ("GET", "/apartments/{apartment}/shell"): "public",
    ("GET", "/loader.js"): "public",
    ("HEAD", "/loader.js"): "public",
    ("GET", "/overrides/unit"): "public",  # the signed override link is the credential
    # The schema and its viewers: what the routes are, never what they hold.
    ("GET", "/openapi.json"): "public",
    ("HEAD", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("HEAD", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("HEAD", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("HEAD", "/redoc"): "public",
    # Reading state.
    ("GET", "/apartments"): "viewer",
    ("GET", "/apartments/{apartment}"): "viewer",
    ("GET", "/apartments/{apartment}/manifest"): "viewer",
    ("GET", "/apartments/{apartment}/revisions"): "viewer",
    ("GET", "/apartments/{apartment}/revisions/{revision}"): "viewer",
    ("GET", "/apartments/{apartment}/diff"): "viewer",
    ("GET", "/apartments/{apartment}/last-known-good"): "viewer",
    ("GET", "/apartments/{apartment}/resolve"): "viewer",
    ("GET", "/rollouts"): "viewer",
    ("GET", "/rollouts/{rollout_id}"): "viewer",
    ("GET", "/rollouts/{rollout_id}/audit"): "viewer",
    ("GET", "/rollouts/{rollout_id}/looks"): "viewer",
    ("GET", "/rollouts/{rollout_id}/vitals"): "viewer",
    ("GET", "/fleets/{fleet_id}"): "viewer",
    ("GET", "/pipelines/{pipeline_id}"): "viewer",
    ("GET", "/schedules"): "viewer",
    ("GET", "/schedules/{schedule_id}"): "viewer",
    # Shipping: start and steer rollouts, upload bundles, hand out override links.
    ("POST", "/bundles"): "deployer",
    ("POST", "/rollouts"): "deployer",
    ("POST", "/rollouts/{rollout_id}/pause"): "deployer",
    ("POST", "/rollouts/{rollout_id}/resume"): "deployer",
    ("POST", "/rollouts/{rollout_id}/promote"): "deployer",
    ("POST", "/rollouts/{rollout_id}/rollback"): "deployer",
    ("POST", "/fleets"): "deployer",
    ("POST", "/fleets/{fleet_id}/pause"): "deployer",
    ("POST", "/fleets/{fleet_id}/resume"): "deployer",
    ("POST", "/fleets/{fleet_id}/promote"): "deployer",
    ("POST", "/fleets/{fleet_id}/rollback"): "deployer",
    ("POST", "/pipelines"): "deployer",
    ("POST", "/pipelines/{pipeline_id}/approve"): "deployer",  # the stage may ask for admin
    ("POST", "/pipelines/{pipeline_id}/reject"): "deployer",
    ("POST", "/pipelines/{pipeline_id}/pause"): "deployer",
    ("POST", "/pipelines/{pipeline_id}/resume"): "deployer",
    ("POST", "/pipelines/{pipeline_id}/promote"): "deployer",
    ("POST", "/pipelines/{pipeline_id}/rollback"): "deployer",
    ("POST", "/overrides"): "deployer",
    ("POST", "/overrides/revoke"): "deployer",
    ("POST", "/storage/gc"): "deployer",  # a dry run; deleting (dry_run false) checks admin itself
    # Administration: apartments, undo, schedules, tokens.
    ("POST", "/apartments"): "admin",
    ("POST", "/apartments/{apartment}/undo"): "admin",
    ("PATCH", "/apartments/{apartment}"): "admin",
    ("POST", "/apartments/{apartment}/buildings"): "admin",
    ("PATCH", "/apartments/{apartment}/buildings/{building}"): "admin",
    ("DELETE", "/apartments/{apartment}/buildings/{building}"): "admin",
    ("POST", "/schedules"): "admin",
    ("POST", "/schedules/{schedule_id}/pause"): "admin",
    ("POST", "/schedules/{schedule_id}/unpause"): "admin",
    ("POST", "/schedules/{schedule_id}/trigger"): "admin",
    ("DELETE", "/schedules/{schedule_id}"): "admin",
    ("GET", "/tokens"): "admin",
    ("POST", "/tokens"): "admin",
    ("DELETE", "/tokens/{name}"): "admin",
}


@dataclass(frozen=True)
class Found:
    """What the table says about one request: its template and rule, or the methods its path has."""

    template: str | None
    access: Access | None
    allowed: tuple[str, ...] = ()


def _compile(rules: dict[tuple[str, str], Access]) -> list[tuple[re.Pattern[str], str]]:
    return [(compile_path(template)[0], template) for template in sorted({t for _, t in rules})]


_COMPILED = _compile(RULES)


# Other tables (the collector's, collector/access.py) compiled once each: the gate looks up
# every request.
_TABLES: dict[int, tuple[dict[tuple[str, str], Access], list[tuple[re.Pattern[str], str]]]] = {}


def _compiled(rules: dict[tuple[str, str], Access]) -> list[tuple[re.Pattern[str], str]]:
    if rules is RULES:
        return _COMPILED
    known = _TABLES.get(id(rules))
    if known is None or known[0] is not rules:
        known = _TABLES[id(rules)] = (rules, _compile(rules))
    return known[1]


def lookup(method: str, path: str, rules: dict[tuple[str, str], Access] | None = None) -> Found:
    """The rule for `method path`. Literal templates win over ones with parameters
    (`/loader.js` over a `{x}`); no template: Found(None, None); the path exists but
    not for this method: Found(template, None, allowed methods)."""
    table = RULES if rules is None else rules
    compiled = _compiled(table)
    matches = [template for regex, template in compiled if regex.match(path)]
    if not matches:
        return Found(None, None)
    matches.sort(key=lambda t: (t.count("{"), -len(t)))
    for template in matches:
        access = table.get((method, template))
        if access is not None:
            return Found(template, access)
    allowed = tuple(sorted({m for m, t in table if t in matches}))
    return Found(matches[0], None, allowed)


def satisfies(role: str, access: Access) -> bool:
    return access == "public" or RANK[role] >= RANK[access]


# The browser-facing routes: what the collector (python -m collector) serves, every one
# public. docs/security.md prints this table too.
COLLECTOR_RULES: dict[tuple[str, str], Access] = {
    key: RULES[key]
    for key in (
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/metrics/"),
        ("POST", "/beacons"),
        ("OPTIONS", "/beacons"),
        ("GET", "/beacon-token"),
        ("GET", "/apartments/{apartment}/importmap.json"),
        ("GET", "/loader"),
        ("GET", "/loader.js"),
        ("HEAD", "/loader.js"),
        ("GET", "/overrides/unit"),
    )
}

# What the API answers with a 308 to the collector once SKYLINE_COLLECTOR_URL is set: the
# browser traffic of shells written before the collector. Not OPTIONS /beacons (a browser
# refuses a redirected preflight; the API keeps answering it, the request after it is
# redirected), not the health, metrics and /loader routes (the API's own).
REDIRECTED_TO_COLLECTOR: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/beacons"),
        ("GET", "/beacon-token"),
        ("GET", "/apartments/{apartment}/importmap.json"),
        ("GET", "/loader.js"),
        ("HEAD", "/loader.js"),
        ("GET", "/overrides/unit"),
    }
)
