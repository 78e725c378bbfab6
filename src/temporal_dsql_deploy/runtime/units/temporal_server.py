"""Temporal's four services (the product's server: upstream with the dsql plugin), the schema job before them
and the namespace job after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.database.endpoint import LOCAL_DSQL_PRINCIPAL_ARN
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import (
    Installer,
    build_step,
    component_dir,
    copy_schema,
    go_env,
    newest_build,
    server_module_dir,
    source_digest,
)
from temporal_dsql_deploy.runtime.model import (
    SERVER_FIELDS,
    Component,
    Condition,
    GrpcProbe,
    HealthCheck,
    HttpProbe,
    Port,
    Runtime,
    Scrape,
    Service,
    TemporalRole,
    admin_environment,
    persistence_environment,
    regional_service,
    server_persistence_environment,
    serving_frontend,
    standby_persistence_environment,
    temporal_roles,
    visibility_environment,
)
from temporal_dsql_deploy.runtime.units.base import (
    ALL_INTERFACES,
    IMAGE_DYNAMIC_CONFIG,
    IMAGE_TEMPORAL_CONFIG,
    Container,
    Host,
    Native,
    Unit,
    runtime_image,
)
from temporal_dsql_deploy.settings.config import FRONTEND_HTTP_PORT, Settings
from temporal_dsql_deploy.settings.environment import EnvValue, HostOf, settings_environment
from temporal_dsql_deploy.settings.releases import release
from temporal_dsql_deploy.temporal.installed import TemporalServer


def _service_role_environment(settings: Settings) -> dict[str, EnvValue]:
    """What schema setup needs to keep the services' DSQL role (it runs as admin)."""
    fields = ("dsql_service_role", "dsql_service_principal_arn") if settings.is_dsql else ()
    environment = settings_environment(settings, fields)
    if settings.local_dsql:  # the job sees the stand-in as a cluster; tokens there are signed as its principal
        environment["DSQL_SERVICE_PRINCIPAL_ARN"] = LOCAL_DSQL_PRINCIPAL_ARN
    return environment


def services(settings: Settings) -> Iterator[Service]:
    schema_deps: dict[str, Condition] = {}
    if settings.sql_is_local:
        schema_deps.update({"postgresql": Condition.HEALTHY, "dsql-local": Condition.HEALTHY})
    yield Service(
        name="schema-setup",
        component=Component.ADMIN,
        args=("schema-setup",),
        environment=admin_environment(settings, persistence_environment(settings), _service_role_environment(settings)),
        depends_on=schema_deps,
        one_shot=True,
        description="creates or updates Temporal's persistence schema",
    )
    yield from _roles(settings, None)
    if settings.standby_region is not None and settings.has_standby_set:
        yield from _roles(settings, settings.standby_region)
    yield Service(
        name="namespace-setup",
        component=Component.ADMIN,
        args=("namespace-setup",),
        environment=admin_environment(
            settings,
            settings_environment(settings, ("temporal_frontend_port", "temporal_namespace")),
            {"TEMPORAL_FRONTEND_HOST": HostOf(serving_frontend(settings))},
        ),
        depends_on={serving_frontend(settings): Condition.HEALTHY},
        one_shot=True,
        description=f"registers the {settings.temporal_namespace!r} namespace if it is missing",
    )


def _roles(settings: Settings, standby: str | None) -> Iterator[Service]:
    """The four roles of the primary Region (`standby` None) or of the standby Region: its own names, its endpoint,
    its frontend published apart. The serving Region's run on their hosts; the other's wait at none, in Compose only
    (a chart serves one Region per release)."""
    roles = temporal_roles(settings)

    def name_of(service: str) -> str:
        return regional_service(settings, standby or settings.active_region, service)

    persistence = (server_persistence_environment(settings) if standby is None
                   else standby_persistence_environment(settings, standby))  # fmt: skip
    shared_env: dict[str, EnvValue] = {
        **persistence,
        **visibility_environment(settings),
        **settings_environment(settings, SERVER_FIELDS),
        "TEMPORAL_FRONTEND_HOST": HostOf(name_of("temporal-frontend")),
        "TEMPORAL_FRONTEND_HTTP_PORT": str(FRONTEND_HTTP_PORT),
    }
    for each in roles:
        shared_env[f"TEMPORAL_{each.role.upper()}_MEMBERSHIP_PORT"] = str(each.membership_port)
    serving = settings.serves_from_standby == (standby is not None)
    published_at = None if standby is None else settings.standby_frontend_port
    # The roles start together, as the official chart starts them (each host writes its membership row before it
    # reads the others', so concurrent starts join one ring), once the schema exists. The roles that take workflows
    # in (frontend; worker, whose system workflows go through it) wait for the index too, so no visibility record
    # is written before its mapping; history and matching need not, and history's own start takes longest.
    for role in roles:
        depends = {"schema-setup": Condition.COMPLETED}
        if role.role in ("frontend", "worker"):
            depends["es-setup"] = Condition.COMPLETED
        yield Service(
            name=name_of(f"temporal-{role.role}"),
            component=Component.TEMPORAL_SERVER,
            args=("start", "--service", role.role),
            environment={**shared_env, "TEMPORAL_SERVICES": role.role, "TEMPORAL_METRICS_PORT": str(role.metrics_port)},
            ports=(
                Port("grpc", role.grpc_port, published=role.role == "frontend", host_number=published_at),
                Port("membership", role.membership_port),
                Port("metrics", role.metrics_port),
                *((Port("http", FRONTEND_HTTP_PORT),) if role.role == "frontend" else ()),
            ),
            depends_on=depends,
            healthcheck=HealthCheck(_probe(role), start_period_s=15),
            description=f"Temporal {role.role} service" + (f" in the standby Region {standby}" if standby else ""),
            scrape=Scrape(role.metrics_port),
            replicas=settings.hosts(role.role) if serving else 0,
            runtimes=frozenset(Runtime) if standby is None else frozenset({Runtime.DOCKER}),
        )


def _probe(role: TemporalRole) -> GrpcProbe | HttpProbe:
    """The role's own gRPC health where it serves one; else its metrics endpoint, which answers once it runs."""
    if role.health_service is None:
        return HttpProbe(role.metrics_port, "/metrics")
    return GrpcProbe(role.grpc_port, role.health_service)


class TemporalServerUnit(Unit):
    component = Component.TEMPORAL_SERVER

    def native(self, service: Service, host: Host) -> Native:
        config = host.layout.config
        # Through the role's link (settings/layout.py): `upgrade` moves one role to another release's build.
        program = host.layout.role_build(service.name) / host.paths.temporal_server.name
        argv = [str(program), "--config-file", str(config / "temporal.yaml"), "--allow-no-auth",
                *service.args]  # fmt: skip
        return Native(argv, {"TEMPORAL_DYNAMIC_CONFIG_FILE": str(config / "dynamicconfig.yaml")})

    def container(self, service: Service, settings: Settings) -> Container:
        # The image's own command: its entrypoint starts the roles TEMPORAL_SERVICES names, as upstream's image does.
        env: dict[str, EnvValue] = {
            "TEMPORAL_BIND_IP": ALL_INTERFACES,
            "TEMPORAL_SERVER_CONFIG_FILE": IMAGE_TEMPORAL_CONFIG,
            "TEMPORAL_DYNAMIC_CONFIG_FILE": IMAGE_DYNAMIC_CONFIG,
        }
        return Container(runtime_image(settings), None, env, memory_mb=768)


# Upstream's schema and Elasticsearch tools, as the product's server module lists them (its `tool` lines): built in
# that module, they share its build list and Go's build cache with the product's server, so the two cost one build.
TOOL_PACKAGES = {"sql": "go.temporal.io/server/cmd/tools/sql",
                 "elasticsearch": "go.temporal.io/server/cmd/tools/elasticsearch"}  # fmt: skip


def install_temporal_server(settings: Settings, installer: Installer) -> Path:
    """Upstream's tools (sql, elasticsearch) and schema files of the release; its server is the product's."""
    version = f"v{settings.temporal_version}"

    def build(staging: Path) -> None:
        if installer.project_root is None:
            raise DeployError(f"upstream's Temporal tools {version} are not installed",
                              "run `invoke up` in the project's checkout, which builds them")  # fmt: skip
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", *release(settings.temporal_version).go_flags(),
                "-o", f"{staging}/", *TOOL_PACKAGES.values()]  # fmt: skip
        build_step(argv, f"building Temporal's tools {version}", env=go_env(staging),
                   cwd=installer.project_root / "server")  # fmt: skip
        copy_schema(server_module_dir(version) / "schema", TemporalServer(staging).schema_dir)

    return installer.once(component_dir(settings, "temporal-server", version), f"Temporal's tools {version}", build,
                          tuple(TOOL_PACKAGES))  # fmt: skip


def install_product_server(settings: Settings, installer: Installer) -> Path:
    """The product's Temporal server (server/: upstream's, plus the dsql plugin), built from this repository."""
    if installer.project_root is None:
        return newest_build(settings, "temporal-server-dsql", "the Temporal server with the dsql plugin",
                            ("temporal-server",), version=f"v{settings.temporal_version}-")  # fmt: skip
    module = installer.project_root / "server"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", *release(settings.temporal_version).go_flags(),
                "-o", str(staging / "temporal-server"), "./cmd/temporal-server"]  # fmt: skip
        build_step(argv, "building the Temporal server with the dsql plugin", env=go_env(staging), cwd=module)

    version = f"v{settings.temporal_version}-{source_digest(module)}"
    target = component_dir(settings, "temporal-server-dsql", version)
    return installer.once(target, f"the Temporal server {settings.temporal_version} with the dsql plugin", build,
                          ("temporal-server",))  # fmt: skip


UNITS = (TemporalServerUnit(),)
