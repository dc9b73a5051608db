"""`python -m bench --only judgement`: Skyline's judge beside Flagger- and Kayenta-style judges.

Every judge sees the same seeded, labelled step documents (bench/judgement/
simulation.py); Skyline's is run through `skyline judge replay` exactly as a
release manager would. Three sets, as the judgement issue defines them:

- whole rollouts (5/25/50/100 %, no baseline traffic at 100 %): did the canary become active?
- one step of ten looks judged as a last step (at 50 %): promoted, rolled back or held?
- one look with all the evidence at once;
- whole rollouts on the independent-style family of units (bench/judgement/
  simulation.py), tail regressions among them;
- tail regressions (5-20 % of loads 3-30x slower, median unchanged) and good
  canaries beside them, at every step of a rollout, the last one included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.judgement import peers
from bench.judgement.scenarios import (
    LABELS,
    single_look_documents,
    step_documents,
    tail_steps,
    whole_rollouts,
)

RESULTS = Path(
    os.environ.get(
        "SKYLINE_BENCH_JUDGE_RESULTS", Path(__file__).resolve().parent.parent / "results" / "judgement.json"
    )
)
PER_LABEL = int(os.environ.get("SKYLINE_BENCH_JUDGE_PER_LABEL", "200"))
SEED = int(os.environ.get("SKYLINE_BENCH_JUDGE_SEED", "20261127"))
ROOT = Path(__file__).resolve().parents[2]

Judge = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def skyline_replay(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`python -m cli judge replay FILE`: the public contract, not an in-process shortcut."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for doc in docs:
            handle.write(json.dumps(doc) + "\n")
        path = handle.name
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "judge", "replay", path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _peer(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Judge:
    return lambda docs: [fn(d) for d in docs]


JUDGES: dict[str, Judge] = {
    "skyline": skyline_replay,
    "flagger-style": _peer(peers.flagger),
    "kayenta-style": _peer(peers.kayenta),
}


ALL_LABELS = (*LABELS, "tail")
INDEPENDENT = "whole rollouts, independent"
# Good canaries held (%) by the judge before the tail checks (commit 5b9a567), same seed and sets:
# the tail checks may add at most 2 points to any of them (issue 27).
GOOD_HELD_BEFORE = {
    "whole rollouts": 4.0,
    "one step, ten looks": 12.5,
    "one look": 13.0,
    INDEPENDENT: 6.0,
    "tails: step at 5 %": 2.0,
    "tails: step at 25 %": 0.0,
    "tails: step at 50 %": 0.0,
    "tails: step at 100 % (last)": 3.0,
}


def _rates(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    counts = Counter(pairs)
    out: dict[str, dict[str, float]] = {}
    for label in ALL_LABELS:
        total = sum(v for (lab, _), v in counts.items() if lab == label)
        if total:
            out[label] = {o: round(100 * v / total, 1) for (lab, o), v in counts.items() if lab == label}
    return out


def run_sets(per_label: int = PER_LABEL, seed: int = SEED) -> dict[str, Any]:
    results: dict[str, Any] = {"per_label": per_label, "seed": seed, "sets": {}}
    steps = step_documents(seed, per_label)
    looks = single_look_documents(seed + 1, per_label)
    tails = tail_steps(seed + 4, per_label)
    for name, judge in JUDGES.items():
        started = time.monotonic()
        whole = whole_rollouts(judge, seed + 2, per_label)
        independent = whole_rollouts(
            judge, seed + 3, max(1, per_label // 2), (*LABELS, "tail"), family="independent"
        )
        step = judge([d for _, d in steps])
        one = judge([d for _, d in looks])
        sets: dict[str, Any] = {
            "whole rollouts": _rates([(lab, outcome) for lab, outcome, _ in whole]),
            "one step, ten looks": _rates(
                [(lab, v["decision"]) for (lab, _), v in zip(steps, step, strict=True)]
            ),
            "one look": _rates([(lab, v["decision"]) for (lab, _), v in zip(looks, one, strict=True)]),
            INDEPENDENT: _rates([(lab, outcome) for lab, outcome, _ in independent]),
        }
        late_decisions, tail_docs = 0, 0
        for set_name, docs in tails.items():
            verdicts = judge([d for _, d in docs])
            sets[set_name] = _rates(
                [(lab, v["decision"]) for (lab, _), v in zip(docs, verdicts, strict=True)]
            )
            # a tail regression the step's own looks did not settle (promoted, or still open after them)
            tail_docs += sum(1 for lab, _ in docs if lab == "tail")
            late_decisions += sum(
                1
                for (lab, doc), v in zip(docs, verdicts, strict=True)
                if lab == "tail" and (v["decision"] == "promote" or _after_bake(v, len(doc["looks"])))
            )
        sets["tails needing more than the step's looks"] = round(100 * late_decisions / max(1, tail_docs), 1)
        sets["seconds"] = round(time.monotonic() - started, 1)
        results["sets"][name] = sets
    results["goals"] = goals(results["sets"]["skyline"])
    return results


def _after_bake(verdict: dict[str, Any], looks: int) -> bool:
    """Decided only after the step's looks: a hold the bake did not reach, or no decision."""
    at = verdict.get("decided_at_look")
    if verdict["decision"] == "hold":
        return str(verdict.get("reason", "")).startswith("the bake is not over")
    return at is None or at >= looks


def _held(table: dict[str, dict[str, float]]) -> float:
    good = table.get("good", {})
    return good.get("held", good.get("hold", 0.0))


def _within(before: float) -> Callable[[float], bool]:
    return lambda v: v <= before + 2


def goals(sky: dict[str, Any]) -> list[dict[str, Any]]:
    whole, step, one = sky["whole rollouts"], sky["one step, ten looks"], sky["one look"]

    def rate(table: dict[str, dict[str, float]], label: str, outcome: str) -> float:
        return table.get(label, {}).get(outcome, 0.0)

    rows: list[tuple[str, float, Callable[[float], bool]]] = [
        ("whole: good become active >= 95 %", rate(whole, "good", "active"), lambda v: v >= 95),
        ("whole: bad become active = 0", rate(whole, "bad", "active"), lambda v: v == 0),
        ("whole: thin become active = 0", rate(whole, "thin", "active"), lambda v: v == 0),
        ("whole: late become active <= 1 %", rate(whole, "late", "active"), lambda v: v <= 1),
        ("whole: good rolled back <= 1 %", rate(whole, "good", "rolled back"), lambda v: v <= 1),
        ("step: bad promoted = 0", rate(step, "bad", "promote"), lambda v: v == 0),
        ("step: thin promoted = 0", rate(step, "thin", "promote"), lambda v: v == 0),
        ("step: late promoted <= 1 %", rate(step, "late", "promote"), lambda v: v <= 1),
        ("step: good rolled back <= 1 %", rate(step, "good", "rollback"), lambda v: v <= 1),
        ("step: good held <= 25 %", rate(step, "good", "hold"), lambda v: v <= 25),
        ("look: bad promoted = 0", rate(one, "bad", "promote"), lambda v: v == 0),
        ("look: thin promoted = 0", rate(one, "thin", "promote"), lambda v: v == 0),
        ("look: good rolled back <= 1 %", rate(one, "good", "rollback"), lambda v: v <= 1),
        ("look: good held <= 45 %", rate(one, "good", "hold"), lambda v: v <= 45),
    ]
    tail_sets = [k for k in sky if k.startswith("tails: step at")]
    ind = sky[INDEPENDENT]
    held_before = {name: (before, _held(sky[name])) for name, before in GOOD_HELD_BEFORE.items()}
    last = next(k for k in tail_sets if k.endswith("(last)"))
    rows += [
        ("tails: promoted at the last step = 0", rate(sky[last], "tail", "promote"), lambda v: v == 0),
        (
            "tails: promoted at any step <= 1 %",
            max(rate(sky[k], "tail", "promote") for k in tail_sets),
            lambda v: v <= 1,
        ),
        (
            "tails: active after a whole rollout = 0",
            rate(ind, "tail", "active"),
            lambda v: v == 0,
        ),
        (
            "tails: not held or rolled back within the step's own looks = 0",
            float(sky["tails needing more than the step's looks"]),
            lambda v: v == 0,
        ),
        ("independent: bad become active = 0", rate(ind, "bad", "active"), lambda v: v == 0),
        ("independent: thin become active = 0", rate(ind, "thin", "active"), lambda v: v == 0),
        (
            "independent: good rolled back = 0",
            rate(ind, "good", "rolled back"),
            lambda v: v == 0,
        ),
    ]
    for set_name, (before, held) in held_before.items():
        rows.append(
            (f"{set_name}: good held <= {before:g} + 2 % (before tail checks)", held, _within(before))
        )
    return [{"goal": g, "value": v, "met": bool(ok(v))} for g, v, ok in rows]


WHOLE = ("active", "rolled back", "held")
STEP = ("promote", "rollback", "hold")


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Judgement on a labelled simulation ({results['per_label']} canaries per label, "
        f"seed {results['seed']})",
        "",
        "| set | label | outcome | skyline | flagger-style | kayenta-style |",
        "|---|---|---|---|---|---|",
    ]
    sets = results["sets"]
    outcomes = {
        name: ("active", "rolled back", "held")
        if name.startswith("whole")
        else ("promote", "rollback", "hold")
        for name, value in sets["skyline"].items()
        if isinstance(value, dict)
    }
    for set_name, kinds in outcomes.items():
        for label in ALL_LABELS:
            if label not in sets["skyline"][set_name]:
                continue
            for outcome in kinds:
                cells = [f"{sets[j][set_name].get(label, {}).get(outcome, 0.0):g} %" for j in JUDGES]
                lines.append(f"| {set_name} | {label} | {outcome} | {' | '.join(cells)} |")
    lines += ["", "| goal (skyline) | value | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['value']:g} % | {'yes' if g['met'] else 'NO'} |" for g in results["goals"]]
    return "\n".join(lines)


def main() -> dict[str, Any]:
    results = run_sets()
    print(table(results), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
