"""Every route x anonymous / viewer / deployer / admin, decided without a server.

The routes come from the app object itself (its OpenAPI schema and the few it
serves outside it; no lifespan runs, nothing listens); each request goes through
the decisions the gate takes (api/access.py `lookup`, then api/admission.py
`without_token`, `bearer_token`, `admit`) and must end as docs/security.md's
table says, read by an oracle that shares no code with them. The same matrix runs
over HTTP against a real API in tests/security/test_route_matrix.py; this one is
the fast layer's, so `make mutants` checks the authorization code with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.access import RULES, Access, Found, lookup, satisfies
from api.admission import Principal, Role, TokenRecord, admit, bearer_token, without_token
from api.errors import ApiError
from api.main import create_app
from tests.support.routes import served_routes

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("anonymous", "viewer", "deployer", "admin")
ORDER = ["viewer", "deployer", "admin"]  # the oracle's own ranking, independent of api/access.py
SAMPLE = {"revision": "1", "name": "nobody-here"}  # other parameters: "none"


def documented() -> dict[tuple[str, str], str]:
    """The route table in docs/security.md: | `METHOD /path` | rule |."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`([A-Z]+) (/[^`]*)`\s*\|\s*([a-z]+)\s*\|", text, re.MULTILINE)
    return {(method, path): rule for method, path, rule in rows}


DOCUMENTED = documented()


def served() -> list[tuple[str, str]]:
    app = create_app()
    schema = app.openapi()
    in_schema = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    every = set(served_routes(app))
    assert in_schema <= every, in_schema - every
    return sorted(every)


SERVED = served()


def concrete(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE.get(m.group(1), "none"), template)


def record(role: Role) -> TokenRecord:
    return TokenRecord(name=f"{role}-token", role=role, sha256="0" * 64)


def gate(method: str, path: str, role: str) -> str:
    """What the gate's decisions answer, auth on, for a caller with `role`'s token (or none)."""
    found = lookup(method, path)
    if found.template is None:
        return "404"
    if found.access is None:
        return "405"
    try:
        principal = without_token(found.access, True, "203.0.113.9")
        if principal is None:
            token = bearer_token("" if role == "anonymous" else f"Bearer {role}-secret")
            assert token == f"{role}-secret"
            principal = admit(record(role), found.access)  # type: ignore[arg-type]
    except ApiError as refused:
        return str(refused.status)
    assert isinstance(principal, Principal)
    return "allowed"


def oracle(rule: str, role: str) -> str:
    if rule == "public":
        return "allowed"
    if role == "anonymous":
        return "401"
    return "allowed" if ORDER.index(role) >= ORDER.index(rule) else "403"


def test_the_documented_table_is_the_code_table_and_names_every_served_route() -> None:
    assert dict(RULES) == DOCUMENTED
    assert sorted(DOCUMENTED) == SERVED, "every served route has exactly one rule, and no rule is stale"


@pytest.mark.parametrize(("method", "template"), SERVED, ids=[f"{m} {t}" for m, t in SERVED])
def test_each_role_gets_exactly_what_the_documented_table_says(method: str, template: str) -> None:
    rule = DOCUMENTED[(method, template)]
    got = {role: gate(method, concrete(template), role) for role in ROLES}
    assert got == {role: oracle(rule, role) for role in ROLES}


def test_steering_a_rollout_needs_a_deployer() -> None:
    """Issue 28, breakage 3: a viewer token must not promote (or steer) a rollout."""
    for action in ("promote", "rollback", "pause", "resume"):
        path = f"/rollouts/r-1/{action}"
        assert [gate("POST", path, role) for role in ROLES] == ["401", "403", "allowed", "allowed"], action
        assert gate("POST", f"/fleets/f-1/{action}", "viewer") == "403"


def test_what_the_table_does_not_name_is_404_or_405() -> None:
    assert gate("GET", "/no-such-route", "admin") == "404"
    assert gate("PUT", "/rollouts", "admin") == "405"
    assert lookup("PUT", "/rollouts") == Found("/rollouts", None, ("GET", "POST"))
    assert lookup("GET", "/nowhere") == Found(None, None)


def test_a_literal_template_wins_over_one_with_parameters() -> None:
    assert lookup("GET", "/loader.js") == Found("/loader.js", "public")
    assert lookup("HEAD", "/loader.js") == Found("/loader.js", "public")
    rules: dict[tuple[str, str], Access] = {
        ("GET", "/things/{thing}"): "viewer",
        ("GET", "/things/special"): "admin",
        ("POST", "/things/{thing}"): "deployer",
    }
    assert lookup("GET", "/things/special", rules) == Found("/things/special", "admin")
    assert lookup("GET", "/things/other", rules) == Found("/things/{thing}", "viewer")
    # the literal has no POST: the template with parameters answers it
    assert lookup("POST", "/things/special", rules) == Found("/things/{thing}", "deployer")
    assert lookup("DELETE", "/things/special", rules) == Found("/things/special", None, ("GET", "POST"))


def test_of_two_templates_with_parameters_the_longer_wins() -> None:
    rules: dict[tuple[str, str], Access] = {
        ("GET", "/a/{x}/b"): "admin",
        ("GET", "/a/{x}"): "viewer",
        ("GET", "/{y}/{x}/b"): "deployer",
    }
    assert lookup("GET", "/a/1/b", rules) == Found("/a/{x}/b", "admin")
    assert lookup("GET", "/a/1", rules) == Found("/a/{x}", "viewer")
    assert lookup("GET", "/z/1/b", rules) == Found("/{y}/{x}/b", "deployer")
    # the same number of parameters: the longer template, though it sorts after the shorter
    paths: dict[tuple[str, str], Access] = {
        ("GET", "/z/{rest:path}"): "admin",
        ("GET", "/{x}/long-name/b"): "viewer",
    }
    assert lookup("GET", "/z/long-name/b", paths) == Found("/{x}/long-name/b", "viewer")
    assert lookup("GET", "/z/other/b", paths) == Found("/z/{rest:path}", "admin")


def test_a_route_dropped_from_a_table_is_not_found() -> None:
    rules = {k: v for k, v in RULES.items() if k != ("POST", "/rollouts/{rollout_id}/promote")}
    assert lookup("POST", "/rollouts/x/promote", rules) == Found(None, None)
    assert lookup("POST", "/rollouts/x/promote") == Found("/rollouts/{rollout_id}/promote", "deployer")


def test_roles_rank_viewer_deployer_admin() -> None:
    for role in ORDER:
        assert satisfies(role, "public")
        for access in ORDER:
            assert satisfies(role, access) == (ORDER.index(role) >= ORDER.index(access)), (role, access)  # type: ignore[arg-type]
