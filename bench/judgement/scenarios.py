"""The labelled sets: one step of ten looks, one look with all evidence, whole rollouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.judgement.simulation import (
    LOOKS,
    Canary,
    Family,
    Label,
    draw_canary,
    draw_unit,
    final_figures,
    one_look,
    reference,
    simulate_step,
)

STEPS = (5.0, 25.0, 50.0, 100.0)
LABELS: tuple[Label, ...] = ("good", "bad", "thin", "late")
TAIL_LABELS: tuple[Label, ...] = ("good", "tail")
FAMILIES: tuple[Family, ...] = ("project", "independent")
Judge = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def step_documents(seed: int, per_label: int, weight: float = 50.0) -> list[tuple[Label, dict[str, Any]]]:
    """One step at `weight`, judged as a last step (it would make the canary active)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[Label, dict[str, Any]]] = []
    for label in LABELS:
        for _ in range(per_label):
            unit = draw_unit(rng, thin=label == "thin", weight=weight)
            out.append((label, simulate_step(rng, unit, draw_canary(rng, label), weight, last=True)))
    return out


def single_look_documents(seed: int, per_label: int) -> list[tuple[Label, dict[str, Any]]]:
    return [(label, one_look(doc)) for label, doc in step_documents(seed, per_label) if label != "late"]


def whole_rollouts(
    judge: Judge,
    seed: int,
    per_label: int,
    labels: tuple[Label, ...] = LABELS,
    family: Family = "project",
) -> list[tuple[Label, str, int]]:
    """Run every rollout step by step through `judge`; (label, outcome, steps reached)."""
    rng = np.random.default_rng(seed)
    rollouts: list[dict[str, Any]] = []
    for label in labels:
        for _ in range(per_label):
            # thin at every step, the 100 % one included
            unit = draw_unit(rng, thin=label == "thin", weight=STEPS[-1], family=family)
            canary = draw_canary(rng, "bad" if label == "late" else label)
            onset_step = int(rng.integers(0, len(STEPS))) if label == "late" else 0
            rollouts.append(
                {
                    "label": label,
                    "unit": unit,
                    "canary": canary,
                    "onset": onset_step,
                    "earlier": [],
                    "outcome": None,
                    "reference": reference(rng, unit),
                }
            )
    for index, weight in enumerate(STEPS):
        live = [r for r in rollouts if r["outcome"] is None]
        docs = []
        for r in live:
            planned: Canary = r["canary"]
            if r["label"] == "late":
                if index < r["onset"]:
                    step_canary = Canary("good")
                elif index == r["onset"]:
                    step_canary = Canary("late", planned.error_factor, planned.latency_factor, LOOKS // 2)
                else:
                    step_canary = Canary("bad", planned.error_factor, planned.latency_factor, 0)
            else:
                step_canary = planned
            doc = simulate_step(
                rng,
                r["unit"],
                step_canary,
                weight,
                index,
                index == len(STEPS) - 1,
                r["earlier"],
                reference=r["reference"],
            )
            docs.append(doc)
        verdicts = judge(docs)
        for r, doc, verdict in zip(live, docs, verdicts, strict=True):
            decision = verdict["decision"]
            r["reached"] = index
            if decision == "promote":
                r["earlier"] = [*r["earlier"], final_figures(doc)]
                if index == len(STEPS) - 1:
                    r["outcome"] = "active"
            else:
                r["outcome"] = "rolled back" if decision == "rollback" else "held"
    return [(r["label"], r["outcome"], r["reached"]) for r in rollouts]


def tail_steps(seed: int, per_label: int) -> dict[str, list[tuple[Label, dict[str, Any]]]]:
    """Tail regressions (and good canaries beside them) at every step of a rollout.

    Each rollout is simulated through all of its steps, half of them on each
    family of units; the step at each weight is judged with the earlier steps'
    figures as the workflow would give them (every earlier step promoted), so
    the last step (100 %) has the rollout's evidence and no concurrent baseline.
    Set name -> (label, document).
    """
    rng = np.random.default_rng(seed)
    sets: dict[str, list[tuple[Label, dict[str, Any]]]] = {step_set(w): [] for w in STEPS}
    for label in TAIL_LABELS:
        for n in range(per_label):
            family = FAMILIES[n % len(FAMILIES)]
            unit = draw_unit(rng, weight=STEPS[-1], family=family)
            canary = draw_canary(rng, label)
            ref = reference(rng, unit)
            earlier: list[dict[str, Any]] = []
            for index, weight in enumerate(STEPS):
                last = index == len(STEPS) - 1
                doc = simulate_step(rng, unit, canary, weight, index, last, earlier, reference=ref)
                sets[step_set(weight)].append((label, doc))
                earlier = [*earlier, final_figures(doc)]
    return sets


def step_set(weight: float) -> str:
    return f"tails: step at {weight:g} %" + (" (last)" if weight == STEPS[-1] else "")
