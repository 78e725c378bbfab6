"""Temporal in two Regions of one peered DSQL cluster, in containers: the stand-in serves both Regions' endpoints,
the primary Region's hosts serve and a standby set waits at none; a Compose project and STACK_DIR of their own,
started once for the session and stopped after it with its volumes. The drill's table is printed at the end."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.region_drill import DrillResult
from temporal_dsql_deploy.runtime.docker_engine import engine_answers
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, compose_file
from temporal_dsql_deploy.settings.config import load_settings
from tests.conftest import PROJECT_ROOT
from tests.containers.conftest import project_containers
from tests.integration.conftest import require

pytestmark = pytest.mark.regions
RESULTS: list[DrillResult] = []
STANDBY = "us-west-2"
STACK_DIR = PROJECT_ROOT / ".stack-regions"


@pytest.fixture(scope="session")
def two_regions() -> Iterator[DockerRuntime]:
    can_run = engine_answers() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)
    require(can_run, "no Docker engine answers and this is not root on Debian (where the project runs its own)")
    configured = load_settings(PROJECT_ROOT)
    # The checkout has one compose file, which this stack's replaces while it runs: not under a running stack.
    running = engine_answers() and project_containers(configured.project_name) != []
    require(not running, f"the Docker stack {configured.project_name} runs from this checkout; stop it first "
                         "(`invoke down --runtime docker`)")  # fmt: skip
    settings = configured.model_copy(update={
        "standby_region": STANDBY, "serving_region": None, "temporal_num_history_shards": 8,
        "project_name": f"{configured.project_name}-regions", "stack_dir": STACK_DIR,
    })  # fmt: skip
    runtime = DockerRuntime(settings, PROJECT_ROOT)
    try:
        runtime.up(print)
        yield runtime
    finally:
        for line in DockerRuntime(settings, PROJECT_ROOT).down(volumes=True):
            print(line)
        compose_file(PROJECT_ROOT).unlink(missing_ok=True)  # it described this stack, now gone


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("the Region drill")
    header = "| scenario | started | completed | lost | duplicated | wrong | RPO | RTO | fail-back RTO |"
    rows = [f"| {r.scenario} | {r.started} | {r.completed} | {r.lost} | {r.duplicated} | {r.wrong_results} | {r.rpo} | "
            f"{r.rto_s:.1f} s | {r.failback_rto_s:.1f} s |" for r in RESULTS]  # fmt: skip
    for line in [header, "| --- " * 9 + "|", *rows]:
        terminalreporter.write_line(line)
    for r in RESULTS:
        terminalreporter.write_line(f"{r.scenario}:")
        for step in r.steps + [f"problem: {p}" for p in r.problems]:
            terminalreporter.write_line(f"  {step}")
    out = Path(".stack") / "region-drill.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in RESULTS], indent=2) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written to {out}")
