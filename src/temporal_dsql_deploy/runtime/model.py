"""The service model: what the stack is, independent of how a runtime starts it.

Renderers (Compose, the process supervisor) decide *how*: images or binaries, hostnames, paths.
The model decides *what*: services, the component each runs, environment, ports, health checks
and the order they wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from temporal_dsql_deploy.database.endpoint import (
    DSQL_LOCAL_BACKEND_DATABASE,
    DSQL_LOCAL_BACKEND_ROLE,
    LOCAL_DSQL_PRINCIPAL_ARN,
    LOCAL_DSQL_REGION,
    persistence_endpoint,
)
from temporal_dsql_deploy.runtime.control_keys import DSQL_LOCAL_ADMIN_KEY
from temporal_dsql_deploy.settings.config import FRONTEND_HTTP_PORT, ROLE_METRICS_PORTS, Settings
from temporal_dsql_deploy.settings.environment import (
    EnvValue,
    HostOf,
    SecretRef,
    format_go_duration,
    settings_environment,
)


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


@dataclass(frozen=True)
class Scrape:
    """Where the metrics store reads a service's Prometheus metrics."""

    port: int
    path: str = "/metrics"


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

    def scrape_targets(self) -> list[tuple[str, Scrape]]:
        """Every service the metrics store scrapes, by name."""
        return [(s.name, s.scrape) for s in self.services if s.scrape is not None]

    def temporal_services(self) -> list[str]:
        """The Temporal services, in start-up order."""
        return [s.name for s in self.services if s.component is Component.TEMPORAL_SERVER]

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
    health_service: str  # the name the role reports in grpc.health.v1 ("" = the whole server)


def temporal_roles(settings: Settings) -> tuple[TemporalRole, ...]:
    """The four roles in the order they start: history, matching, frontend, worker (ports derived in settings)."""
    health = {"history": "temporal.api.workflowservice.v1.HistoryService",
              "matching": "temporal.api.workflowservice.v1.MatchingService",
              "frontend": "temporal.api.workflowservice.v1.WorkflowService", "worker": ""}  # fmt: skip
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
# The search engine's JVM options in both runtimes: message lookups off whatever log4j the engine loads (the
# Compose images bring their own), so no request that reaches a log line can trigger a JNDI lookup.
SEARCH_ENGINE_JVM_OPTIONS = ("-Xms512m", "-Xmx512m", "-Dlog4j2.formatMsgNoLookups=true")


def persistence_environment(settings: Settings) -> dict[str, EnvValue]:
    """Variables the Temporal config template and the schema tools read for persistence."""
    if settings.local_dsql:
        return _local_dsql_environment(settings)
    if settings.sql_is_local:
        return _local_postgres_environment(settings)
    return settings_environment(settings, PERSISTENCE_FIELDS)


def _local_postgres_environment(settings: Settings) -> dict[str, EnvValue]:
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


def _dsql_local_args(settings: Settings, region: str) -> tuple[str, ...]:
    # The host clients use (--endpoint) is the renderers' to add: a loopback address here, a service name in Compose.
    flags = {
        "--region": region,
        "--backend-port": str(settings.temporal_sql_port),
        "--backend-user": DSQL_LOCAL_BACKEND_ROLE,
        "--iam-principal": LOCAL_DSQL_PRINCIPAL_ARN,
        "--backend-database": DSQL_LOCAL_BACKEND_DATABASE,
        "--max-transaction-age": format_go_duration(settings.dsql_local_max_transaction_age),
        "--connect-rate": f"{settings.dsql_local_connect_rate:g}",
    }
    return tuple(part for flag, value in flags.items() for part in (flag, value))


def dsql_local_setup_service(settings: Settings) -> Service:
    """Readies the stack's PostgreSQL for the stand-in, as its superuser: the non-superuser role dsql-local runs
    admin's sessions as, and the backend database owned by it."""
    return Service(
        name="dsql-local-setup",
        component=Component.ADMIN,
        args=("dsql-local-setup",),
        environment=admin_environment(
            settings,
            _local_postgres_environment(settings),
            {
                "TEMPORAL_SQL_PLUGIN": "postgres12_pgx",  # it talks to PostgreSQL itself, not through the stand-in
                "DSQL_LOCAL_BACKEND_PASSWORD": SecretRef("DSQL_LOCAL_BACKEND_PASSWORD"),
            },
        ),
        depends_on={"postgresql": Condition.HEALTHY},
        one_shot=True,
        description=f"creates dsql-local's backend role {DSQL_LOCAL_BACKEND_ROLE} (no superuser) and its database",
    )


def dsql_local_service(settings: Settings) -> Service:
    """The stand-in in front of the stack's PostgreSQL; it runs in every local stack, whichever plugin."""
    return Service(
        name="dsql-local",
        component=Component.DSQL_LOCAL,
        args=_dsql_local_args(settings, settings.aws_region or LOCAL_DSQL_REGION),
        environment={
            "AWS_ACCESS_KEY_ID": SecretRef("AWS_ACCESS_KEY_ID", "dsql_local_access_key_id"),
            "AWS_SECRET_ACCESS_KEY": SecretRef("AWS_SECRET_ACCESS_KEY", "dsql_local_secret_access_key"),
            "DSQL_LOCAL_BACKEND_PASSWORD": SecretRef("DSQL_LOCAL_BACKEND_PASSWORD"),
            # Its admin API's control paths (/faults, /stats, profiles) answer only requests that carry this key.
            DSQL_LOCAL_ADMIN_KEY: SecretRef(DSQL_LOCAL_ADMIN_KEY),
        },
        ports=(Port("sql", settings.dsql_local_port), Port("admin", settings.dsql_local_admin_port)),
        depends_on={"dsql-local-setup": Condition.COMPLETED},
        healthcheck=HealthCheck(HttpProbe(settings.dsql_local_admin_port, "/healthz"), retries=60),
        description="dsql-local: the Aurora DSQL stand-in (TLS, IAM tokens, DSQL's rules) in front of PostgreSQL",
        scrape=Scrape(settings.dsql_local_admin_port),
    )


def _service_role_environment(settings: Settings) -> dict[str, EnvValue]:
    """What schema setup needs to keep the services' DSQL role (it runs as admin)."""
    fields = ("dsql_service_role", "dsql_service_principal_arn") if settings.is_dsql else ()
    environment = settings_environment(settings, fields)
    if settings.local_dsql:  # the job sees the stand-in as a cluster; tokens there are signed as its principal
        environment["DSQL_SERVICE_PRINCIPAL_ARN"] = LOCAL_DSQL_PRINCIPAL_ARN
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


def build_stack(settings: Settings) -> Stack:
    """The whole stack for these settings."""
    services: list[Service] = []
    if settings.sql_is_local:
        services.append(
            Service(
                name="postgresql",
                component=Component.POSTGRESQL,
                ports=(Port("sql", settings.temporal_sql_port),),
                healthcheck=HealthCheck(PostgresProbe(settings.temporal_sql_port), retries=60),
                description=f"PostgreSQL {settings.postgres_version}: local persistence",
            )
        )
        services.append(dsql_local_setup_service(settings))
        services.append(dsql_local_service(settings))
    es_port = settings.temporal_elasticsearch_port
    services.append(
        Service(
            name="elasticsearch",
            component=Component.SEARCH_ENGINE,
            ports=(Port("http", es_port, published=True),),
            healthcheck=HealthCheck(
                HttpProbe(es_port, "/_cluster/health?wait_for_status=yellow&timeout=5s"),
                retries=60,
                start_period_s=20,
            ),
            description=f"{settings.search_engine} {settings.search_engine_version}: visibility store",
        )
    )
    services.append(
        Service(
            name="es-setup",
            component=Component.ADMIN,
            args=("es-setup",),
            environment=admin_environment(settings, visibility_environment(settings)),
            depends_on={"elasticsearch": Condition.HEALTHY},
            one_shot=True,
            description="creates the visibility index template and index from Temporal's own schema",
        )
    )
    schema_deps = {"es-setup": Condition.COMPLETED}
    if settings.sql_is_local:
        schema_deps.update({"postgresql": Condition.HEALTHY, "dsql-local": Condition.HEALTHY})
    services.append(
        Service(
            name="schema-setup",
            component=Component.ADMIN,
            args=("schema-setup",),
            environment=admin_environment(
                settings, persistence_environment(settings), _service_role_environment(settings)
            ),
            depends_on=schema_deps,
            one_shot=True,
            description="creates or updates Temporal's persistence schema",
        )
    )
    services.extend(_temporal_services(settings))
    services.append(
        Service(
            name="namespace-setup",
            component=Component.ADMIN,
            args=("namespace-setup",),
            environment=admin_environment(
                settings,
                settings_environment(settings, ("temporal_frontend_port", "temporal_namespace")),
                {"TEMPORAL_FRONTEND_HOST": HostOf("temporal-frontend")},
            ),
            depends_on={"temporal-frontend": Condition.HEALTHY},
            one_shot=True,
            description=f"registers the {settings.temporal_namespace!r} namespace if it is missing",
        )
    )
    services.append(
        Service(
            name="temporal-ui",
            component=Component.TEMPORAL_UI,
            environment={
                **settings_environment(settings, ("temporal_frontend_port", "temporal_ui_port", "temporal_namespace")),
                "TEMPORAL_ADDRESS": HostOf("temporal-frontend"),
            },
            ports=(Port("http", settings.temporal_ui_port, published=True),),
            depends_on={"temporal-frontend": Condition.HEALTHY},
            healthcheck=HealthCheck(HttpProbe(settings.temporal_ui_port, "/healthz")),
            description=f"Temporal Web UI {settings.temporal_ui_version}",
        )
    )
    services.extend(_observability_services(settings))
    return Stack(tuple(services))


def _observability_services(settings: Settings) -> Iterator[Service]:
    """The exporters for what has no Prometheus endpoint of its own, the metrics store and the dashboards."""
    if settings.sql_is_local:
        yield Service(
            name="postgresql-exporter",
            component=Component.POSTGRES_EXPORTER,
            environment={
                "DATA_SOURCE_URI": _postgres_uri(settings),
                "DATA_SOURCE_USER": settings.temporal_sql_user,
                "DATA_SOURCE_PASS": SecretRef("TEMPORAL_SQL_PASSWORD"),
            },
            ports=(Port("metrics", settings.postgres_exporter_port),),
            depends_on={"postgresql": Condition.HEALTHY},
            healthcheck=HealthCheck(HttpProbe(settings.postgres_exporter_port, "/")),
            description="postgres_exporter: PostgreSQL's statistics as Prometheus metrics",
            scrape=Scrape(settings.postgres_exporter_port),
        )
    yield Service(
        name="elasticsearch-exporter",
        component=Component.SEARCH_ENGINE_EXPORTER,
        args=("--es.indices",),
        environment={"ES_URI": _search_engine_uri(settings)},
        ports=(Port("metrics", settings.search_engine_exporter_port),),
        depends_on={"elasticsearch": Condition.HEALTHY},
        healthcheck=HealthCheck(HttpProbe(settings.search_engine_exporter_port, "/")),
        description="elasticsearch_exporter: cluster health, index size and query times as Prometheus metrics",
        scrape=Scrape(settings.search_engine_exporter_port),
    )
    yield Service(
        name="metrics",
        component=Component.METRICS_STORE,
        ports=(Port("http", settings.metrics_port, published=True),),
        healthcheck=HealthCheck(HttpProbe(settings.metrics_port, "/-/healthy")),
        description="the metrics store: scrapes every service",
        scrape=Scrape(settings.metrics_port),
    )
    yield Service(
        name="grafana",
        component=Component.DASHBOARDS,
        ports=(Port("http", settings.grafana_port, published=True),),
        depends_on={"metrics": Condition.HEALTHY},
        healthcheck=HealthCheck(HttpProbe(settings.grafana_port, "/api/health")),
        description="Grafana with the provisioned metrics store and dashboards",
        runtimes=frozenset({Runtime.DOCKER}),
    )


def _postgres_uri(settings: Settings) -> HostOf:
    # The `postgres` database is there in both profiles; the statistics cover every database.
    return HostOf("postgresql", "{host}:" + str(settings.temporal_sql_port) + "/postgres?sslmode=disable")


def _search_engine_uri(settings: Settings) -> HostOf:
    return HostOf("elasticsearch", "http://{host}:" + str(settings.temporal_elasticsearch_port))


def _temporal_services(settings: Settings) -> Iterator[Service]:
    roles = temporal_roles(settings)
    shared_env: dict[str, EnvValue] = {
        **server_persistence_environment(settings),
        **visibility_environment(settings),
        **settings_environment(settings, SERVER_FIELDS),
        "TEMPORAL_FRONTEND_HOST": HostOf("temporal-frontend"),
        "TEMPORAL_FRONTEND_HTTP_PORT": str(FRONTEND_HTTP_PORT),
    }
    for each in roles:
        shared_env[f"TEMPORAL_{each.role.upper()}_MEMBERSHIP_PORT"] = str(each.membership_port)
    previous = "schema-setup"
    previous_condition = Condition.COMPLETED
    for role in roles:
        name = f"temporal-{role.role}"
        depends: dict[str, Condition] = {previous: previous_condition}
        if role.role == "worker":
            depends = {"temporal-frontend": Condition.HEALTHY}
        yield Service(
            name=name,
            component=Component.TEMPORAL_SERVER,
            args=("start", "--service", role.role),
            environment={
                **shared_env,
                "TEMPORAL_SERVICE": role.role,
                "TEMPORAL_METRICS_PORT": str(role.metrics_port),
            },
            ports=(
                Port("grpc", role.grpc_port, published=role.role == "frontend"),
                Port("membership", role.membership_port),
                Port("metrics", role.metrics_port),
                *((Port("http", FRONTEND_HTTP_PORT),) if role.role == "frontend" else ()),
            ),
            depends_on=depends,
            healthcheck=HealthCheck(GrpcProbe(role.grpc_port, role.health_service), start_period_s=15),
            description=f"Temporal {role.role} service",
            scrape=Scrape(role.metrics_port),
        )
        previous, previous_condition = name, Condition.HEALTHY
