"""Several Temporal hosts share one DSQL stand-in: each host a container with its own address, ring membership and
shards through the dsql plugin. Under steady load a history host is killed, one is cut off the network, hosts are
added and taken away, and every host restarts in turn: every workflow completes exactly once, and no shard stays
unowned over 60 s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.faults import Fault, FaultPlan, run_fault
from temporal_dsql_deploy.load.host_faults import HISTORY, HOST_FAULTS
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from tests.faults.conftest import check_nothing_lost
from tests.multihost.conftest import HOSTS, RESULTS, SHARDS

pytestmark = pytest.mark.multihost
PLAN = FaultPlan(rate=float(os.environ.get("FAULTS_RATE", "3")), hold_s=float(os.environ.get("FAULTS_HOLD_S", "60")))


def test_each_role_runs_on_its_hosts_and_the_shards_are_spread(several_hosts: DockerRuntime) -> None:
    for field, hosts in HOSTS.items():
        service = f"temporal-{field.removeprefix('temporal_').removesuffix('_hosts')}"
        assert len(several_hosts.containers(service)) == hosts, service
    owned = several_hosts.owned_shards(HISTORY)
    assert len(owned) == HOSTS["temporal_history_hosts"]
    assert sum(owned.values()) == SHARDS, owned
    assert min(owned.values()) > 0, f"a history host owns no shard: {owned}"
    rows = [row.name for row in several_hosts.status() if row.name.startswith(HISTORY)]
    assert rows == [f"{HISTORY} #{n}" for n in range(1, HOSTS["temporal_history_hosts"] + 1)], rows


@pytest.mark.parametrize("fault", HOST_FAULTS, ids=[fault.name for fault in HOST_FAULTS])
def test_nothing_is_lost(fault: Fault, several_hosts: DockerRuntime, tmp_path: Path) -> None:
    result = run_fault(several_hosts, fault, PLAN, tmp_path, print)
    RESULTS.append(result)
    check_nothing_lost(result, PLAN)
