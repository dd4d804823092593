"""Gate outcomes for CI systems: JUnit XML (one testcase per gate per level) and a Markdown table."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from perfprobe.gates.outcome import FAILED, INCONCLUSIVE, SKIPPED, Outcome


def junit_xml(outcomes: list[Outcome], suite_name: str, elapsed_s: float = 0.0) -> str:
    """The JUnit shape CI servers read: testsuites > testsuite > testcase (> failure | skipped)."""
    failures = sum(1 for o in outcomes if o.status in (FAILED, INCONCLUSIVE))
    skipped = sum(1 for o in outcomes if o.status == SKIPPED)
    counts = {"tests": str(len(outcomes)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ElementTree.Element("testsuites", {"name": "perfprobe gate", **counts, "time": f"{elapsed_s:.3f}"})
    suite = ElementTree.SubElement(root, "testsuite", {"name": suite_name, **counts, "time": f"{elapsed_s:.3f}"})
    for outcome in outcomes:
        name = outcome.gate + (f" @ {outcome.level}" if outcome.level else "")
        case = ElementTree.SubElement(
            suite, "testcase", {"classname": f"perfprobe.gate.{outcome.kind}", "name": name, "time": "0"}
        )
        if outcome.status in (FAILED, INCONCLUSIVE):  # an inconclusive gate is not a pass: CI shows it
            kind = outcome.kind if outcome.status == FAILED else f"{outcome.kind}-inconclusive"
            failure = ElementTree.SubElement(case, "failure", {"message": outcome.line(), "type": kind})
            failure.text = outcome.line()
        elif outcome.status == SKIPPED:
            ElementTree.SubElement(case, "skipped", {"message": outcome.detail})
        else:
            ElementTree.SubElement(case, "system-out").text = outcome.line()
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def markdown_table(outcomes: list[Outcome], title: str) -> str:
    failed = sum(1 for o in outcomes if o.status == FAILED)
    undecided = sum(1 for o in outcomes if o.status == INCONCLUSIVE)
    if failed:
        verdict = f"❌ {failed} of {len(outcomes)} checks failed"
    elif undecided:
        verdict = f"❔ {undecided} of {len(outcomes)} checks inconclusive (within noise of their limit), none failed"
    else:
        verdict = f"✅ all {len(outcomes)} checks passed"
    lines = [
        f"### {title}: {verdict}",
        "",
        "| result | gate | level | measured | wanted | detail |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        cells = [o.status, o.gate, o.level or "—", o.measured or "—", o.expected or "—", o.detail or ""]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n\n"


def append_step_summary(text: str, variable: str = "GITHUB_STEP_SUMMARY") -> Path | None:
    """Append to the file GitHub Actions names in $GITHUB_STEP_SUMMARY, when it is set."""
    target = os.environ.get(variable)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return path
