"""Schemathesis against the API's own OpenAPI schema: no generated request gets a 5xx.

Every operation the running API publishes is exercised with schema-valid and
schema-violating input (bounded examples each); bad input must come back as
a 4xx, never as a server error. All offending requests are reported at once,
as curl commands.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from bench.rig import Rig

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

EXAMPLES_PER_OPERATION = 25
# The readiness probe answers 503 by design when a dependency is down; the rig's are up.
EXPECTED_5XX: dict[str, set[int]] = {}


def _strategy(operation: Any) -> Any:
    modes = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    # some operations have nothing that can be made invalid (no parameters)
    with contextlib.suppress(Exception):
        modes.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    return st.one_of(*modes)


def _exercise(rig: Rig, operation: Any, label: str, failures: list[str]) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, report as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation))
    def check(case: Any) -> None:
        response = case.call(base_url=rig.api_url, timeout=30)
        if response.status_code >= 500 and response.status_code not in EXPECTED_5XX.get(label, set()):
            failures.append(
                f"{label} → {response.status_code} {response.text[:300]!r}\n"
                f"    {case.as_curl_command(base_url=rig.api_url)}"
            )

    check()


@pytest.fixture(scope="module")
def schema_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A rig of its own: a generated POST /tokens may mint the first token, which turns auth on."""
    with Rig(tmp_path_factory.mktemp("schema")) as rig:
        yield rig


def test_no_generated_request_gets_a_server_error(schema_rig: Rig) -> None:
    rig = schema_rig
    schema = schemathesis.openapi.from_url(f"{rig.api_url}/openapi.json", wait_for_schema=30)
    results = list(schema.get_all_operations())
    broken = [r.err() for r in results if not isinstance(r, Ok)]
    assert not broken, f"the API publishes operations schemathesis cannot read: {broken}"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    # Token operations last: once one is minted, everything else would only see 401s.
    operations.sort(key=lambda op: op.path.startswith("/tokens"))
    failures: list[str] = []
    exercised: list[str] = []
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        exercised.append(label)
        _exercise(rig, operation, label, failures)
    assert len(exercised) >= 10, exercised  # the schema really was read
    assert not failures, f"{len(failures)} request(s) got a 5xx:\n" + "\n".join(failures[:20])
