"""What the multi-host faults read from a history host: the shards it owns, from its own metrics."""

from __future__ import annotations

import pytest

from temporal_dsql_deploy.load.host_faults import HOST_FAULTS
from temporal_dsql_deploy.runtime.docker_runtime import shards_in
from temporal_dsql_deploy.runtime.model import Runtime

METRICS = """# HELP numshards_gauge numshards_gauge
# TYPE numshards_gauge gauge
numshards_gauge{operation="ShardController",service_name="history"} 6
numshards_gauge_total 99
persistence_requests{operation="GetOrCreateShard"} 16
"""


@pytest.mark.parametrize(
    ("metrics", "owned"),
    [
        (METRICS, 6),
        ("numshards_gauge 5\n", 5),
        ('numshards_gauge{a="b"} 1e+01\n', 10),
        ("", 0),
        ("# TYPE numshards_gauge gauge\n", 0),
        ("persistence_requests 3\n", 0),
    ],
    ids=["labelled", "bare", "exponent", "nothing-yet", "type-line-only", "other-metrics"],
)
def test_shards_owned_are_read_from_the_hosts_own_gauge(metrics: str, owned: int) -> None:
    assert shards_in(metrics) == owned


def test_host_faults_run_only_where_hosts_are_containers() -> None:
    assert len(HOST_FAULTS) == 4
    assert all(fault.runtimes == frozenset({Runtime.DOCKER}) for fault in HOST_FAULTS)
