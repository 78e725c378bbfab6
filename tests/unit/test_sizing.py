"""The chart's sizing plan: hosts, shards and pools from a target load, held to DSQL's quotas."""

from __future__ import annotations

import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.kubernetes.sizing import DSQL_MAX_CONNECTIONS, MIN_HOSTS, MIN_SHARDS, plan


def test_the_dsql_forks_measured_load_gives_its_hosts() -> None:
    """320 workflows/s is what the fork ran on 16 history, 16 matching and 9 frontend hosts on ECS."""
    sized = plan(320, pool_per_host=20, connection_lifetime_s=300)
    assert (sized.hosts["history"], sized.hosts["matching"]) == (16, 16)
    assert sized.hosts["frontend"] in (9, 10)
    assert sized.shards == 1024  # 64 a history host, a power of two
    # History's hosts, and the stateless roles' at their autoscalers' most (twice their hosts).
    assert sized.connections == (16 + 2 * (16 + sized.hosts["frontend"] + sized.hosts["worker"])) * 20
    assert any(f"{sized.connections:,} at most" in line for line in sized.lines())


def test_a_small_load_still_gets_two_hosts_a_role_and_production_shards() -> None:
    sized = plan(1, pool_per_host=20, connection_lifetime_s=300)
    assert set(sized.hosts.values()) == {MIN_HOSTS}
    assert sized.shards == MIN_SHARDS
    assert sized.cold_start_s == 0


def test_a_plan_past_dsqls_connections_per_cluster_is_refused_with_the_numbers() -> None:
    with pytest.raises(DeployError) as refused:
        plan(5000, pool_per_host=20, connection_lifetime_s=300)
    assert f"{DSQL_MAX_CONNECTIONS:,} per cluster" in refused.value.problem
    assert "TEMPORAL_SQL_MAX_CONNS" in (refused.value.fix or "")
    assert plan(5000, pool_per_host=5, connection_lifetime_s=300).connections <= DSQL_MAX_CONNECTIONS


def test_recycling_faster_than_dsqls_connection_rate_allows_is_refused() -> None:
    with pytest.raises(DeployError) as refused:
        plan(1000, pool_per_host=20, connection_lifetime_s=30)
    assert "a second" in refused.value.problem
    assert "TEMPORAL_SQL_MAX_CONN_LIFETIME" in (refused.value.fix or "")
