"""Every judge and evidence query aggregates over `instance` (issue 25: several collectors).

Each collector replica is its own Prometheus target, so a series per replica
exists for the same labels; a query that did not sum them would judge one
replica's share. The real sum over two scraped collectors is checked end to end
in tests/e2e/test_collectors.py; this holds the query text.
"""

from __future__ import annotations

import re
from pathlib import Path

from skyline.checks import default_checks

ROOT = Path(__file__).resolve().parents[2]
# An aggregation and the labels it keeps: `sum(`, `sum by (le) (`, `max(`.
AGGREGATION = re.compile(r"\b(sum|max|min|count|avg)\s*(?:by\s*\(([^)]*)\))?\s*\(")


def aggregates_over_instance(promql: str) -> bool:
    found = AGGREGATION.findall(promql)
    return bool(found) and all("instance" not in kept for _, kept in found)


def test_the_helper_tells_the_two_apart() -> None:
    assert aggregates_over_instance('sum by (le) (rate(x{a="b"}[1m]))')
    assert not aggregates_over_instance('rate(x{a="b"}[1m])')
    assert not aggregates_over_instance("sum by (instance) (x)")


def test_default_checks_sum_over_instances() -> None:
    for check in default_checks(0.01, 2.0, 10):
        for query in (check.query, check.total_query):
            if query is not None:
                assert aggregates_over_instance(query), (check.name, query)


def test_the_figures_queries_sum_over_instances() -> None:
    source = (ROOT / "activities" / "metrics.py").read_text(encoding="utf-8")
    queries = re.findall(r"self\._(?:vector|instant)\(\s*f\"([^\"]+)\"", source)
    assert len(queries) >= 6, queries  # increase() figures, vitals now and then, the newest scrape
    for query in queries:
        assert aggregates_over_instance(query), query


def test_a_looks_counters_query_sums_over_instances() -> None:
    """Loads and histograms of both versions, now and then, in one query: eight sums."""
    from activities.metrics import GatherFiguresInput, counters_query

    look = GatherFiguresInput(
        apartment="a", building="b", unit="u", canary_version="1.1.0", baseline_version="1.0.0",
        since_seconds=60, at_seconds=60, window_seconds=60, checks=[],
    )  # fmt: skip
    query = counters_query(look, ["1.1.0", "1.0.0"], 1_700_000_000.0)
    assert len(AGGREGATION.findall(query)) == 8, query
    assert aggregates_over_instance(query), query
