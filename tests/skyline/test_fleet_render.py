"""A rolled-back fleet apartment is shown at 0 %, not at the weight it had reached."""

from __future__ import annotations

from rich.console import Console

from cli.render import fleet_apartments


def test_a_rolled_back_apartment_is_not_shown_at_100_percent() -> None:
    status = {
        "batch": 0,
        "apartments": {
            "shop": {"batch": 0, "state": "rolled_back", "rollout_id": "rollout.shop.header", "weight": 100},
            "blog": {"batch": 0, "state": "succeeded", "rollout_id": "rollout.blog.header", "weight": 100},
        },
    }
    console = Console(width=200, record=True)
    console.print(fleet_apartments(status))
    lines = console.export_text().splitlines()
    shop = next(line for line in lines if "shop" in line)
    blog = next(line for line in lines if "blog" in line)
    assert "0%" in shop and "100%" not in shop
    assert "100%" in blog


def test_resolve_says_which_criterion_excluded_a_user() -> None:
    from cli.render import resolve_table

    data = {
        "header": {
            "bucket": 12,
            "reason": "stable",
            "unit": {"id": "header@1.0.0"},
            "excluded_by": "geo_regions",
        },
        "main": {"bucket": 40, "reason": "canary", "unit": {"id": "main@2.0.0"}, "excluded_by": None},
    }
    console = Console(width=200, record=True)
    console.print(resolve_table(data))
    shown = console.export_text()
    assert "stable (in the canary's bucket, excluded by geo_regions)" in shown


def test_the_health_score_is_shown_with_its_components() -> None:
    from cli.render import analysis_table

    analysis = {
        "weight": 25,
        "verdict": "pass",
        "checks": [],
        "reason": "",
        "health_score": 95.25,
        "health_components": {"error_rate": 100.0, "latency": 85.15, "throughput": 100.0},
    }
    console = Console(width=200, record=True)
    console.print(analysis_table(analysis))
    assert "health score 95.2/100: error_rate 100, latency 85, throughput 100" in console.export_text()
