"""Smoke test of a running stack: the guide's sample completes, and visibility and the UI both find it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program, run_tool
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import temporal_cli

SAMPLE_TIMEOUT_S = 120
VISIBILITY_WAIT_S = 30


@dataclass
class SmokeReport:
    workflow_id: str = ""
    result: str = ""
    steps: list[tuple[str, float]] = field(default_factory=list)


def _run_sample(settings: Settings, project_root: Path, name: str) -> dict[str, str]:
    sample = project_root / "samples" / "hello_activity.py"
    argv = [sys.executable, str(sample), "--address", settings.frontend_address,
            "--namespace", settings.temporal_namespace, "--name", name]  # fmt: skip
    done = run_program(argv, what="the hello_activity sample", fix="see `invoke status`", timeout_s=SAMPLE_TIMEOUT_S)
    if done.returncode != 0:
        raise DeployError(f"hello_activity failed:\n{done.stderr.strip()[-1500:]}", "see `invoke status`")
    output: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return output


def _poll(check: Callable[[], bool]) -> bool:
    """Ask `check` every second until it answers True or VISIBILITY_WAIT_S have passed."""
    waiting = Retrying(
        stop=stop_after_delay(VISIBILITY_WAIT_S), wait=wait_fixed(1), retry=retry_if_result(lambda ok: not ok)
    )
    try:
        return bool(waiting(check))
    except RetryError:
        return False


def _find_in_visibility(settings: Settings, cli: Path, workflow_id: str) -> None:
    """List through the temporal CLI (out of process: the SDK's teardown can abort short-lived processes)."""
    query = f"WorkflowType = 'GreetingWorkflow' AND ExecutionStatus = 'Completed' AND WorkflowId = '{workflow_id}'"
    argv = [str(cli), "workflow", "list", "--query", query, "--address", settings.frontend_address,
            "--namespace", settings.temporal_namespace, "-o", "json"]  # fmt: skip

    def listed() -> bool:
        found = json.loads(run_tool(argv, what="temporal workflow list", fix="see `invoke status`", timeout_s=30))
        return [entry["execution"]["workflowId"] for entry in found] == [workflow_id]

    if not _poll(listed):
        raise DeployError(
            f"visibility did not return completed workflow {workflow_id} within {VISIBILITY_WAIT_S}s (query: {query})",
            "check `invoke logs es-setup` and `invoke logs temporal-history`; `invoke es.setup` verifies the index",
        )


def _find_in_ui(settings: Settings, workflow_id: str) -> None:
    url = f"http://127.0.0.1:{settings.temporal_ui_port}/api/v1/namespaces/{settings.temporal_namespace}/workflows"
    last = ["no answer"]

    def listed() -> bool:
        try:
            response = httpx.get(url, params={"query": f"WorkflowId = '{workflow_id}'"}, timeout=10)
        except httpx.HTTPError as exc:
            last[0] = str(exc)
            return False
        last[0] = f"HTTP {response.status_code}"
        return response.status_code == 200 and workflow_id in response.text

    if not _poll(listed):
        raise DeployError(
            f"the UI API at {url} did not list {workflow_id} ({last[0]})", "check `invoke logs temporal-ui`"
        )


def run_smoke(settings: Settings, project_root: Path) -> SmokeReport:
    report = SmokeReport()
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    sample = _run_sample(settings, project_root, name)
    report.workflow_id, report.result = sample["workflow_id"], sample["result"]
    if report.result != f"Hello, {name}!":
        raise DeployError(f"hello_activity returned {report.result!r}, expected 'Hello, {name}!'", "see the sample")
    report.steps.append(("sample workflow completed", time.monotonic() - started))
    _find_in_visibility(settings, temporal_cli(), report.workflow_id)
    report.steps.append(("found through visibility", time.monotonic() - started))
    _find_in_ui(settings, report.workflow_id)
    report.steps.append(("found through the UI API", time.monotonic() - started))
    return report
