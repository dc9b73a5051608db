"""How API answers look on a terminal (rich), and the one JSON path for `--output json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from cli.client import Session
from cli.errors import ApiRefused, CliFailure

# Consoles are built per call: typer's test runner swaps sys.stdout between invocations.


def out() -> Console:
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(session: Session, data: Any, human: Callable[[Any], RenderableType]) -> None:
    """The API's JSON as is for machines; a rendering of it for people."""
    if session.json:
        print_json(data)
    else:
        out().print(human(data))


def report_failure(session: Session, failure: CliFailure) -> None:
    if session.json and failure.body is not None:
        print_json(failure.body)
    console = err()
    if isinstance(failure, ApiRefused):
        line = Text.assemble(("error", "bold red"), f" ({failure.status} {failure.error_code}): ")
        line.append(failure.message)
        console.print(line)
        if failure.field:
            console.print(Text.assemble("field: ", (failure.field, "bold")))
    else:
        console.print(Text.assemble(("error", "bold red"), ": ", failure.message))


def when(value: str | None, short: bool = False) -> str:
    """UTC as the API sends it; `short` (month-day time) keeps table columns narrow."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def pairs(rows: list[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(
            key, value if isinstance(value, Text) else Text(str(value if value is not None else "-"))
        )
    return grid


STATE_STYLE = {
    "succeeded": "bold green",
    "rolled_back": "bold red",
    "failed": "bold red",
    "paused": "bold yellow",
    "progressing": "bold cyan",
    "publishing": "cyan",
    "promoting": "bold cyan",
}
VERDICT_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "magenta"}


def state_text(state: str | None) -> Text:
    return Text(state or "-", style=STATE_STYLE.get(state or "", ""))


# --- rollouts -----------------------------------------------------------------------------------


def rollout_created(data: dict[str, Any]) -> RenderableType:
    return Group(
        pairs([("rollout", data["id"]), ("run", data["run_id"]), ("state", state_text(data["state"]))]),
        Text(f"follow it with: skyline rollout watch {data['id']}", style="dim"),
    )


def rollouts_table(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("no rollouts match", style="dim")
    table = Table(
        Column("rollout", no_wrap=True), "version", "state", "weight", Column("started", no_wrap=True)
    )
    for row in rows:
        state = state_text(row.get("state"))
        # a workflow terminated or timed out by Temporal never reached a final rollout state
        if row.get("workflow_status") not in (None, "running", "completed"):
            state.append(f" ({row['workflow_status']})", style="red")
        table.add_row(
            row["id"],
            row.get("version") or "-",
            state,
            "-" if row.get("weight") is None else f"{row['weight']:g}%",
            when(row.get("started_at"), short=True),
        )
    return table


def steps_text(status: dict[str, Any]) -> Text:
    """5 ▸ 25 ▸ [50] ▸ 100: done steps green, the current one bracketed."""
    text = Text()
    current = int(status.get("step", -1))
    for i, weight in enumerate(status.get("steps") or []):
        if i:
            text.append(" ▸ ", style="dim")
        label = f"{weight:g}"
        if i == current:
            text.append(f"[{label}]", style="bold")
        elif i < current:
            text.append(label, style="green")
        else:
            text.append(label, style="dim")
    return text


def weight_bar(status: dict[str, Any]) -> Table:
    steps = status.get("steps") or []
    step = int(status.get("step", -1))
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text("weight", style="bold"),
        ProgressBar(total=100.0, completed=float(status.get("weight") or 0.0), width=40),
        Text(f"{float(status.get('weight') or 0):g}%"),
        Text(f"step {step + 1}/{len(steps)}" if steps else "no steps"),
    )
    return grid


def analysis_table(analysis: dict[str, Any] | None) -> RenderableType:
    if not analysis:
        return Text("no analysis yet", style="dim")
    verdict = analysis.get("verdict", "-")
    title = Text.assemble(
        "analysis at ",
        f"{float(analysis.get('weight') or 0):g}% ",
        f"({when(analysis.get('at'))}): ",
        (verdict, VERDICT_STYLE.get(verdict, "")),
    )
    if analysis.get("health_score") is not None:
        title.append(f"  health {analysis['health_score']:.1f}")
    table = Table("check", "value", "bound", "samples", "verdict", title=title, title_justify="left")
    for check in analysis.get("checks") or []:
        bound = (
            "-" if check.get("bound") is None else f"{check.get('comparison', '<=')} {number(check['bound'])}"
        )
        table.add_row(
            check["name"],
            number(check.get("value")),
            bound,
            number(check.get("samples")),
            Text(check["verdict"], style=VERDICT_STYLE.get(check["verdict"], "")),
        )
    lines: list[RenderableType] = [table]
    if analysis.get("health_score") is not None:
        parts = analysis.get("health_components") or {}
        made_of = ", ".join(f"{name} {value:.0f}" for name, value in parts.items()) or "no components"
        lines.append(Text(f"health score {analysis['health_score']:.1f}/100: {made_of}"))
    reason = analysis.get("reason")
    if reason:
        lines.append(Text(reason, style="dim"))
    return Group(*lines) if len(lines) > 1 else table


def status_view(status: dict[str, Any]) -> RenderableType:
    rows: list[tuple[str, Any]] = [
        ("rollout", status["rollout_id"]),
        ("unit", f"{status['unit_id']}@{status['version']} → {status['apartment']}/{status['building']}"),
        ("state", state_text(status["state"])),
        ("strategy", status.get("strategy", "-")),
        ("steps", steps_text(status)),
        ("baseline", status.get("baseline_unit")),
        ("revisions", ", ".join(str(r) for r in status.get("revisions") or []) or "-"),
        ("started", when(status.get("started_at"))),
        ("updated", when(status.get("updated_at"))),
    ]
    for key in ("paused_reason", "waiting_for", "reason"):
        if status.get(key):
            rows.append((key.replace("_", " "), status[key]))
    if status.get("promotion_blocked"):
        rows.append(("promotion blocked", blocked_text(status["promotion_blocked"])))
    parts: list[RenderableType] = [
        pairs(rows),
        weight_bar(status),
        analysis_table(status.get("last_analysis")),
    ]
    if status.get("ab_report"):
        parts.append(ab_report_view(status["ab_report"]))
    return Group(*parts)


def blocked_text(blocked: dict[str, Any]) -> Text:
    """A freeze or a closed release window holding a scheduled promotion back."""
    kind = "release freeze" if blocked.get("kind") == "freeze" else "release window closed"
    return Text.assemble((kind, "bold yellow"), f": {blocked.get('reason', '')}")


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.2g} pts"


def _rate(rate: float | None, n: int | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.3g}% of {int(n or 0):,}"


def ab_report_view(report: dict[str, Any]) -> RenderableType:
    """The A/B test: the winner (or none), each check's effect B - A with its interval, what is missing."""
    winner = report.get("winner")
    title = Text.assemble(
        ("A/B test: ", "bold"),
        (f"{winner} is better" if winner else "no winner", "green" if winner else "yellow"),
        f" ({report.get('outcome', '')})",
    )
    a, b = report.get("a") or {}, report.get("b") or {}
    table = Table("check", "B", "A", "B - A", "interval", "verdict", title=title, title_justify="left")
    for c in report.get("comparisons") or []:
        interval = (
            "-"
            if c.get("lower") is None
            else f"[{_points(c['lower'])}, {_points(c['upper'])}] ({100 * c['confidence']:.3g}%)"
        )
        table.add_row(
            Text(f"{c['name']}\n{c['measure']}", overflow="fold"),
            _rate(c.get("b_rate"), c.get("b_n")),
            _rate(c.get("a_rate"), c.get("a_n")),
            _points(c.get("difference")),
            interval,
            Text(c["verdict"], style="green" if c.get("better") else "yellow"),
        )
    lines = [
        Text(
            f"B = {b.get('unit')} at {float(report.get('split') or 0):g}%, A = {a.get('unit') or 'none'}; "
            f"{report.get('looks', 0)} looks over {float(report.get('observed_seconds') or 0):g}s; "
            f"{report.get('summary', '')}"
        )
    ]
    if a.get("p99_seconds") is not None or b.get("p99_seconds") is not None:
        lines.append(
            Text(
                f"p99 load time (informational): B {number(b.get('p99_seconds'))}s, "
                f"A {number(a.get('p99_seconds'))}s"
            )
        )
    for missing in report.get("missing") or []:
        lines.append(Text(f"missing: {missing}", style="yellow"))
    return Group(table, *lines)


def audit_table(entries: list[dict[str, Any]]) -> RenderableType:
    table = Table(
        Column("at (UTC)", no_wrap=True),
        "action",
        "actor",
        "state",
        Column("rev", justify="right"),
        Column("reason", ratio=1, overflow="fold"),
    )
    for entry in entries:
        state = state_text(entry["state"])
        state.append(f" {entry['weight']:g}%")
        table.add_row(
            when(entry["at"], short=True),
            entry["action"],
            entry["actor"],
            state,
            "-" if entry.get("revision") is None else str(entry["revision"]),
            entry.get("reason") or "",
        )
    return table


VITAL_FORMATS = {"lcp": "{:.2f} s", "inp": "{:.0f} ms", "cls": "{:.3f}"}


def _vital_cell(figure: dict[str, Any] | None, name: str) -> str:
    if not figure or figure.get("p75") is None:
        return "-"
    value = figure["p75"] * 1000 if name == "inp" else figure["p75"]
    return f"{VITAL_FORMATS[name].format(value)} ({figure['pages']:.0f})"


def vitals_table(data: dict[str, Any]) -> RenderableType:
    """p75 of each vital per unit version, the pages behind it in brackets."""
    title = f"{data['apartment']}/{data['building']}, last {data['window_seconds']:g} s"
    if not data["versions"]:
        return Text(f"no web vitals reported for {title}", style="dim")
    table = Table(
        Column("unit", no_wrap=True),
        "role",
        Column("LCP p75", justify="right"),
        Column("INP p75", justify="right"),
        Column("CLS p75", justify="right"),
        title=title,
    )
    for row in data["versions"]:
        table.add_row(
            f"{row['unit']}@{row['version']}",
            row["role"],
            *(_vital_cell(row["vitals"].get(name), name) for name in ("lcp", "inp", "cls")),
        )
    return table


AUDIT_COLUMNS = ("at (UTC)", "action", "actor", "state", "rev", "reason")


def _cell(value: str) -> str:
    return " ".join(value.split())  # a tab or line break in a reason would split its record


def audit_lines(entries: list[dict[str, Any]]) -> str:
    """The audit trail off a terminal: a header, then one tab-separated record per line.

    A table folded to a pipe's 80 columns breaks records across lines that grep and
    cut cannot put back together.
    """
    rows = ["\t".join(AUDIT_COLUMNS)]
    for entry in entries:
        rows.append(
            "\t".join(
                _cell(cell)
                for cell in (
                    when(entry["at"]),
                    entry["action"],
                    entry["actor"],
                    f"{entry['state']} {entry['weight']:g}%",
                    "-" if entry.get("revision") is None else str(entry["revision"]),
                    entry.get("reason") or "",
                )
            )
        )
    return "\n".join(rows) + "\n"


def history_line(entry: dict[str, Any], show_weight: bool = True) -> Text:
    line = Text.assemble(
        (when(entry["at"]), "dim"),
        " ",
        (entry["action"], "bold"),
        f" by {entry['actor']} [",
        state_text(entry["state"]),
        f" {entry['weight']:g}%]" if show_weight else "]",
    )
    if entry.get("reason"):
        line.append(f": {entry['reason']}")
    return line


def watch_view(status: dict[str, Any]) -> RenderableType:
    head = Text.assemble(
        (status["rollout_id"], "bold"),
        f"  {status['unit_id']}@{status['version']}  ",
        state_text(status["state"]),
    )
    parts: list[RenderableType] = [head, weight_bar(status), steps_text(status)]
    for key in ("paused_reason", "waiting_for"):
        if status.get(key):
            parts.append(Text(f"{key.replace('_', ' ')}: {status[key]}", style="yellow"))
    if status.get("promotion_blocked"):
        parts.append(Text(f"promotion blocked: {blocked_text(status['promotion_blocked'])}", style="yellow"))
    parts.append(analysis_table(status.get("last_analysis")))
    if status.get("ab_report"):
        parts.append(ab_report_view(status["ab_report"]))
    return Group(*parts)


# --- fleets ---------------------------------------------------------------------------------------


def fleet_created(data: dict[str, Any]) -> RenderableType:
    return Group(
        pairs([("fleet", data["id"]), ("run", data["run_id"])]),
        Text(f"follow it with: skyline fleet watch {data['id']}", style="dim"),
    )


def fleet_apartments(status: dict[str, Any]) -> Table:
    table = Table(
        Column("apartment", no_wrap=True),
        Column("batch", justify="right"),
        "state",
        Column("weight", justify="right"),
        Column("rollout", no_wrap=True),
        Column("reason", ratio=1, overflow="fold"),
    )
    current = int(status.get("batch", -1))
    for name, entry in (status.get("apartments") or {}).items():
        batch = Text(str(entry["batch"] + 1), style="bold" if entry["batch"] == current else "")
        weight = entry.get("weight")
        if entry["state"] in ("rolled_back", "skipped", "pending") or weight is None:
            # a restored apartment serves the old unit: never show the weight it had reached
            shown = "0%" if entry["state"] == "rolled_back" else "-"
        else:
            shown = f"{weight:g}%"
        table.add_row(
            name,
            batch,
            state_text(entry["state"]),
            shown,
            entry["rollout_id"],
            entry.get("reason") or "",
        )
    return table


def fleet_view(status: dict[str, Any]) -> RenderableType:
    batches = status.get("batches") or []
    rows: list[tuple[str, Any]] = [
        ("fleet", status["fleet_id"]),
        ("unit", f"{status['unit_id']}@{status['version']} → {status['building']} of each apartment"),
        ("state", state_text(status["state"])),
        ("batch", f"{int(status.get('batch', -1)) + 1}/{len(batches)}" if batches else "-"),
        ("started", when(status.get("started_at"))),
        ("updated", when(status.get("updated_at"))),
    ]
    for key in ("paused_reason", "reason"):
        if status.get(key):
            rows.append((key.replace("_", " "), status[key]))
    return Group(pairs(rows), fleet_apartments(status))


# --- apartments -----------------------------------------------------------------------------------


def manifest_view(manifest: dict[str, Any]) -> RenderableType:
    change = manifest.get("change") or {}
    head = pairs(
        [
            ("revision", manifest.get("version")),
            ("written", manifest.get("timestamp")),
            ("by", change.get("actor")),
            ("why", change.get("reason")),
        ]
    )
    table = Table("apartment", "building", "category", "active unit", "units (status, weight)")
    for apartment_id, apartment in (manifest.get("apartments") or {}).items():
        for building_id, building in apartment.get("buildings", {}).items():
            units = []
            for unit_id, unit in building.get("units", {}).items():
                rollout = unit.get("rollout") or {}
                share = f" {rollout['percentage']:g}%" if "percentage" in rollout else ""
                units.append(f"{unit_id} ({unit.get('status', '-')}{share})")
            table.add_row(
                apartment_id,
                building_id,
                building.get("category", "-"),
                building.get("active_unit") or "-",
                Text("\n".join(units) or "-", overflow="fold"),
            )
    return Group(head, table)


def revisions_table(listing: dict[str, Any], details: dict[int, dict[str, Any]]) -> RenderableType:
    table = Table("revision", "written", "actor", "reason", title=f"{listing['apartment']}: revisions")
    for revision in sorted(listing["revisions"], reverse=True):
        manifest = details.get(revision) or {}
        change = manifest.get("change") or {}
        mark = " (current)" if revision == listing["current"] else ""
        table.add_row(
            f"{revision}{mark}",
            manifest.get("timestamp", "-"),
            change.get("actor", "-"),
            Text(change.get("reason", "-"), overflow="fold"),
        )
    return table


FIRST_KEYS = ("id", "version", "rollout", "status", "name")


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        # what a person looks for first: a unit's id, version and rollout weight, not its checksum
        value = {k: value[k] for k in FIRST_KEYS if k in value} | dict(sorted(value.items()))
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def diff_table(data: dict[str, Any]) -> RenderableType:
    title = f"{data['apartment']}: revision {data['from_revision']} → {data['to_revision']}"
    if not data["changes"]:
        return Text(f"{title}: no changes", style="dim")
    styles = {"added": "green", "removed": "red", "changed": "yellow"}
    table = Table("op", "path", "old", "new", title=title)
    for change in data["changes"]:
        summary = change.get("summary")
        old, new = _short(change.get("old")), _short(change.get("new"))
        if summary:  # an added or removed unit: its id, version and weight, the full JSON is in -o json
            old, new = (summary, "-") if change["op"] == "removed" else ("-", summary)
        table.add_row(
            Text(change["op"], style=styles.get(change["op"], "")),
            Text(change["path"], overflow="fold"),
            Text(old, overflow="fold"),
            Text(new, overflow="fold"),
        )
    return table


def undo_view(data: dict[str, Any]) -> RenderableType:
    return Text(
        f"{data['apartment']}: revision {data['revision']} restores revision {data['restored_from']}",
        style="green",
    )


def gc_view(data: dict[str, Any]) -> RenderableType:
    """`manifest gc`: each file past retention, the revision that named it last, and when it stopped."""
    days = data["retention_seconds"] / 86400
    verb = "would delete" if data["dry_run"] else "deleted"
    count = len(data["collect"]) if data["dry_run"] else data["deleted"]
    summary = Text(
        f"{verb} {count} files ({data['bytes']} bytes) past the {days:g}-day retention; "
        f"kept {data['retained']} a served or retained revision names, "
        f"{data['unnamed']} no revision names; {data['revisions']} revisions read",
        style="yellow" if data["dry_run"] else "green",
    )
    if not data["collect"]:
        return summary
    table = Table("file", "named last by", "stopped being served", "retained until", "bytes")
    for c in data["collect"]:
        table.add_row(
            c["key"],
            f"{c['apartment']} revision {c['revision']}",
            c["stopped_at"],
            c["retained_until"],
            str(c["size"]),
        )
    return Group(table, summary)


def resolve_table(data: dict[str, Any]) -> RenderableType:
    table = Table("building", "unit", "bucket", "why")
    for building, assignment in data.items():
        unit = assignment.get("unit") or {}
        why = assignment["reason"]
        if assignment.get("excluded_by"):
            why += f" (in the canary's bucket, excluded by {assignment['excluded_by']})"
        table.add_row(building, unit.get("id", "-"), str(assignment.get("bucket", "-")), why)
    return table


# --- schedules and tokens ---------------------------------------------------------------------------


def schedules_table(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("no schedules", style="dim")
    # the id names the rollout it promotes: promote.<rollout id>
    table = Table(
        Column("schedule", no_wrap=True),
        "cron",
        "zone",
        "paused",
        Column("next run (UTC)", no_wrap=True),
        Column("note", ratio=1),
    )
    for row in rows:
        table.add_row(
            row["id"],
            ", ".join(row.get("cron") or []),
            row.get("timezone") or "-",
            "yes" if row["paused"] else "no",
            when((row.get("next_runs") or [None])[0], short=True),
            row.get("note") or "",
        )
    return table


def schedule_view(row: dict[str, Any]) -> RenderableType:
    return pairs(
        [
            ("schedule", row["id"]),
            ("rollout", row.get("rollout_id")),
            ("cron", ", ".join(row.get("cron") or [])),
            ("time zone", row.get("timezone")),
            ("paused", "yes" if row["paused"] else "no"),
            ("note", row.get("note")),
            ("next runs (UTC)", "\n".join(when(t) for t in row.get("next_runs") or []) or "-"),
            ("recent runs", "\n".join(row.get("recent_runs") or []) or "-"),
            (
                "promotion blocked",
                blocked_text(row["promotion_blocked"]) if row.get("promotion_blocked") else "no",
            ),
        ]
    )


def tokens_table(rows: list[dict[str, Any]]) -> RenderableType:
    table = Table("name", "role", "source")
    for row in rows:
        table.add_row(row["name"], row["role"], row["source"])
    return table


def minted_view(row: dict[str, Any]) -> RenderableType:
    return Group(
        pairs([("name", row["name"]), ("role", row["role"]), ("token", row["token"])]),
        Text("the token is shown once; only its hash is kept", style="dim"),
    )


def override_view(row: dict[str, Any]) -> RenderableType:
    expires = datetime.fromtimestamp(row["expires_at"], UTC).isoformat(timespec="seconds")
    hint = (
        "open it in the browser that should get this version; `?skyline_override=off` forgets it"
        if row.get("link")
        else "no --shell: add this query to a shell page's URL (or set SKYLINE_SHELL_URL)"
    )
    return Group(
        pairs(
            [
                ("override", f"{row['apartment']}/{row['building']} -> {row['unit']}@{row['version']}"),
                ("expires", expires),
                ("issuer", row["issuer"]),
            ]
        ),
        Text(hint, style="dim"),
    )
