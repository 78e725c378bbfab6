"""The stack in containers (`invoke up --runtime docker`), started once for the session and stopped after it with
its volumes, and the engine too if the project started it. The fault table is printed at the end of the run."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_dsql_deploy.database.local_postgres import with_local_secrets
from temporal_dsql_deploy.load.faults import FaultResult
from temporal_dsql_deploy.runtime.docker_engine import engine_answers
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.settings.config import Settings, load_settings
from tests.conftest import PROJECT_ROOT
from tests.faults.conftest import report_faults
from tests.integration.conftest import chromium, require  # noqa: F401  (fixtures)

pytestmark = pytest.mark.containers
RESULTS: list[FaultResult] = []


@pytest.fixture(scope="session")
def docker_stack() -> Iterator[DockerRuntime]:
    """The DSQL-shaped stack in containers; the project's engine where no other answers (root on Debian)."""
    configured = load_settings(PROJECT_ROOT)
    can_run = engine_answers() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)
    require(can_run, "no Docker engine answers and this is not root on Debian (where the project runs its own)")
    runtime = DockerRuntime(configured, PROJECT_ROOT)
    # A stack the user already runs is used and left running, its data kept; one the suite started goes with its
    # volumes (and the engine, if the project started that for it).
    was_running = engine_answers() and project_containers(configured.project_name) != []
    try:
        runtime.up(print)
        yield runtime
    finally:
        if not was_running:
            for line in runtime.down(volumes=True):
                print(line)


def project_containers(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    listed = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", label], capture_output=True, text=True,
                            check=False, timeout=60)  # fmt: skip
    return listed.stdout.split()


@pytest.fixture(scope="session")
def settings(docker_stack: DockerRuntime) -> Settings:
    """The stack's settings with its generated secrets (the smoke test's worker talks to the published frontend)."""
    return with_local_secrets(docker_stack.settings, create=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report_faults(
        terminalreporter, "faults under load, in containers", RESULTS, Path(".stack") / "faults-containers.json"
    )
