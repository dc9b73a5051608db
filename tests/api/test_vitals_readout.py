"""How GET /rollouts/{id}/vitals turns Prometheus vectors into its answer (the live path: tests/cli)."""

from __future__ import annotations

from typing import Any

from api.routes.vitals import assemble, vital_queries


def test_assembly_marks_roles_and_drops_empty_versions() -> None:
    queries = vital_queries("shop", "header", 600)
    assert queries["lcp", "p75"] == (
        "histogram_quantile(0.75, sum by (unit, version, le) "
        '(increase(skyline_web_vitals_lcp_seconds_bucket{apartment="shop",building="header"}[600s])))'
    )

    def sample(version: str, value: str) -> dict[str, Any]:
        return {"metric": {"unit": "header", "version": version}, "value": [0, value]}

    answers: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in queries}
    answers["lcp", "pages"] = [sample("1.0.0", "12"), sample("1.1.0", "3"), sample("0.9.0", "0")]
    answers["lcp", "p75"] = [sample("1.0.0", "0.9"), sample("1.1.0", "NaN"), sample("0.9.0", "NaN")]
    answers["cls", "pages"] = [sample("0.8.0", "2")]
    answers["cls", "p75"] = [sample("0.8.0", "0.05")]
    rows = assemble(answers, ("header", "1.1.0"), "header@1.0.0")
    roles = [(r.version, r.role) for r in rows]
    assert roles == [("1.1.0", "canary"), ("1.0.0", "baseline"), ("0.8.0", "other")]
    assert rows[0].vitals["lcp"].p75 is None and rows[0].vitals["lcp"].pages == 3  # NaN is no figure
    assert set(rows[2].vitals) == {"cls"}  # 0.9.0 reported nothing in the window: left out
