"""dsql-local: the Aurora DSQL stand-in in front of the stack's PostgreSQL, and the job that readies its role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.database.endpoint import (
    DSQL_LOCAL_BACKEND_DATABASE,
    DSQL_LOCAL_BACKEND_ROLE,
    LOCAL_DSQL_PRINCIPAL_ARN,
    dsql_local_dir,
)
from temporal_dsql_deploy.runtime.control_keys import DSQL_LOCAL_ADMIN_KEY
from temporal_dsql_deploy.runtime.installer import (
    Installer,
    build_step,
    component_dir,
    go_env,
    newest_build,
    source_digest,
)
from temporal_dsql_deploy.runtime.model import (
    Component,
    Condition,
    HealthCheck,
    HttpProbe,
    Port,
    Scrape,
    Service,
    admin_environment,
    local_postgres_environment,
    standby_endpoint,
)
from temporal_dsql_deploy.runtime.units.base import (
    ALL_INTERFACES,
    LOCALHOST,
    Container,
    Host,
    Native,
    Unit,
    runtime_image,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import SecretRef, format_go_duration

# The stand-in's CA and its key, in the stand-in's volume. It publishes the CA certificate alone into a volume of
# its own (--publish-ca), which clients mount read-only: never the CA's key. (A volume subpath would need Docker
# Engine 26; Debian's is 20.10.)
DSQL_LOCAL_STATE = "/var/lib/dsql-local"
DSQL_LOCAL_CA_PUBLISHED = "/var/lib/dsql-local-ca"
CLIENT_CA_DIR = "/etc/dsql-local-ca"
CLIENT_CA_FILE = f"{CLIENT_CA_DIR}/ca.pem"


def _args(settings: Settings, region: str) -> tuple[str, ...]:
    # The host clients use (--endpoint) is the unit's to add: a loopback address natively, a service name in Compose.
    flags = {
        "--region": region,
        "--backend-port": str(settings.temporal_sql_port),
        "--backend-user": DSQL_LOCAL_BACKEND_ROLE,
        "--iam-principal": LOCAL_DSQL_PRINCIPAL_ARN,
        "--backend-database": DSQL_LOCAL_BACKEND_DATABASE,
        "--max-transaction-age": format_go_duration(settings.dsql_local_max_transaction_age),
        "--connect-rate": f"{settings.dsql_local_connect_rate:g}",
        "--latency-profile": settings.dsql_local_latency,
    }
    return tuple(part for flag, value in flags.items() for part in (flag, value))


def services(settings: Settings) -> Iterator[Service]:
    """It runs in every local stack, whichever plugin, in front of the stack's PostgreSQL."""
    if not settings.sql_is_local:
        return
    # Readies the stack's PostgreSQL for the stand-in, as its superuser: the non-superuser role dsql-local runs
    # admin's sessions as, and the backend database owned by it.
    yield Service(
        name="dsql-local-setup",
        component=Component.ADMIN,
        args=("dsql-local-setup",),
        environment=admin_environment(
            settings,
            local_postgres_environment(settings),
            {
                "TEMPORAL_SQL_PLUGIN": "postgres12_pgx",  # it talks to PostgreSQL itself, not through the stand-in
                "DSQL_LOCAL_BACKEND_PASSWORD": SecretRef("DSQL_LOCAL_BACKEND_PASSWORD"),
            },
        ),
        depends_on={"postgresql": Condition.HEALTHY},
        one_shot=True,
        description=f"creates dsql-local's backend role {DSQL_LOCAL_BACKEND_ROLE} (no superuser) and its database",
    )
    yield Service(
        name="dsql-local",
        component=Component.DSQL_LOCAL,
        args=_args(settings, settings.active_region),
        environment={
            "AWS_ACCESS_KEY_ID": SecretRef("AWS_ACCESS_KEY_ID", "dsql_local_access_key_id"),
            "AWS_SECRET_ACCESS_KEY": SecretRef("AWS_SECRET_ACCESS_KEY", "dsql_local_secret_access_key"),
            "DSQL_LOCAL_BACKEND_PASSWORD": SecretRef("DSQL_LOCAL_BACKEND_PASSWORD"),
            # Its admin API's control paths (/faults, /stats, profiles) answer only requests that carry this key.
            DSQL_LOCAL_ADMIN_KEY: SecretRef(DSQL_LOCAL_ADMIN_KEY),
        },
        ports=(Port("sql", settings.dsql_local_port), Port("admin", settings.dsql_local_admin_port)),
        # A peered cluster's second Region: its endpoint is another name for the stand-in on the stack's network.
        aliases=(standby_endpoint(settings.standby_region),) if settings.standby_region else (),
        depends_on={"dsql-local-setup": Condition.COMPLETED},
        healthcheck=HealthCheck(HttpProbe(settings.dsql_local_admin_port, "/healthz"), retries=60),
        description="dsql-local: the Aurora DSQL stand-in (TLS, IAM tokens, DSQL's rules) in front of PostgreSQL",
        scrape=Scrape(settings.dsql_local_admin_port),
    )


class DsqlLocalUnit(Unit):
    component = Component.DSQL_LOCAL

    def native(self, service: Service, host: Host) -> Native:
        sql, admin = (port.number for port in service.ports)
        return Native([str(host.paths.dsql_local), "--listen", f"{LOCALHOST}:{sql}",
                       "--admin-listen", f"{LOCALHOST}:{admin}", "--backend-host", LOCALHOST,
                       "--tls-dir", str(dsql_local_dir(host.settings)), "--endpoint", host.settings.temporal_sql_host,
                       *service.args])  # fmt: skip

    def container(self, service: Service, settings: Settings) -> Container:
        sql, admin = (port.number for port in service.ports)
        command = ["dsql-local", "--listen", f"{ALL_INTERFACES}:{sql}", "--admin-listen", f"{ALL_INTERFACES}:{admin}",
                   "--backend-host", "postgresql", "--tls-dir", DSQL_LOCAL_STATE,
                   "--publish-ca", DSQL_LOCAL_CA_PUBLISHED, "--endpoint", service.name, *service.args]  # fmt: skip
        if region := settings.standby_region:  # the standby Temporal hosts run in containers only
            command += ["--peer-listen", f"{ALL_INTERFACES}:{settings.dsql_local_standby_port}",
                        "--peer-endpoint", standby_endpoint(region), "--peer-region", region]  # fmt: skip
        volumes = (f"dsql-local-data:{DSQL_LOCAL_STATE}", f"dsql-local-ca:{DSQL_LOCAL_CA_PUBLISHED}")
        return Container(runtime_image(settings), command, {}, volumes)


def install_dsql_local(settings: Settings, installer: Installer) -> Path:
    """The DSQL stand-in, built from dsql-local/ (cgo: PostgreSQL's parser comes with pg_query_go)."""
    if installer.project_root is None:  # locating only: a one-shot or `down` needs no rebuild
        return newest_build(settings, "dsql-local", "dsql-local", ("dsql-local",))
    module = installer.project_root / "dsql-local"

    def build(staging: Path) -> None:
        env = {**go_env(staging), "CGO_ENABLED": "1"}
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "dsql-local"), "./cmd/dsql-local"]
        build_step(argv, "building dsql-local", env=env, cwd=module)

    target = component_dir(settings, "dsql-local", source_digest(module))
    return installer.once(target, "dsql-local (the DSQL stand-in)", build, ("dsql-local",))


UNITS = (DsqlLocalUnit(),)
