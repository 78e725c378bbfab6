"""PostgreSQL: the local persistence behind dsql-local (or the PostgreSQL profile's own database)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.database.local_postgres import as_postgres_user
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Installer, apt_install, can_install_packages
from temporal_dsql_deploy.runtime.model import Component, HealthCheck, Port, PostgresProbe, Service, temporal_roles
from temporal_dsql_deploy.runtime.units.base import (
    CONTAINER_TMP,
    LOCALHOST,
    Container,
    Host,
    Native,
    Unit,
    postgresql_image,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef

POSTGRES_BIN = Path("/usr/lib/postgresql")


def services(settings: Settings) -> Iterator[Service]:
    if not settings.sql_is_local:
        return
    yield Service(
        name="postgresql",
        component=Component.POSTGRESQL,
        ports=(Port("sql", settings.temporal_sql_port),),
        healthcheck=HealthCheck(PostgresProbe(settings.temporal_sql_port), retries=60),
        description=f"PostgreSQL {settings.postgres_version}: local persistence",
    )


DATABASE_VOLUME = "postgresql-data"  # in Compose; made with the password of the STACK_DIR that first started it


class PostgreSQLUnit(Unit):
    component = Component.POSTGRESQL
    # Its fast shutdown: SIGTERM asks for the smart one, which waits for every client to leave (Temporal's pools
    # never do), so a restart under load would end in the supervisor's SIGKILL.
    stop_signal = signal.SIGINT

    def native(self, service: Service, host: Host) -> Native:
        postgres = str(host.paths.postgres_bin / "postgres")
        data = host.layout.data / "postgresql"
        argv = [postgres, "-D", str(data), "-p", str(service.ports[0].number), "-k", str(host.layout.runtime_dir),
                "-c", f"listen_addresses={LOCALHOST}", "-c", "unix_socket_permissions=0700"]  # fmt: skip
        return Native(as_postgres_user(argv), switches_user=True)

    def container(self, service: Service, settings: Settings) -> Container:
        # Password (scram) authentication (docker/postgresql-entrypoint.sh initialises an empty volume).
        env: dict[str, EnvValue] = {
            "POSTGRES_USER": settings.temporal_sql_user,
            "POSTGRES_DB": settings.temporal_sql_database,
            "POSTGRES_PASSWORD": SecretRef("TEMPORAL_SQL_PASSWORD"),
        }
        # Its socket in the container's private /tmp (the root filesystem is read-only; clients use TCP).
        command = [
            "postgres",
            "-c",
            f"port={service.ports[0].number}",
            "-c",
            f"unix_socket_directories={CONTAINER_TMP[0]}",
            "-c",
            f"max_connections={backend_connections(settings)}",
        ]
        return Container(postgresql_image(settings), command, env, (f"{DATABASE_VOLUME}:/var/lib/postgresql/data",),
                         memory_mb=512)  # fmt: skip


RESERVED_CONNECTIONS = 50  # the one-shot jobs, the exporter, dsql-local's own checks, an operator's psql
SPARE_HOSTS = 2  # a rolling replacement or a scale-out runs a couple of hosts more for a while


def backend_connections(settings: Settings) -> int:
    """Connections the stack's PostgreSQL takes: every Temporal host's full pool (each is a client connection to
    dsql-local, and one to the backend behind it), with room for SPARE_HOSTS more."""
    hosts = sum(settings.hosts(each.role) for each in temporal_roles(settings)) + SPARE_HOSTS
    return RESERVED_CONNECTIONS + hosts * settings.temporal_sql_max_conns


def install_postgresql(settings: Settings, installer: Installer) -> Path:
    bin_dir = POSTGRES_BIN / settings.postgres_version / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    if not installer.build or not can_install_packages():
        raise DeployError(
            f"PostgreSQL {settings.postgres_version} is not installed ({bin_dir} is missing)",
            f"install Debian's postgresql-{settings.postgres_version} package",
        )
    installer.report(f"installing PostgreSQL {settings.postgres_version} from Debian (first time only)")
    apt_install((f"postgresql-{settings.postgres_version}",), installer.report, recommends=True)
    return bin_dir


UNITS = (PostgreSQLUnit(),)
