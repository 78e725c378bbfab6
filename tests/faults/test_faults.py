"""Faults under load (`nox -s faults`): each fault once against the running local stack; every workflow started
must complete exactly once with its own result, and visibility must agree within 60 s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import FAULTS, Fault, FaultPlan, run_fault
from temporal_dsql_deploy.runtime.local_runtime import LocalRuntime
from temporal_dsql_deploy.runtime.stack import LocalStack
from tests.faults.conftest import RESULTS, check_nothing_lost
from tests.integration.conftest import require

pytestmark = pytest.mark.faults

PLAN = FaultPlan(
    rate=float(os.environ.get("FAULTS_RATE", "3")),
    hold_s=float(os.environ.get("FAULTS_HOLD_S", "60")),
    shape=os.environ.get("FAULTS_SHAPE", "transitions"),
)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_nothing_is_lost(fault: Fault, local_stack: LocalStack, tmp_path: Path) -> None:
    if fault.dsql_only:
        require(local_stack.settings.local_dsql, f"{fault.name} needs the local DSQL profile")
    runtime = LocalRuntime(local_stack.settings, local_stack.project_root)
    result = run_fault(runtime, fault, PLAN, tmp_path, print)
    RESULTS.append(result)
    check_nothing_lost(result, PLAN)
