"""Issue 28 item 4: DNS rebinding tested at the callers, not only on the resolver function.

Every outbound request to a URL a deployer names (the webhooks of each event,
the smoke URL) goes through the real gate activities with a resolver that
rebinds: its first answer is an allowed address, every later one loopback.
The request must reach the first, checked address, or be refused.

No non-loopback test address exists here, so the "allowed" address is
127.0.0.2 (admitted by an allowlist CIDR, as the test stack does) and the
"internal" one 127.0.0.1, where a trap listener on the same port records any
hit. The URLs name `localhost`: a caller that connected to the host name
instead of the checked address would have the system resolve it, to
127.0.0.1, and land in the trap.
"""

from __future__ import annotations

import errno
import typing
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gates import GateActivities, SmokeCheckInput, WebhookInput
from adapters.bundles import sri_sha384
from skyline.rollout import WebhookEvent
from tests.support.webhooks import WEBHOOK_HOST, Receiver, webhook_receiver

ALLOWED = [f"{WEBHOOK_HOST}/32"]  # the address, not the name: the name is what rebinds
TRAP_HOST = "127.0.0.1"
ENTRY = b"export const mount = () => 1;\n"


class Rebinding:
    """A resolver answering `first` once, then `then` for good (the attacker's DNS)."""

    def __init__(self, first: list[str], then: list[str]) -> None:
        self.first, self.then = first, then
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.first if len(self.asked) == 1 else self.then


@pytest.fixture
def listeners() -> Iterator[tuple[Receiver, Receiver]]:
    """The checked address's listener and a trap on 127.0.0.1, on one port (what a URL names)."""
    for _ in range(20):
        with ExitStack() as stack:
            good = stack.enter_context(webhook_receiver())
            port = int(good.url.rsplit(":", 1)[1])
            try:
                trap = stack.enter_context(webhook_receiver(TRAP_HOST, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            good.files["/entry.js"] = (ENTRY, "text/javascript")
            yield good, trap
            return
    raise AssertionError("no port free on both 127.0.0.2 and 127.0.0.1")


def port_of(receiver: Receiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1])


def gates(resolver: Rebinding) -> GateActivities:
    return GateActivities(httpx.Client(timeout=10), b"secret", ALLOWED, resolver=resolver)


@pytest.mark.parametrize("event", typing.get_args(WebhookEvent))
def test_a_webhook_goes_to_the_checked_address_after_a_rebinding(
    event: str, listeners: tuple[Receiver, Receiver]
) -> None:
    good, trap = listeners
    resolver = Rebinding([WEBHOOK_HOST], [TRAP_HOST])
    url = f"http://localhost:{port_of(good)}/hook/{event}"
    result = gates(resolver).call_webhook(
        WebhookInput(event=event, url=url, timeout_seconds=10, payload={"rollout_id": "r"})
    )
    assert result.status == 200
    assert trap.calls == [], "the request followed the name to loopback"
    assert [c["path"] for c in good.calls] == [f"/hook/{event}"]
    assert good.calls[0]["headers"]["host"] == f"localhost:{port_of(good)}"  # the name, for the receiver
    assert good.calls[0]["headers"]["x-skyline-event"] == event
    assert resolver.asked == ["localhost"]  # resolved once: the check and the connection agree


def test_the_smoke_url_goes_to_the_checked_address_after_a_rebinding(
    listeners: tuple[Receiver, Receiver],
) -> None:
    good, trap = listeners
    resolver = Rebinding([WEBHOOK_HOST], [TRAP_HOST])
    result = gates(resolver).smoke_check(
        SmokeCheckInput(
            entry_url=f"{good.url}/entry.js",
            integrity=sri_sha384(ENTRY),
            smoke_url=f"http://localhost:{port_of(good)}/smoke",
        )
    )
    assert result.smoke_status == 200
    assert trap.calls == [], "the smoke request followed the name to loopback"
    assert [c["path"] for c in good.calls] == ["/smoke"]
    assert resolver.asked == ["localhost"]


@pytest.mark.parametrize("event", typing.get_args(WebhookEvent))
def test_an_answer_holding_an_internal_address_is_refused_at_every_caller(
    event: str, listeners: tuple[Receiver, Receiver]
) -> None:
    """The allowed address first and loopback second in one answer: refused, nothing contacted."""
    good, trap = listeners
    url = f"http://localhost:{port_of(good)}/hook"
    caller = gates(Rebinding([WEBHOOK_HOST, TRAP_HOST], [TRAP_HOST]))
    with pytest.raises(ApplicationError) as refused:
        caller.call_webhook(WebhookInput(event=event, url=url, timeout_seconds=10, payload={}))
    assert refused.value.type == "OutboundRefused" and "127.0.0.1" in str(refused.value)
    smoke = gates(Rebinding([WEBHOOK_HOST, TRAP_HOST], [TRAP_HOST]))
    with pytest.raises(ApplicationError) as refused:
        smoke.smoke_check(
            SmokeCheckInput(entry_url=f"{good.url}/entry.js", integrity=sri_sha384(ENTRY), smoke_url=url)
        )
    assert refused.value.type == "OutboundRefused"
    assert trap.calls == [] and good.calls == []
