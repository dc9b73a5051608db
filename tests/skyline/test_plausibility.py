"""Plausibility (skyline/plausibility.py): implausible or concentrated evidence only holds."""

from __future__ import annotations

from typing import Any

from skyline.evidence import Evidence, VariantEvidence
from skyline.figures import StepDocument
from skyline.judge import judge_look, judge_step
from skyline.plausibility import allowance, split_doubt, volume_doubt
from tests.skyline.test_judge import doc, fig


def with_evidence(d: StepDocument, **variants: Any) -> StepDocument:
    """`d` with evidence on its last look."""
    looks = list(d.looks)
    looks[-1] = looks[-1].model_copy(update={"evidence": Evidence.model_validate(variants)})
    return d.model_copy(update={"looks": looks})


def spread(sessions: int, failures: int, networks: int | None = None) -> dict[str, Any]:
    """Honest evidence: about one observation per network."""
    n = networks if networks is not None else sessions
    return {
        "sessions": sessions,
        "networks": n,
        "failing_networks": min(failures, n),
        "top_failures": [1] * min(10, failures),
        "top_successes": [2] * min(10, sessions - failures),
    }


def test_a_forced_rollback_from_one_network_holds_with_the_reason() -> None:
    # Issue 22's first attack: 60 sessions of one network report the canary failing.
    step = doc(fig(62, 60), fig(186, 0), weight=25, last=False)
    assert judge_look(step, 9).decision == "rollback"
    forged = with_evidence(
        step,
        canary={
            "sessions": 62,
            "networks": 1,
            "failing_networks": 1,
            "top_failures": [60],
            "top_successes": [2],
        },
        baseline=spread(186, 0, 180),
    )
    verdict = judge_look(forged, 9)
    assert verdict.decision == "hold"
    assert "failures from 1 client network of 1" in verdict.reason


def test_failures_concentrated_in_a_few_networks_among_many_hold() -> None:
    # 500 honest canary sessions (1 % failing) and 3 networks adding 40 failures each.
    step = doc(fig(620, 125), fig(600, 5), weight=50, last=False)
    assert judge_look(step, 9).decision == "rollback"
    canary = {
        "sessions": 620,
        "networks": 503,
        "failing_networks": 8,
        "top_failures": [40, 40, 40, 1, 1, 1, 1, 1],
        "top_successes": [2] * 10,
    }
    verdict = judge_look(with_evidence(step, canary=canary, baseline=spread(600, 5, 590)), 9)
    assert verdict.decision == "hold" and verdict.reason.startswith("concentrated evidence")


def test_a_real_regression_spread_over_networks_still_rolls_back() -> None:
    step = doc(fig(600, 180), fig(600, 3), weight=50, last=False)
    honest = with_evidence(step, canary=spread(600, 180, 590), baseline=spread(600, 3, 590))
    assert judge_look(honest, 9).decision == "rollback"


def test_successes_concentrated_in_a_few_networks_do_not_promote() -> None:
    # A failing canary (30 %) drowned in successes from two networks.
    step = doc(fig(4050, 15), fig(4050, 2), weight=50, last=False)
    assert judge_step(step).decision == "promote"
    canary = {
        "sessions": 4050,
        "networks": 52,
        "failing_networks": 15,
        "top_failures": [1] * 10,
        "top_successes": [2000, 2000, 1, 1, 1, 1, 1, 1, 1, 1],
    }
    forged = with_evidence(step, canary=canary, baseline=spread(4050, 2, 4000))
    assert judge_step(forged).decision == "hold"
    assert "concentrated evidence" in judge_step(forged).reason


def test_honest_evidence_decides_as_the_figures_alone() -> None:
    step = doc(fig(4000, 4), fig(4000, 4), weight=50, last=False)
    honest = with_evidence(step, canary=spread(4000, 4, 3000), baseline=spread(4000, 4, 3000))
    assert judge_step(step).decision == judge_step(honest).decision == "promote"


def test_a_canary_share_the_split_did_not_send_is_implausible() -> None:
    ev = Evidence(canary=VariantEvidence(sessions=300), baseline=VariantEvidence(sessions=700))
    assert split_doubt(ev, 5) is not None and "30% of the step's 1000 sessions at a 5% split" in str(
        split_doubt(ev, 5)
    )
    assert split_doubt(ev, 30) is None
    assert (
        split_doubt(Evidence(canary=VariantEvidence(sessions=8), baseline=VariantEvidence(sessions=2)), 5)
        is None
    )


def test_more_sessions_than_the_traffic_before_predicts_is_implausible() -> None:
    ev = Evidence(
        canary=VariantEvidence(sessions=900),
        baseline=VariantEvidence(sessions=900),
        seconds=600,
        sessions_per_second_before=1.0,
    )
    assert "predicts about 600" in str(volume_doubt(ev))
    assert volume_doubt(ev.model_copy(update={"sessions_per_second_before": 2.0})) is None
    assert volume_doubt(ev.model_copy(update={"sessions_per_second_before": None})) is None


def test_the_allowance_is_what_networks_outside_the_top_send() -> None:
    assert (
        allowance(total=130, networks=12, top=[60, 60, 1, 1, 1, 1, 1, 1, 1, 1]) == 2
    )  # 2 sessions, 2 networks
    assert allowance(total=60, networks=1, top=[60]) == 1


def test_documents_without_evidence_replay_as_before() -> None:
    step = doc(fig(62, 60), fig(3000, 3), weight=50, last=False)
    assert "evidence" not in step.looks[-1].model_dump(exclude_none=True)
    assert judge_step(step).decision == "rollback"
