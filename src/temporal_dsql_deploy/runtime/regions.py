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
from temporal_dsql_deploy.runtime.model import regional_service
from temporal_dsql_deploy.settings.config import Settings

ROLES = ("history", "matching", "frontend", "worker")
# The old Region's hosts are stopped together (SIGTERM, this long for each to hand its shards over, then SIGKILL),
# all of them before any host of the new Region starts. Hosts whose Region is cut off can hand nothing over (the
# handover is written to the database): `grace_s` 0 kills them at once.
STOP_GRACE_S = 20
SHARDS_OWNED_WAIT_S = 300
FRONTEND_SERVES_WAIT_S = 120
POLL_S = 1.0


@dataclass(frozen=True)
class Step:
    """What one step of a failover did, and how long it took."""

    what: str
    seconds: float


def regions(settings: Settings) -> tuple[str, ...]:
    return (settings.active_region, *((settings.standby_region,) if settings.standby_region else ()))


def role_service(settings: Settings, region: str, role: str) -> str:
    """The service that runs `role` in `region`: the primary Region's under its own name, the standby's suffixed."""
    return regional_service(settings, region, f"temporal-{role}")


def check_failover(settings: Settings, to: str) -> str:
    """The Region serving now, once `to` is checked to be the stack's other Region."""
    if settings.standby_region is None:
        raise DeployError("the stack has one Region: there is nowhere to fail over to",
                          "set STANDBY_REGION to the peered cluster's second Region, then `invoke up --runtime "
                          "docker` starts its standby set at no hosts")  # fmt: skip
    if not settings.has_standby_set:
        raise DeployError(f"STANDBY_REGION={settings.standby_region}, but no standby hosts run on this profile: "
                          "they need DSQL, the local stand-in or the peer cluster's endpoint",
                          "use TEMPORAL_SQL_PLUGIN=dsql (the local profile), or set STANDBY_SQL_HOST to the peer "
                          "cluster's endpoint (`invoke deploy` writes it)")  # fmt: skip
    current = settings.serving
    if to not in regions(settings):
        raise DeployError(
            f"--to {to} is not one of the stack's Regions ({', '.join(regions(settings))})",
            f"give --to {settings.standby_region if current != settings.standby_region else current}",
        )
    if to == current:
        raise DeployError(f"{to} serves already", f"`invoke failover --to {other_region(settings, to)}` moves it away")
    return current


def other_region(settings: Settings, region: str | None = None) -> str:
    """The stack's Region that is not `region` (default: the one serving); the primary for a one-Region stack."""
    avoided = region or settings.serving
    return next((each for each in regions(settings) if each != avoided), settings.active_region)


def plan_lines(settings: Settings, to: str) -> list[str]:
    """The steps, as they run locally (Docker) and as they run on AWS (a Helm release per Region)."""
    current = check_failover(settings, to)
    hosts = ", ".join(f"{role} {settings.hosts(role)}" for role in ROLES)

    def replicas(counts: dict[str, int]) -> str:
        return ",".join(f"server.{role}.replicaCount={count}" for role, count in counts.items())

    return [
        f"failover from {current} to {to}:",
        f"  1. fence {current}: stop its Temporal hosts, together (--grace, default {STOP_GRACE_S}s, for each to hand "
        "its shards over; 0 for hosts off the network), so they cannot take shards back when their Region heals",
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


def failover(runtime: DockerRuntime, to: str, record: Callable[[Settings], object], report: Callable[[Step], None],
             grace_s: int = STOP_GRACE_S) -> DockerRuntime:  # fmt: skip
    """Move serving from the Region that serves now to `to`, each step reported as it ends; the runtime of the stack
    with `to` serving. `record` makes the move the stack's own once the old Region is fenced (the compose file, and
    for the task SERVING_REGION in .env), so that a later `up` serves from `to` even if a later step fails."""
    from temporal_dsql_deploy.temporal.serving import wait_serving  # noqa: PLC0415 (the SDK: seconds to import)

    settings = runtime.settings
    current = check_failover(settings, to)
    began = time.monotonic()
    runtime.remove_services([role_service(settings, current, role) for role in ROLES], grace_s)
    stopped = f"stopped ({grace_s}s to hand their shards over)" if grace_s else "killed"
    report(Step(f"fenced {current}: its Temporal hosts {stopped} and removed", time.monotonic() - began))
    target = settings.model_copy(update={"serving_region": to})
    record(target)
    moved = runtime.with_settings(target)
    step = time.monotonic()
    started = [role_service(settings, to, role) for role in ROLES]
    moved.start_services(started)
    report(Step(f"started {to}'s hosts ({', '.join(started)}), all healthy", time.monotonic() - step))
    step = time.monotonic()
    _wait_shards_owned(moved, role_service(settings, to, "history"), settings.hosts("history"))
    report(Step(f"{to}'s history hosts own all {settings.temporal_num_history_shards} shards",
                time.monotonic() - step))  # fmt: skip
    step = time.monotonic()
    wait_serving(target.frontend_address, settings.temporal_namespace, FRONTEND_SERVES_WAIT_S,
                 f"see `invoke logs {role_service(settings, to, 'frontend')} --runtime docker`")  # fmt: skip
    moved.start_services(["temporal-ui"])  # the UI follows the serving frontend
    report(Step(f"{to}'s frontend at {target.frontend_address} serves {settings.temporal_namespace!r}, the UI with it",
                time.monotonic() - step))  # fmt: skip
    return moved


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
