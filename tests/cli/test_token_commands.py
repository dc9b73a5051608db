"""`skyline token …` and the bearer token, against an API process with auth on."""

from __future__ import annotations

import json

from tests.cli.conftest import ADMIN_TOKEN, Cli, refused
from tests.support.scenario import unique


def test_admin_mints_a_token_that_works_until_revoked(secured_url: str) -> None:
    admin = Cli(secured_url, token=ADMIN_TOKEN)
    anonymous = Cli(secured_url)
    name = unique("cli-bot")

    refused(anonymous("rollout", "list"), "401", "Authorization: Bearer")
    refused(admin("rollout", "list", token="not-a-token"), "401", "unknown or revoked token")

    minted = admin.json("token", "create", name, "--role", "deployer")
    assert minted["name"] == name and minted["role"] == "deployer" and minted["token"].startswith("sky_")
    listed = admin.json("token", "list")
    assert {"name": name, "role": "deployer", "source": "minted"} in listed
    assert {"name": "cli-admin", "role": "admin", "source": "settings"} in listed
    table = admin("token", "list")
    assert table.exit_code == 0 and name in table.stdout and "minted" in table.stdout
    refused(
        admin("token", "create", name, "--role", "viewer"), "409", "exists; revoke it first", "field: name"
    )
    assert admin("token", "create", "x", "--role", "root").exit_code == 2

    # --token and SKYLINE_TOKEN both carry it; a deployer reads rollouts but cannot manage tokens
    bot = Cli(secured_url, token=minted["token"])
    assert bot("rollout", "list").exit_code == 0
    assert anonymous("--token", minted["token"], "-o", "json", "rollout", "list").exit_code == 0
    refused(bot("token", "list"), "403", f"token {name!r} has role deployer; this needs admin")

    revoked = admin("token", "revoke", name)
    assert revoked.exit_code == 0 and f"revoked {name}" in revoked.stdout
    refused(bot("rollout", "list"), "401", "unknown or revoked token")
    refused(admin("token", "revoke", name), "404", f"no minted token {name!r}")
    refused(admin("token", "revoke", "cli-admin"), "409", "comes from settings")
    as_json = admin("-o", "json", "token", "revoke", name)
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["status"] == 404
