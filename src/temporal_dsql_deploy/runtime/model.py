"""The service model's types: what a stack is, independent of how a runtime starts it, and the environment
groups several components share. The components themselves, and the stack for a set of settings
(`build_stack`), are in `runtime/units/`; the renderers decide *how*: images or binaries, hostnames, paths.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from temporal_dsql_deploy.database.endpoint import persistence_endpoint
from temporal_dsql_deploy.settings.config import ROLE_METRICS_PORTS, Settings
from temporal_dsql_deploy.settings.environment import EnvValue, HostOf, SecretRef, settings_environment
from temporal_dsql_deploy.settings.releases import release


class Component(StrEnum):
    """A program the stack runs; each renderer knows how to launch each one."""

    POSTGRESQL = "postgresql"
    SEARCH_ENGINE = "search-engine"
    TEMPORAL_SERVER = "temporal-server"
    TEMPORAL_UI = "temporal-ui"
    DSQL_LOCAL = "dsql-local"  # the Aurora DSQL stand-in, this repository's dsql-local/ module
    ADMIN = "admin"  # this package's own one-shot commands (schema, index, namespace setup)
    METRICS_STORE = "metrics-store"  # scrapes every service: VictoriaMetrics (local, with its UI), Prometheus
    DASHBOARDS = "dashboards"  # Grafana; in the local runtime the metrics store serves the dashboards itself
    POSTGRES_EXPORTER = "postgres-exporter"
    SEARCH_ENGINE_EXPORTER = "search-engine-exporter"


class Runtime(StrEnum):
    LOCAL = "local"  # process-compose, no Docker
    DOCKER = "docker"  # Docker Compose


class Condition(StrEnum):
    """What a dependent waits for; the values are Compose's spelling."""

    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED = "service_completed_successfully"


@dataclass(frozen=True)
class HttpProbe:
    port: int
    path: str


@dataclass(frozen=True)
class GrpcProbe:
    port: int
    service: str  # the grpc.health.v1 service name to ask about


@dataclass(frozen=True)
class PostgresProbe:
    port: int


Probe = HttpProbe | GrpcProbe | PostgresProbe


@dataclass(frozen=True)
class HealthCheck:
    probe: Probe
    interval_s: int = 5
    timeout_s: int = 5
    retries: int = 30
    start_period_s: int = 10


@dataclass(frozen=True)
class Port:
    name: str
    number: int
    published: bool = False  # reachable from the host in Compose (all ports are local natively)
    host_number: int | None = None  # published at this port of the host rather than its own number

    @property
    def on_host(self) -> int:
        return self.host_number or self.number


@dataclass(frozen=True)
class Scrape:
    """Where the metrics store reads a service's Prometheus metrics."""

    port: int
    path: str = "/metrics"
    of_the_store: bool = False  # the store's own metrics: it asks its scraper for credentials where it has a key


@dataclass(frozen=True)
class Service:
    name: str
    component: Component
    args: tuple[str, ...] = ()
    environment: Mapping[str, EnvValue] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    depends_on: Mapping[str, Condition] = field(default_factory=dict)
    healthcheck: HealthCheck | None = None
    one_shot: bool = False  # runs to completion; dependents wait for exit code 0
    description: str = ""
    scrape: Scrape | None = None
    runtimes: frozenset[Runtime] = frozenset(Runtime)
    replicas: int = 1  # hosts running it, each with its own address (Compose replicas, the chart's Deployment)
    aliases: tuple[str, ...] = ()  # more names it is reached by on the stack's network (another Region's endpoint)


@dataclass(frozen=True)
class Stack:
    services: tuple[Service, ...]

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services)

    def get(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise KeyError(f"no service {name!r} in the stack (services: {known})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def in_runtime(self, runtime: Runtime) -> Stack:
        """The services this runtime runs."""
        return Stack(tuple(s for s in self.services if runtime in s.runtimes))

    def scrape_targets(self) -> list[tuple[Service, Scrape]]:
        """Every service the metrics store scrapes."""
        return [(s, s.scrape) for s in self.services if s.scrape is not None]

    def temporal_services(self) -> list[str]:
        """The Temporal services that serve, in start-up order (a standby Region's wait at no hosts until failover)."""
        return [s.name for s in self.services if s.component is Component.TEMPORAL_SERVER and s.replicas > 0]

    def startup_order(self) -> tuple[str, ...]:
        """Services in an order where each comes after everything it depends on (stable by position)."""
        order: list[str] = []
        remaining = list(self.services)
        while remaining:
            ready = [s for s in remaining if all(dep in order for dep in s.depends_on)]
            if not ready:
                cycle = ", ".join(s.name for s in remaining)
                raise ValueError(f"dependency cycle among: {cycle}")
            order.append(ready[0].name)
            remaining.remove(ready[0])
        return tuple(order)


@dataclass(frozen=True)
class TemporalRole:
    """One of Temporal's four server roles and the ports it owns."""

    role: str
    grpc_port: int
    membership_port: int
    metrics_port: int
    health_service: str | None  # the name the role reports in grpc.health.v1; None: it serves no gRPC health


def temporal_roles(settings: Settings) -> tuple[TemporalRole, ...]:
    """The four roles in the order they start: history, matching, frontend, worker (ports derived in settings)."""
    health: dict[str, str | None] = {
        "history": "temporal.api.workflowservice.v1.HistoryService",
        "matching": "temporal.api.workflowservice.v1.MatchingService",
        "frontend": "temporal.api.workflowservice.v1.WorkflowService",
        # Its own name, which it reports NOT_SERVING as it stops ("" stays SERVING while the process lives).
        "worker": "temporal.api.workflowservice.v1.WorkerService"
        if release(settings.temporal_version).worker_grpc_health
        else None,
    }
    return tuple(
        TemporalRole(role, getattr(settings, f"temporal_{role}_port"), settings.membership_port(role),
                     ROLE_METRICS_PORTS[role], health[role])
        for role in ("history", "matching", "frontend", "worker")
    )  # fmt: skip


# The settings each kind of process reads, by field name; `settings_environment` names and renders them.
PERSISTENCE_FIELDS = (
    "temporal_sql_plugin", "temporal_sql_host", "temporal_sql_port", "temporal_sql_user", "temporal_sql_password",
    "temporal_sql_database", "temporal_sql_tls_enabled", "temporal_sql_iam_auth", "temporal_sql_max_conns",
    "temporal_sql_max_idle_conns", "temporal_sql_connection_timeout", "temporal_sql_max_conn_lifetime", "aws_region",
    "temporal_sql_token_lifetime",
)  # fmt: skip
VISIBILITY_FIELDS = (
    "temporal_elasticsearch_host", "temporal_elasticsearch_port", "temporal_elasticsearch_scheme",
    "temporal_elasticsearch_index", "temporal_elasticsearch_username", "temporal_elasticsearch_password",
)  # fmt: skip
SERVER_FIELDS = (
    "temporal_log_level", "temporal_num_history_shards", "temporal_frontend_host", "temporal_frontend_port",
    "temporal_history_port", "temporal_matching_port", "temporal_worker_port",
)  # fmt: skip
# The one-shot commands find the installed Temporal tools through these.
ADMIN_FIELDS = ("cache_dir", "temporal_version", "search_engine")


def persistence_environment(settings: Settings) -> dict[str, EnvValue]:
    """Variables the Temporal config template and the schema tools read for persistence."""
    if settings.local_dsql:
        return _local_dsql_environment(settings)
    if settings.sql_is_local:
        return local_postgres_environment(settings)
    return settings_environment(settings, PERSISTENCE_FIELDS)


def local_postgres_environment(settings: Settings) -> dict[str, EnvValue]:
    """The stack's own PostgreSQL itself (it always has a password), whichever plugin Temporal uses."""
    environment = settings_environment(settings, PERSISTENCE_FIELDS)
    environment["TEMPORAL_SQL_HOST"] = HostOf("postgresql")
    environment["TEMPORAL_SQL_PASSWORD"] = SecretRef("TEMPORAL_SQL_PASSWORD")
    return environment


def server_persistence_environment(settings: Settings) -> dict[str, EnvValue]:
    """What the Temporal services connect with: on DSQL as their own role (dsql:DbConnect tokens), never admin."""
    environment = persistence_environment(settings)
    if settings.is_dsql:
        environment["TEMPORAL_SQL_USER"] = settings.dsql_service_role
    return environment


def _local_dsql_environment(settings: Settings) -> dict[str, EnvValue]:
    """The local DSQL profile: clients are told the stand-in's endpoint as they would be a cluster's."""
    endpoint = persistence_endpoint(settings)
    as_cluster = settings.model_copy(
        update={"temporal_sql_port": endpoint.port, "temporal_sql_user": endpoint.user,
                "temporal_sql_database": endpoint.database, "temporal_sql_tls_enabled": True,
                "temporal_sql_iam_auth": True, "aws_region": endpoint.region, "temporal_sql_password": None,
                "temporal_sql_tls_ca_file": endpoint.ca_file}
    )  # fmt: skip
    environment = settings_environment(as_cluster, (*PERSISTENCE_FIELDS, "temporal_sql_tls_ca_file"))
    environment["TEMPORAL_SQL_HOST"] = HostOf("dsql-local")
    # Tokens are signed with the stack's local credentials, handed over as the AWS SDKs read them.
    environment["AWS_ACCESS_KEY_ID"] = SecretRef("AWS_ACCESS_KEY_ID", "dsql_local_access_key_id")
    environment["AWS_SECRET_ACCESS_KEY"] = SecretRef("AWS_SECRET_ACCESS_KEY", "dsql_local_secret_access_key")
    return environment


def visibility_environment(settings: Settings) -> dict[str, EnvValue]:
    environment = settings_environment(settings, VISIBILITY_FIELDS)
    environment["TEMPORAL_ELASTICSEARCH_HOST"] = HostOf("elasticsearch")  # the stack runs its own engine
    return environment


def admin_environment(settings: Settings, *groups: dict[str, EnvValue]) -> dict[str, EnvValue]:
    merged = settings_environment(settings, ADMIN_FIELDS)
    for group in groups:
        merged.update(group)
    return merged


def regional_service(settings: Settings, region: str, service: str) -> str:
    """The name of `service` in `region`: the primary Region's own, the standby's suffixed with its Region."""
    return service if region == settings.active_region else f"{service}-{region}"


def standby_endpoint(region: str) -> str:
    """The host name of the local stand-in's endpoint for the standby Region (its certificate and tokens name it)."""
    return f"dsql-local-{region}"


def serving_frontend(settings: Settings) -> str:
    """The frontend service the stack's own clients (UI, namespace job) use: the serving Region's."""
    return regional_service(settings, settings.serving, "temporal-frontend")


def standby_persistence_environment(settings: Settings, region: str) -> dict[str, EnvValue]:
    """The Temporal services' persistence variables in the standby Region: that Region's endpoint of the peered
    cluster (the stand-in's second endpoint, or the peer cluster's), its tokens signed for that Region."""
    environment = server_persistence_environment(settings)
    if settings.local_dsql:
        environment["TEMPORAL_SQL_HOST"] = HostOf(standby_endpoint(region))
        environment["TEMPORAL_SQL_PORT"] = str(settings.dsql_local_standby_port)
    else:
        environment["TEMPORAL_SQL_HOST"] = str(settings.standby_sql_host)
    environment["AWS_REGION"] = region
    return environment
