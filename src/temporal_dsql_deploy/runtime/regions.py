"""Failover between the two Regions of a peered DSQL cluster: one Region's Temporal hosts serve, the other's wait at
none (runtime/units/temporal_server.py), and `failover` moves serving from one to the other.

Both Regions' hosts write to one strongly consistent store, and Temporal keeps a shard to one owner only through
that store (a new owner's claim bumps the shard's range, which fails the old owner's next write). Two sets of hosts
running at once would take shards from each other back and forth, so the old Region's hosts are stopped before the
new Region's start: if its Region is cut off, its endpoint already refuses their writes (DSQL keeps writes to the
Region that still reaches its peer or the witness), and stopping them keeps them from coming back when it heals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.runtime.model import standby_service
from temporal_dsql_deploy.settings.config import Settings

ROLES = ("history", "matching", "frontend", "worker")
# The old Region stops taking work first (frontend, then the worker's system workflows), and history, which hands
# its shards over as it stops, last; all of them before any host of the new Region starts.
STOP_ORDER = ("frontend", "worker", "matching", "history")
STOP_GRACE_S = 20  # SIGTERM, then this long for a host to hand its shards over, then SIGKILL
SHARDS_OWNED_WAIT_S = 300
POLL_S = 1.0


@dataclass(frozen=True)
class Step:
    """What one step of a failover did, and how long it took."""

    what: str
    seconds: float


def serving_region(settings: Settings) -> str:
    return settings.serving_region or settings.active_region


def regions(settings: Settings) -> tuple[str, ...]:
    return (settings.active_region, *((settings.standby_region,) if settings.standby_region else ()))


def role_service(settings: Settings, region: str, role: str) -> str:
    """The service that runs `role` in `region`: the primary Region's under its own name, the standby's suffixed."""
    name = f"temporal-{role}"
    return name if region == settings.active_region else standby_service(name, region)


def check_failover(settings: Settings, to: str) -> str:
    """The Region serving now, once `to` is checked to be the stack's other Region."""
    if settings.standby_region is None:
        raise DeployError("the stack has one Region: there is nowhere to fail over to",
                          "set STANDBY_REGION to the peered cluster's second Region, then `invoke up --runtime "
                          "docker` starts its standby set at no hosts")  # fmt: skip
    current = serving_region(settings)
    if to not in regions(settings):
        raise DeployError(
            f"--to {to} is not one of the stack's Regions ({', '.join(regions(settings))})",
            f"give --to {settings.standby_region if current != settings.standby_region else current}",
        )
    if to == current:
        raise DeployError(f"{to} serves already", f"`invoke failover --to {_other(settings, to)}` moves serving away")
    return current


def _other(settings: Settings, region: str) -> str:
    return next(each for each in regions(settings) if each != region)


def plan_lines(settings: Settings, to: str) -> list[str]:
    """The steps, as they run locally (Docker) and as they run on AWS (a Helm release per Region)."""
    current = check_failover(settings, to)
    hosts = ", ".join(f"{role} {settings.hosts(role)}" for role in ROLES)

    def replicas(counts: dict[str, int]) -> str:
        return ",".join(f"server.{role}.replicaCount={count}" for role, count in counts.items())

    return [
        f"failover from {current} to {to}:",
        f"  1. fence {current}: stop its Temporal hosts ({', '.join(STOP_ORDER)}; {STOP_GRACE_S}s each to hand its "
        "shards over), so they cannot take shards back when their Region heals",
        f"  2. start {to}'s hosts ({hosts}) on {to}'s endpoint of the cluster, and wait until they are healthy",
        f"  3. wait until {to}'s history hosts own all {settings.temporal_num_history_shards} shards",
        f"  4. wait until {to}'s frontend serves namespace {settings.temporal_namespace!r}; "
        f"SERVING_REGION={to} in .env",
        "on AWS (the chart installed once per Region: `invoke chart` writes values-<region>.yaml for each release):",
        f"  1. helm upgrade temporal-{current} ./chart --reuse-values --set "
        f"{replicas(dict.fromkeys(ROLES, 0))},schema.setup.enabled=false (in {current}'s cluster; if it does not "
        f"answer, {current}'s DSQL endpoint refuses its writes while the Region is cut off: scale it to zero before "
        "it heals)",
        f"  2. SERVING_REGION={to} invoke chart, then helm upgrade temporal-{to} ./chart -f chart/values-{to}.yaml "
        f"(in {to}'s cluster: {replicas({role: settings.hosts(role) for role in ROLES})})",
        f"  3. and 4. as above; then point the clients (DNS, the load balancer) at {to}'s frontend",
    ]


def failover(runtime: DockerRuntime, to: str, target: Settings, write_compose: Callable[[Settings], object],
             report: Callable[[Step], None]) -> None:  # fmt: skip
    """Move serving from the Region that serves now to `to`; `target` is the stack's settings with `to` serving, which
    `write_compose` renders for the engine once the old Region is fenced. Each step is reported as it ends."""
    settings = runtime.settings
    current = check_failover(settings, to)
    began = time.monotonic()
    runtime.remove_services([role_service(settings, current, role) for role in STOP_ORDER], STOP_GRACE_S)
    report(Step(f"fenced {current}: its Temporal hosts stopped and removed", time.monotonic() - began))
    write_compose(target)
    step = time.monotonic()
    started = [role_service(settings, to, role) for role in ROLES]
    runtime.start_services(started)
    report(Step(f"started {to}'s hosts ({', '.join(started)}), all healthy", time.monotonic() - step))
    step = time.monotonic()
    _wait_shards_owned(runtime, role_service(settings, to, "history"), settings.hosts("history"))
    report(Step(f"{to}'s history hosts own all {settings.temporal_num_history_shards} shards",
                time.monotonic() - step))  # fmt: skip


def _wait_shards_owned(runtime: DockerRuntime, history: str, hosts: int) -> None:
    shards = runtime.settings.temporal_num_history_shards

    def owned() -> bool:
        counts = runtime.owned_shards(history)
        return len(counts) == hosts and sum(counts.values()) == shards

    waiting = Retrying(stop=stop_after_delay(SHARDS_OWNED_WAIT_S), wait=wait_fixed(POLL_S),
                       retry=retry_if_result(lambda done: not done))  # fmt: skip
    try:
        waiting(owned)
    except RetryError:
        raise DeployError(
            f"{history}'s hosts did not own all {shards} shards within {SHARDS_OWNED_WAIT_S}s: "
            f"{runtime.owned_shards(history)}",
            f"see `invoke logs {history} --runtime docker`",
        ) from None
