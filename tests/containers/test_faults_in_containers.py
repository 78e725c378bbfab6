"""The fault pass on containers: every Temporal role's container killed at once, dsql-local and PostgreSQL restarted,
the search engine stopped for a while, under load; every workflow completes exactly once, visibility converges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FAULTS, KILL_EVERY_ROLE, ROLE_KILLS, Fault, FaultPlan, run_fault
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from tests.containers.conftest import RESULTS
from tests.faults.conftest import check_nothing_lost

pytestmark = pytest.mark.containers
OTHERS = [fault for fault in FAULTS if Runtime.DOCKER in fault.runtimes and fault not in ROLE_KILLS]
IN_CONTAINERS = [KILL_EVERY_ROLE, *OTHERS]
PLAN = FaultPlan(rate=float(os.environ.get("FAULTS_RATE", "3")), hold_s=float(os.environ.get("FAULTS_HOLD_S", "60")))


@pytest.mark.parametrize("fault", IN_CONTAINERS, ids=[fault.name for fault in IN_CONTAINERS])
def test_nothing_is_lost(fault: Fault, docker_stack: DockerRuntime, tmp_path: Path) -> None:
    result = run_fault(docker_stack, fault, PLAN, tmp_path, print)
    RESULTS.append(result)
    check_nothing_lost(result, PLAN)
