"""`make mutants`: the mutation score of the pure rules, printed and kept in docs/mutation.md.

Run after `mutmut run` (configured under [tool.mutmut] in pyproject.toml): reads
the verdicts mutmut left in mutants/, prints the score per file and every
survivor with its diff, and rewrites docs/mutation.md. The section
"Equivalent mutants" of that file is kept across runs: each line names a
surviving mutant no test can kill and says why in one line; those are left out
of the adjusted score. A listed mutant that no longer survives is dropped.

    python -m tests.support.mutation [--check 90]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mutation.md"
EQUIVALENT_HEADING = "## Equivalent mutants"
EQUIVALENT_LINE = re.compile(r"^- `(?P<name>[^`]+)`: (?P<why>.+)$")

KILLED = {1, 3}
TIMEOUT = {36, 24, -24, 152, 255}
SURVIVED = {0}
NO_TESTS = {33, 5}


def verdict(exit_code: int | None) -> str:
    if exit_code in KILLED:
        return "killed"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code in SURVIVED:
        return "survived"
    if exit_code in NO_TESTS:
        return "no tests"
    return "not checked" if exit_code is None else f"other ({exit_code})"


def load_verdicts(mutants: Path) -> dict[str, dict[str, str]]:
    """{source file: {mutant name: verdict}} from mutmut's .meta files."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = str(meta.relative_to(mutants)).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out[source] = {name: verdict(code) for name, code in codes.items()}
    return out


def load_equivalents(doc: Path) -> dict[str, str]:
    if not doc.exists():
        return {}
    text = doc.read_text()
    if EQUIVALENT_HEADING not in text:
        return {}
    section = text.split(EQUIVALENT_HEADING, 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for line in section.splitlines():
        match = EQUIVALENT_LINE.match(line.strip())
        if match:
            found[match["name"]] = match["why"]
    return found


def diff_of(name: str) -> str:
    """The mutant's diff as mutmut shows it (its +/- lines only)."""
    try:
        from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant

        data = find_mutant(name)
        diff = get_diff_for_mutant(name, path=data.path)
    except Exception as exc:  # noqa: BLE001 - a report without a diff is still a report
        return f"(no diff: {exc})"
    lines = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join(lines)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def report(verdicts: dict[str, dict[str, str]], equivalents: dict[str, str]) -> tuple[str, float]:
    rows = [
        "| file | mutants | killed | survived | no tests | equivalent | score | adjusted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    totals: Counter[str] = Counter()
    survivors: list[str] = []
    for source, by_name in verdicts.items():
        counts = Counter(by_name.values())
        detected = counts["killed"] + counts["timeout"]
        alive = [n for n, v in by_name.items() if v in {"survived", "no tests"}]
        equivalent = sum(1 for n in alive if n in equivalents)
        survivors += [n for n in alive if n not in equivalents]
        total = len(by_name)
        rows.append(
            f"| {source} | {total} | {detected} | {counts['survived']} | {counts['no tests']} | {equivalent} "
            f"| {percent(detected, total)} | {percent(detected, total - equivalent)} |"
        )
        totals.update(total=total, detected=detected, survived=counts["survived"])
        totals.update(no_tests=counts["no tests"], equivalent=equivalent)
    adjusted = 100 * totals["detected"] / max(1, totals["total"] - totals["equivalent"])
    rows.append(
        f"| **all** | {totals['total']} | {totals['detected']} | {totals['survived']} | {totals['no_tests']} "
        f"| {totals['equivalent']} | {percent(totals['detected'], totals['total'])} | {adjusted:.1f} % |"
    )
    table = "\n".join(rows)
    listed = [f"### `{name}`\n\n```diff\n{diff_of(name)}\n```" for name in survivors]
    kept = [
        f"- `{name}`: {why}"
        for name, why in sorted(equivalents.items())
        if any(verdicts[s].get(name) in {"survived", "no tests"} for s in verdicts)
    ]
    doc = "\n\n".join(
        [
            "# Mutation score of the pure rules",
            "Written by `make mutants` (mutmut over the files under `[tool.mutmut]` in pyproject.toml, "
            "against the fast layer `tests/skyline`); do not edit except the list of equivalent mutants. "
            "Score: killed (or timed out) / mutants; adjusted: the same without the equivalent mutants "
            f"listed below. Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
            "Scope: the files under `only_mutate`: the judge and the pure rules of the domain "
            "(`skyline/`); the rules the manifest activities follow (`activities/manifest_rules.py`: "
            "where a rollout starts, which revision a fleet's restore reads and on which condition it "
            "writes, where a retried write looks for itself) and the last-known-good search "
            "(`skyline/manifest_diff.py`); the API's authorization (`api/access.py`, the route table "
            "and its lookup, and `api/admission.py`, every decision the gate and the `Caller` dependency "
            "take). The activities and the API do their I/O around these functions and are exercised "
            "through the stack's tests, as is the rest of `skyline/` (models, settings, observability, "
            "outbound requests, the legacy analysis); they are left out so that a run takes minutes "
            "(about 15 to 40 on 2 shared cores, ~3,100 mutants).",
            table,
            "## Survivors to kill",
            "\n\n".join(listed) if listed else "None.",
            EQUIVALENT_HEADING,
            "Mutants no test can tell from the original, each with one line of why "
            "(`- `name`: why`). Kept by `make mutants`.",
            "\n".join(kept) if kept else "None.",
        ]
    )
    return doc + "\n", adjusted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--check", type=float, default=None, help="fail below this adjusted score (%)")
    args = parser.parse_args(argv)
    verdicts = load_verdicts(args.mutants)
    if not verdicts:
        print(f"no mutmut results under {args.mutants}: run `mutmut run` first", file=sys.stderr)
        return 2
    doc, adjusted = report(verdicts, load_equivalents(DOC))
    DOC.write_text(doc)
    print(doc.split("## Survivors to kill")[0].split("\n\n", 2)[2])
    section = doc.split("## Survivors to kill")[1].split(EQUIVALENT_HEADING)[0]
    survivors = re.findall(r"### `([^`]+)`\n\n```diff\n(.*?)\n```", section, re.S)
    print(f"Survivors not listed as equivalent ({len(survivors)}; diffs in {DOC.relative_to(ROOT)}):")
    for name, diff in survivors:
        changed = " / ".join(line[1:].strip() for line in diff.splitlines() if line.startswith("+"))
        print(f"  {name}: {changed[:140]}")
    print(f"\nadjusted mutation score: {adjusted:.1f} % (written to {DOC.relative_to(ROOT)})")
    if args.check is not None and adjusted < args.check:
        print(f"below {args.check:g} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
