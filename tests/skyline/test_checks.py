from __future__ import annotations

import pytest
from pydantic import ValidationError

from skyline.checks import MetricCheck, default_checks, render


def test_templates_fill_named_arguments_and_leave_promql_braces_alone() -> None:
    check = default_checks(0.01, 1.0, 50)[0]
    query = render(
        check.query,
        {"apartment": "shop", "building": "header", "unit": "header", "version": "1.2.0", "window": "60s"},
    )
    assert query == (
        'sum(increase(skyline_unit_loads_total{apartment="shop",building="header",unit="header",'
        'version="1.2.0",outcome!="loaded"}[60s]))'
    )


def test_user_arguments() -> None:
    check = MetricCheck(
        name="api_errors",
        query='sum(rate(http_errors_total{service="{service}",version="{version}"}[{window}]))',
        max=5,
        args={"service": "cart"},
    )
    assert 'service="{service}"' in check.query


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"query": 'rate(x{v="{colour}"}[1m])', "max": 1}, "unknown template argument(s) ['colour']"),
        ({"query": "x", "kind": "ratio", "max": 1}, "needs total_query"),
        ({"query": "x"}, "give max, min and/or tolerance"),
        ({"query": "x", "max": 1, "name": "Bad Name"}, "String should match pattern"),
    ],
)
def test_bad_checks_explain_themselves(fields: dict[str, object], message: str) -> None:
    with pytest.raises(
        ValidationError,
        match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)"),
    ):
        MetricCheck.model_validate({"name": "c", **fields})
