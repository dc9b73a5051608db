"""The README and docs/ name only things that exist: files, workflows, make targets, links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import workflows.fleet
import workflows.pipeline
import workflows.promotion
import workflows.rollout
import workflows.undo

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WORKFLOWS = {
    name
    for module in (
        workflows.rollout,
        workflows.fleet,
        workflows.promotion,
        workflows.undo,
        workflows.pipeline,
    )
    for name in vars(module)
    if name.endswith("Workflow")
}
TOP = "skyline|adapters|activities|workflows|api|worker|cli|stack|loader|demo|bench|deploy|tests|docs"
PATH = re.compile(rf"`((?:{TOP})/(?:[a-z_]+/)*[A-Za-z0-9_.-]+\.(?:py|js|md|vcl|yml|json|toml))`")
LINK = re.compile(r"\]\(((?:docs/)?[a-z_-]+\.md)\)")
WORKFLOW = re.compile(r"\b([A-Z][A-Za-z]+Workflow)\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_files_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in PATH.findall(text) if not (ROOT / p).exists()})
    assert missing == [], f"{doc.name} names files that do not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = sorted({link for link in LINK.findall(text) if not (doc.parent / link).exists()})
    assert broken == [], f"{doc.name} links to missing documents"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_workflow_names_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    unknown = sorted(set(WORKFLOW.findall(text)) - WORKFLOWS - {"ManifestUndoWorkflow"})
    assert unknown == [], f"{doc.name} names workflows that do not exist"


def test_the_readme_stays_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 260, f"README.md has {lines} lines; depth belongs in docs/"
