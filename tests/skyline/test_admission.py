"""The gate's and `Caller`'s decisions (api/admission.py), one by one, without a server.

tests/skyline/test_access_rules.py runs them together over every route; here each
decision's edges: which header or address gets what answer, with which message.
The stack's tests (tests/security/test_auth_before_body.py, test_control_bytes.py,
test_client_addresses.py, tests/deploy/test_fail_closed.py) check the same over HTTP.
"""

from __future__ import annotations

import pytest

from api.admission import (
    AUTH_SETTING,
    DRAIN_AT_MOST,
    Principal,
    TokenRecord,
    admit,
    bearer_token,
    control_field,
    exposure_refusal,
    gate_verdict,
    is_loopback,
    is_remote,
    role_allows,
    route_rule,
    unread_body_too_large,
    without_token,
)
from api.errors import ApiError
from skyline.settings import Settings


def refusal(raised: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return raised.value.status, raised.value.code, raised.value.message


# ----- before any token ---------------------------------------------------------------------


def test_a_public_route_admits_an_anonymous_viewer_whatever_the_client() -> None:
    for enabled in (True, False):
        for client in ("203.0.113.9", "127.0.0.1", None):
            assert without_token("public", enabled, client) == Principal("anonymous", "viewer", False)


def test_with_auth_on_the_token_decides() -> None:
    for access in ("viewer", "deployer", "admin"):
        assert without_token(access, True, "127.0.0.1") is None
        assert without_token(access, True, None) is None


def test_with_auth_off_a_client_on_this_host_is_an_anonymous_admin() -> None:
    for client in ("127.0.0.1", "::1", "[::1]", "127.9.9.9", None, "testclient", "unix-socket"):
        assert without_token("admin", False, client) == Principal("anonymous", "admin", False), client


def test_with_auth_off_a_remote_client_is_refused() -> None:
    for client in ("203.0.113.9", "10.0.0.2", "[2001:db8::1]", "0.0.0.0"):
        with pytest.raises(ApiError) as raised:
            without_token("viewer", False, client)
        status, code, message = refusal(raised)
        assert (status, code) == (401, "unauthenticated")
        assert message == (
            "authentication is not configured (SKYLINE_AUTH_TOKENS unset): "
            "only clients on this host may call this route"
        )


def test_addresses_on_this_host() -> None:
    assert is_remote("203.0.113.9") and is_remote("[2001:db8::1]") and is_remote("0.0.0.0")
    assert not is_remote("127.0.0.1") and not is_remote("[::1]") and not is_remote(None)
    assert not is_remote("testclient")  # not an IP address: an in-process transport
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("::1")
    assert is_loopback("localhost") and is_loopback("LocalHost") and is_loopback("[localhost]")
    assert not is_loopback("0.0.0.0") and not is_loopback("api.example") and not is_loopback(None)
    assert not is_loopback("192.0.2.1")
    # only brackets are stripped: a name that merely contains an address or "localhost" is neither
    assert not is_loopback("Xlocalhost") and not is_loopback("X127.0.0.1X")
    assert not is_remote("X203.0.113.9")


def test_an_api_serving_other_machines_without_auth_refuses_to_start() -> None:
    assert exposure_refusal(Settings(api_host="127.0.0.1")) is None
    assert exposure_refusal(Settings(api_host="localhost")) is None
    assert exposure_refusal(Settings(api_host="0.0.0.0", auth_tokens=["a:admin:" + "0" * 64])) is None
    refused = exposure_refusal(Settings(api_host="0.0.0.0", auth_tokens=[]))
    assert refused == (
        "refusing to start: SKYLINE_API_HOST=0.0.0.0 serves other machines, and no authentication is "
        f"configured. Set {AUTH_SETTING} (or SKYLINE_AUTH_TOKENS_FILE) to at least one admin token "
        "(docs/security.md#api-auth), or bind SKYLINE_API_HOST=127.0.0.1."
    )
    assert AUTH_SETTING == "SKYLINE_AUTH_TOKENS"


def test_a_tokens_file_turns_auth_on_too(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    tokens = tmp_path / "tokens.json"
    tokens.write_text("[]")
    assert exposure_refusal(Settings(api_host="0.0.0.0", auth_tokens=[], auth_tokens_file=tokens)) is None


# ----- the token ----------------------------------------------------------------------------


def test_a_bearer_token_is_read_in_any_case_and_trimmed() -> None:
    assert bearer_token("Bearer sky_abc") == "sky_abc"
    assert bearer_token("bearer sky_abc") == "sky_abc"
    assert bearer_token("BEARER   sky_abc  ") == "sky_abc"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "sky_abc", "Token x"]
)
def test_anything_else_is_refused_with_how_to_send_one(header: str) -> None:
    with pytest.raises(ApiError) as raised:
        bearer_token(header)
    assert refusal(raised) == (401, "unauthenticated", "send 'Authorization: Bearer <token>'")


def token(role: str) -> TokenRecord:
    return TokenRecord(name="ci-bot", role=role, sha256="a" * 64)


def test_a_known_token_of_a_strong_enough_role_is_admitted_by_name() -> None:
    assert admit(token("deployer"), "deployer") == Principal("ci-bot", "deployer", True)
    assert admit(token("admin"), "viewer") == Principal("ci-bot", "admin", True)
    assert admit(token("viewer"), "public") == Principal("ci-bot", "viewer", True)


def test_an_unknown_token_is_401_and_a_weak_one_403_naming_the_need() -> None:
    with pytest.raises(ApiError) as raised:
        admit(None, "viewer")
    assert refusal(raised) == (401, "unauthenticated", "unknown or revoked token")
    with pytest.raises(ApiError) as raised:
        admit(token("viewer"), "deployer")
    assert refusal(raised) == (
        403,
        "forbidden",
        "token 'ci-bot' has role viewer; this needs deployer or higher",
    )
    with pytest.raises(ApiError) as raised:
        admit(token("deployer"), "admin")
    assert refusal(raised)[0] == 403


def test_the_stricter_of_rule_and_route_role_holds() -> None:
    who = Principal("ci-bot", "deployer", True)
    assert role_allows(who, "viewer") is who
    assert role_allows(who, "deployer") is who
    with pytest.raises(ApiError) as raised:
        role_allows(who, "admin")
    assert refusal(raised) == (
        403,
        "forbidden",
        "token 'ci-bot' has role deployer; this needs admin or higher",
    )


def test_the_actor_is_the_token_when_there_is_one() -> None:
    assert Principal("ci-bot", "admin", True).actor("someone") == "ci-bot"
    assert Principal("anonymous", "admin", False).actor("someone") == "someone"


# ----- the route the router matched ---------------------------------------------------------


def test_a_matched_route_gets_its_rule_and_one_without_is_refused() -> None:
    assert route_rule("POST", "/rollouts/{rollout_id}/promote") == "deployer"
    assert route_rule("GET", "/rollouts") == "viewer"
    assert route_rule("GET", "/healthz") == "public"
    with pytest.raises(ApiError) as raised:
        route_rule("GET", "/nowhere")
    assert refusal(raised) == (404, "not_found", "no access rule for GET /nowhere (api/access.py)")
    with pytest.raises(ApiError) as raised:
        route_rule("GET", None)
    assert refusal(raised) == (404, "not_found", "no access rule for GET None (api/access.py)")


def test_the_gates_verdict_counts_only_for_the_same_template() -> None:
    who = Principal("ci-bot", "viewer", True)
    assert gate_verdict(("/rollouts", who), "/rollouts") is who
    assert gate_verdict(("/rollouts/{rollout_id}", who), "/rollouts") is None
    assert gate_verdict(("/rollouts", "ci-bot"), "/rollouts") is None
    assert gate_verdict(None, "/rollouts") is None
    assert gate_verdict(["/rollouts", who], "/rollouts") is None


# ----- before the body ----------------------------------------------------------------------


def test_a_control_character_is_found_in_the_path_or_the_query() -> None:
    assert control_field("/rollouts", b"state=running&x=") is None
    assert control_field("/rollouts/a\x00b", b"") == "path"
    assert control_field("/rollouts/a\x7f", b"") == "path"
    assert control_field("/rollouts", b"state=run%00ning") == "state"
    assert control_field("/rollouts", b"st%0aate=running") == "query"
    assert control_field("/rollouts", b"a=1&b=%c2%85") == "b"  # a C1 control, decoded as latin-1
    assert control_field("/rollouts", b"a=1&b=%0d") == "b"
    assert control_field("/rollouts", "a=\u00e9".encode()) is None


def test_a_query_that_does_not_parse_is_the_querys_fault() -> None:
    assert control_field("/rollouts", b"a=%zz&b=1") is None  # not an escape: kept as text
    assert control_field("/rollouts", b"a=1;b=2") is None
    # an escape that is no UTF-8 is refused, not replaced by U+FFFD and let through
    assert control_field("/rollouts", b"a=%ff") == "query"
    assert control_field("/rollouts", b"a=1&%c3=2") == "query"


def test_a_control_character_in_a_name_without_a_value_is_found() -> None:
    assert control_field("/rollouts", b"%01=") == "query"
    assert control_field("/rollouts", b"a=1&%1b") == "query"
    assert control_field("/rollouts", b"a=1&b=") is None


def test_a_large_or_unannounced_body_is_not_drained() -> None:
    assert DRAIN_AT_MOST == 64 * 1024
    assert not unread_body_too_large([])
    assert not unread_body_too_large([(b"content-length", b"0")])
    assert not unread_body_too_large([(b"content-length", b"65536")])
    assert unread_body_too_large([(b"content-length", b"65537")])
    assert not unread_body_too_large([(b"content-length", b" 12 ")])
    assert unread_body_too_large([(b"content-length", b"-1")])
    assert unread_body_too_large([(b"content-length", b"12, 12")])
    assert unread_body_too_large([(b"transfer-encoding", b"chunked")])
    assert unread_body_too_large([(b"content-length", b"3"), (b"transfer-encoding", b"chunked")])
