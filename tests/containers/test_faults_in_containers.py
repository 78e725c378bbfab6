"""The fault pass on containers: each Temporal role's container killed, dsql-local and PostgreSQL restarted, the
search engine stopped for a while, under load; every workflow completes exactly once, visibility converges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FAULTS, Fault, FaultPlan, run_fault
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from tests.containers.conftest import RESULTS

pytestmark = pytest.mark.containers
IN_CONTAINERS = [fault for fault in FAULTS if Runtime.DOCKER in fault.runtimes]
PLAN = FaultPlan(rate=float(os.environ.get("FAULTS_RATE", "3")), hold_s=float(os.environ.get("FAULTS_HOLD_S", "60")))


@pytest.mark.parametrize("fault", IN_CONTAINERS, ids=[fault.name for fault in IN_CONTAINERS])
def test_nothing_is_lost(fault: Fault, docker_stack: DockerRuntime, tmp_path: Path) -> None:
    result = run_fault(docker_stack, fault, PLAN, tmp_path, print)
    RESULTS.append(result)
    assert result.started > PLAN.rate * PLAN.before_s, f"too few workflows started to mean anything: {result}"
    assert result.lost == 0, f"{result.lost} workflows never completed: {result}"
    assert result.duplicated == 0, f"{result.duplicated} workflow ids ran more than once: {result}"
    assert result.wrong_results == 0, f"{result.wrong_results} workflows returned another result: {result}"
    assert result.visibility_s is not None, f"visibility did not show every workflow completed in 60 s: {result}"
    assert not result.problems, f"the fault did not happen as meant: {result}"
