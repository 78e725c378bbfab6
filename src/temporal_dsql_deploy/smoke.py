"""Smoke test of a running stack: the guide's sample completes, and visibility and the UI both find it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from temporal_dsql_deploy.components import temporal_cli
from temporal_dsql_deploy.config import Settings
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program, run_tool

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


def _find_in_visibility(settings: Settings, cli: Path, workflow_id: str) -> None:
    """List through the temporal CLI (out of process: the SDK's teardown can abort short-lived processes)."""
    query = f"WorkflowType = 'GreetingWorkflow' AND ExecutionStatus = 'Completed' AND WorkflowId = '{workflow_id}'"
    argv = [str(cli), "workflow", "list", "--query", query, "--address", settings.frontend_address,
            "--namespace", settings.temporal_namespace, "-o", "json"]  # fmt: skip
    deadline = time.monotonic() + VISIBILITY_WAIT_S
    while time.monotonic() < deadline:
        listed = json.loads(run_tool(argv, what="temporal workflow list", fix="see `invoke status`", timeout_s=30))
        if [entry["execution"]["workflowId"] for entry in listed] == [workflow_id]:
            return
        time.sleep(1)
    raise DeployError(
        f"visibility did not return completed workflow {workflow_id} within {VISIBILITY_WAIT_S}s (query: {query})",
        "check `invoke logs es-setup` and `invoke logs temporal-history`; `invoke es.setup` verifies the index",
    )


def _find_in_ui(settings: Settings, workflow_id: str) -> None:
    url = f"http://127.0.0.1:{settings.temporal_ui_port}/api/v1/namespaces/{settings.temporal_namespace}/workflows"
    deadline = time.monotonic() + VISIBILITY_WAIT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, params={"query": f"WorkflowId = '{workflow_id}'"}, timeout=10)
            last = f"HTTP {response.status_code}"
            if response.status_code == 200 and workflow_id in response.text:
                return
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(1)
    raise DeployError(f"the UI API at {url} did not list {workflow_id} ({last})", "check `invoke logs temporal-ui`")


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
