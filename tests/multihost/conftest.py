"""Temporal on several hosts over one DSQL stand-in, in containers: 3 history, 2 matching, 2 frontend and 1 worker
host on 64 shards, a Compose project and STACK_DIR of its own (its shard count is fixed in its own database),
started once for the session and stopped after it with its volumes. The stand-in serves two Regions of one peered
cluster, and a standby set of as many hosts waits at none in the second (the Region drill's). The fault table and
the drill's are printed at the end."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FaultResult
from temporal_dsql_deploy.load.region_drill import DrillResult
from temporal_dsql_deploy.runtime.docker_engine import engine_answers
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, compose_file
from temporal_dsql_deploy.settings.config import load_settings
from tests.conftest import PROJECT_ROOT
from tests.containers.conftest import project_containers
from tests.faults.conftest import report_faults
from tests.integration.conftest import require

pytestmark = pytest.mark.multihost
RESULTS: list[FaultResult] = []
DRILLS: list[DrillResult] = []
STANDBY = "us-west-2"
HOSTS = {"temporal_history_hosts": 3, "temporal_matching_hosts": 2, "temporal_frontend_hosts": 2,
         "temporal_worker_hosts": 1}  # fmt: skip
SHARDS = 64  # enough that every one of 5 history hosts owns some: a host with none never reports ready
STACK_DIR = PROJECT_ROOT / ".stack-multihost"


@pytest.fixture(scope="session")
def several_hosts() -> Iterator[DockerRuntime]:
    can_run = engine_answers() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)
    require(can_run, "no Docker engine answers and this is not root on Debian (where the project runs its own)")
    configured = load_settings(PROJECT_ROOT)
    # The checkout has one compose file, which this stack's replaces while it runs: not under a running stack.
    running = engine_answers() and project_containers(configured.project_name) != []
    require(not running, f"the Docker stack {configured.project_name} runs from this checkout; stop it first "
                         "(`invoke down --runtime docker`)")  # fmt: skip
    settings = configured.model_copy(update={
        **HOSTS, "temporal_num_history_shards": SHARDS, "project_name": f"{configured.project_name}-multihost",
        "standby_region": STANDBY, "serving_region": None,
        "temporal_sql_max_conns": 10, "temporal_sql_max_idle_conns": 10,  # 8 hosts (10 scaled out) on one backend
        "stack_dir": STACK_DIR,
    })  # fmt: skip
    runtime = DockerRuntime(settings, PROJECT_ROOT)
    try:
        runtime.up(print)
        yield runtime
    finally:
        for line in runtime.down(volumes=True):
            print(line)
        compose_file(PROJECT_ROOT).unlink(missing_ok=True)  # it described this stack, now gone


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report_faults(terminalreporter, "history hosts under load, in containers", RESULTS,
                  Path(".stack") / "faults-multihost.json")  # fmt: skip
    report_drills(terminalreporter, DRILLS, Path(".stack") / "region-drill.json")


def report_drills(terminalreporter: pytest.TerminalReporter, results: list[DrillResult], out: Path) -> None:
    """The drill's table (the README's rows) and each scenario's timed steps; the results as JSON (`out`)."""
    if not results:
        return
    terminalreporter.section("the Region drill")
    rows = [f"| {r.scenario} | {r.started} | {r.completed} | {r.lost} | {r.duplicated} | {r.wrong_results} | {r.rpo} | "
            f"{r.rto_s:.1f} s | {r.failback_rto_s:.1f} s |" for r in results]  # fmt: skip
    header = "| scenario | started | completed | lost | duplicated | wrong | RPO | RTO | fail-back RTO |"
    for line in [header, "| --- " * 9 + "|", *rows]:
        terminalreporter.write_line(line)
    for r in results:
        terminalreporter.write_line(f"{r.scenario}:")
        for step in [*r.steps, *(f"problem: {problem}" for problem in r.problems)]:
            terminalreporter.write_line(f"  {step}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written to {out}")
