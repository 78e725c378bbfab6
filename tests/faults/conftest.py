"""The fault pass shares the integration tests' stack fixture; its table is printed at the end of the run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FaultPlan, FaultResult
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


def check_nothing_lost(result: FaultResult, plan: FaultPlan) -> None:
    """The pass's promise: enough load to mean something, every workflow completed once with its own result,
    visibility agreeing within 60 s, and the fault happened as meant."""
    assert result.started > plan.rate * plan.before_s, f"too few workflows started to mean anything: {result}"
    assert result.lost == 0, f"{result.lost} workflows never completed: {result}"
    assert result.duplicated == 0, f"{result.duplicated} workflow ids ran more than once: {result}"
    assert result.wrong_results == 0, f"{result.wrong_results} workflows returned another result: {result}"
    assert result.visibility_s is not None, f"visibility did not show every workflow completed in 60 s: {result}"
    assert not result.problems, f"the fault did not happen as meant: {result}"


def report_faults(terminalreporter: pytest.TerminalReporter, title: str, results: list[FaultResult], out: Path) -> None:
    """The table at the end of the run, and the results as JSON (`out`) and as the README's rows (`out`.md)."""
    if not results:
        return
    terminalreporter.section(title)
    for line in fault_table(results):
        terminalreporter.write_line(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    markdown = out.with_suffix(".md")
    markdown.write_text("\n".join(_markdown_row(r) for r in results) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written to {out} and {markdown} (the README's rows)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report_faults(terminalreporter, "faults under load", RESULTS, Path(".stack") / "faults.json")


def _markdown_row(r: FaultResult) -> str:
    visibility = "not within 60 s" if r.visibility_s is None else f"{r.visibility_s:.1f} s"
    return (
        f"| {r.fault} | {r.started} | {r.completed} | {r.lost} | {r.duplicated} | {r.wrong_results} | "
        f"{r.fault_s:.1f} s | {r.recovery_s:.1f} s | {visibility} | {'; '.join(r.notes + r.problems)} |"
    )
