"""Every route x every method x anonymous / viewer / deployer / admin, against a real API with auth on.

The routes come from the app itself (its OpenAPI schema, plus the few it serves
outside the schema); the expected answer of each comes from api/access.py, the
table the gate and the routes' dependencies read. A route without an entry
fails here (and is refused at runtime); a rule loosened in the code but not in
docs/security.md fails `test_the_documented_table_is_the_code_table`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from api.access import RULES, Access, lookup, satisfies
from api.main import create_app
from stack.embedded import EmbeddedStack
from tests.support.routes import served_routes
from tests.support.secured import ROLES, bearer, secured_api

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]

# Cheap, side-effect-free bodies where an empty one would do real work when allowed.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/storage/gc"): {"dry_run": True, "apartment": "none"},
}
SAMPLE = {"revision": "1", "name": "nobody-here"}  # other parameters: "none"


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


def auth_refusal(response: httpx.Response) -> str | None:
    if response.status_code not in (401, 403):
        return None
    code = response.json().get("error", {}).get("code")
    return str(code) if code in ("unauthenticated", "forbidden") else None


def expected(access: Access, role: str) -> str:
    if access == "public":
        return "allowed"
    if role == "anonymous":
        return "401"
    return "allowed" if satisfies(role, access) else "403"


def test_every_served_route_has_exactly_one_rule_and_no_rule_is_stale() -> None:
    missing = [route for route in SERVED if route not in RULES]
    assert not missing, f"routes without an entry in api/access.py RULES: {missing}"
    stale = sorted(set(RULES) - set(SERVED))
    assert not stale, f"RULES entries for routes the app does not serve: {stale}"


def test_the_gate_finds_each_route_under_its_own_template() -> None:
    for method, template in SERVED:
        found = lookup(method, concrete(template))
        assert (found.template, found.access) == (template, RULES.get((method, template))), (method, template)


def test_a_route_without_a_rule_is_not_found_by_the_gate() -> None:
    rules = {k: v for k, v in RULES.items() if k != ("POST", "/rollouts/{rollout_id}/promote")}
    found = lookup("POST", "/rollouts/x/promote", rules)
    assert found.access is None and found.template is None


@pytest.fixture(scope="module")
def matrix_url(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with secured_api(stack, tmp_path_factory.mktemp("matrix-api")) as (url, _):
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def secured(matrix_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=matrix_url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(("method", "template"), SERVED, ids=[f"{m} {t}" for m, t in SERVED])
async def test_each_role_gets_exactly_what_the_table_says(
    secured: httpx.AsyncClient, method: str, template: str
) -> None:
    access = RULES.get((method, template))
    assert access is not None, f"{method} {template} has no entry in api/access.py RULES"
    path = concrete(template)
    body = BODIES.get((method, template), {}) if method in ("POST", "PUT", "PATCH", "DELETE") else None
    for role in ROLES:
        response = await secured.request(method, path, json=body, headers=bearer(role))
        want = expected(access, role)
        got = response.status_code
        if want == "allowed":
            # Past authorization: whatever the route says (a public route may refuse its own
            # signed token, e.g. 401 invalid_override_token), never the API's auth refusal, never 5xx.
            assert got < 500 and auth_refusal(response) is None, (role, got, response.text[:300])
        else:
            assert got == int(want), (role, got, response.text[:300])
            error = response.json()["error"]
            assert error["status"] == got and error["code"] in ("unauthenticated", "forbidden"), error
            if want == "403":
                assert f"this needs {access} or higher" in error["message"], error


def documented_rules() -> dict[tuple[str, str], str]:
    """The route table in docs/security.md: | `METHOD /path` | rule |."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`([A-Z]+) (/[^`]*)`\s*\|\s*([a-z]+)\s*\|", text, re.MULTILINE)
    return {(method, path): rule for method, path, rule in rows}


def test_the_documented_table_is_the_code_table() -> None:
    assert documented_rules() == dict(RULES)


async def test_what_the_table_does_not_name_is_404_or_405_for_everyone(secured: httpx.AsyncClient) -> None:
    for role in ROLES:
        unknown = await secured.get("/no-such-route", headers=bearer(role))
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        wrong = await secured.put("/rollouts", json={}, headers=bearer(role))
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        assert set(wrong.headers["allow"].split(", ")) == {"GET", "POST"}
