"""A plan for a target load: hosts per role, history shards and connection pools, held to DSQL's quotas.

Per-host capacity is what has been measured, not a promise: the DSQL fork of Temporal ran about 320 workflows/s
on ECS with 16 history, 16 matching and 9 frontend hosts (20, 20 and about 35 workflows/s per host), and this
product's own stack does 14-21 workflows/s on one host of each role sharing two cores (README, Performance).
DSQL's quotas (AWS's quotas page): 10,000 connections per cluster, 100 new connections a second (burst 1,000),
a connection lives at most 60 minutes. Every new connection also costs a token and a TLS handshake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from temporal_dsql_deploy.errors import DeployError

# Workflows a second one host of each role carries (the DSQL fork's ECS figures, above).
CAPACITY_PER_HOST = {"history": 20.0, "matching": 20.0, "frontend": 35.0, "worker": 200.0}
AUTOSCALING_FACTOR = 2  # the chart's autoscalers may take a stateless role to this many times its hosts
STATELESS = ("matching", "frontend", "worker")
MAX_HOSTS = 256  # per role, as the chart's values schema allows
MIN_HOSTS = 2  # any one host can be lost (a node drained, a zone gone) without a role going dark
SHARDS_PER_HISTORY_HOST = 64  # shards go to hosts by a hash ring: with fewer, hosts end up very uneven (README)
MIN_SHARDS = 512  # Temporal's production advice; the count is fixed when the schema is first used
MAX_SHARDS = 16384
DSQL_MAX_CONNECTIONS = 10_000
DSQL_CONNECTION_RATE = 100  # new connections a second
DSQL_CONNECTION_BURST = 1_000
# The plan keeps a fifth of the connections free: a rolling update adds a host per role before removing one, and
# operators connect too.
CONNECTION_HEADROOM = 0.8
# Recycled connections may take at most half of DSQL's connection rate, the rest is for starts and failures.
RECYCLE_SHARE = 0.5


@dataclass(frozen=True)
class Plan:
    workflows_per_second: float
    hosts: dict[str, int]
    shards: int
    pool_per_host: int
    connection_lifetime_s: float

    @property
    def connections(self) -> int:
        """Connections the whole release may hold: every pool full, the stateless roles at their autoscalers' most."""
        hosts = sum(count * (AUTOSCALING_FACTOR if role in STATELESS else 1) for role, count in self.hosts.items())
        return hosts * self.pool_per_host

    @property
    def cold_start_s(self) -> float:
        """How long every host's pool takes to fill at DSQL's connection rate, after the burst."""
        return max(0.0, (self.connections - DSQL_CONNECTION_BURST) / DSQL_CONNECTION_RATE)

    @property
    def reconnects_per_s(self) -> float:
        return self.connections / self.connection_lifetime_s

    def lines(self) -> list[str]:
        hosts = ", ".join(f"{role} {count}" for role, count in self.hosts.items())
        return [
            f"plan for {self.workflows_per_second:g} workflows/s: hosts {hosts}; {self.shards} history shards",
            f"connections: {self.pool_per_host} per host, {self.connections:,} at most (autoscalers at their "
            f"most; DSQL: "
            f"{DSQL_MAX_CONNECTIONS:,} per cluster); {self.reconnects_per_s:.1f} new a second to recycle them "
            f"(DSQL: {DSQL_CONNECTION_RATE}); every host starting at once fills its pools in "
            f"{self.cold_start_s:.0f}s after DSQL's burst of {DSQL_CONNECTION_BURST:,}",
            "per-host capacity is measured, not promised (the DSQL fork's 320 workflows/s on 16/16/9 hosts): "
            "load-test the plan (`invoke bench`) before relying on it",
        ]


def plan(workflows_per_second: float, pool_per_host: int, connection_lifetime_s: float) -> Plan:
    """Hosts, shards and pools for the load; refused when it would pass one of DSQL's quotas."""
    hosts = {role: max(MIN_HOSTS, math.ceil(workflows_per_second / capacity))
             for role, capacity in CAPACITY_PER_HOST.items()}  # fmt: skip
    wanted = hosts["history"] * SHARDS_PER_HISTORY_HOST
    shards = max(MIN_SHARDS, 2 ** math.ceil(math.log2(wanted)))
    sized = Plan(workflows_per_second, hosts, min(shards, MAX_SHARDS), pool_per_host, connection_lifetime_s)
    if max(hosts.values()) > MAX_HOSTS:
        raise DeployError(f"{workflows_per_second:g} workflows/s needs {max(hosts.values())} hosts of one role, more "
                          f"than the chart's {MAX_HOSTS}", "split the load over several Temporal clusters")  # fmt: skip
    if sized.connections > DSQL_MAX_CONNECTIONS * CONNECTION_HEADROOM:
        raise DeployError(
            f"{workflows_per_second:g} workflows/s needs {sum(hosts.values())} hosts (more when autoscaled), whose "
            f"pools of {pool_per_host} "
            f"hold {sized.connections:,} connections: more than {CONNECTION_HEADROOM:.0%} of DSQL's "
            f"{DSQL_MAX_CONNECTIONS:,} per cluster",
            "lower TEMPORAL_SQL_MAX_CONNS (connections per host), or split the load over several clusters "
            "(a Temporal cluster each)",
        )
    if sized.reconnects_per_s > DSQL_CONNECTION_RATE * RECYCLE_SHARE:
        raise DeployError(
            f"recycling {sized.connections:,} connections every {connection_lifetime_s:g}s opens "
            f"{sized.reconnects_per_s:.0f} a second, more than half of DSQL's {DSQL_CONNECTION_RATE} a second",
            "raise TEMPORAL_SQL_MAX_CONN_LIFETIME (DSQL allows under 60m) or lower TEMPORAL_SQL_MAX_CONNS",
        )
    if wanted > MAX_SHARDS:
        raise DeployError(f"{hosts['history']} history hosts want {wanted:,} shards, more than Temporal's "
                          f"{MAX_SHARDS:,}", "split the load over several Temporal clusters")  # fmt: skip
    return sized
