"""The fault pass shares the integration tests' stack fixture; its table is printed at the end of the run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FaultResult
from tests.integration.conftest import local_stack, settings  # noqa: F401  (fixtures)

RESULTS: list[FaultResult] = []


def fault_table(results: list[FaultResult]) -> list[str]:
    lines = [f"{'fault':<26} {'started':>7} {'completed':>9} {'lost':>4} {'duplicated':>10} {'wrong':>5} "
             f"{'fault s':>7} {'recovery s':>10} {'visibility s':>12}  notes"]  # fmt: skip
    for r in results:
        visibility = "not within 60" if r.visibility_s is None else f"{r.visibility_s:.1f}"
        lines.append(f"{r.fault:<26} {r.started:>7} {r.completed:>9} {r.lost:>4} {r.duplicated:>10} "
                     f"{r.wrong_results:>5} {r.fault_s:>7.1f} {r.recovery_s:>10.1f} {visibility:>12}  "
                     f"{'; '.join(r.notes + r.problems)}")  # fmt: skip
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("faults under load")
    for line in fault_table(RESULTS):
        terminalreporter.write_line(line)
    out = Path(".stack") / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in RESULTS], indent=2) + "\n", encoding="utf-8")
    markdown = out.with_suffix(".md")
    markdown.write_text("\n".join(_markdown_row(r) for r in RESULTS) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written to {out} and {markdown} (the README's rows)")


def _markdown_row(r: FaultResult) -> str:
    visibility = "not within 60 s" if r.visibility_s is None else f"{r.visibility_s:.1f} s"
    return (
        f"| {r.fault} | {r.started} | {r.completed} | {r.lost} | {r.duplicated} | {r.wrong_results} | "
        f"{r.fault_s:.1f} s | {r.recovery_s:.1f} s | {visibility} | {'; '.join(r.notes + r.problems)} |"
    )
