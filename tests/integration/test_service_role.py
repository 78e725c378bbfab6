"""Least privilege on DSQL for real: the services' own role reads and writes Temporal's tables, and nothing more."""

from __future__ import annotations

import psycopg
import pytest

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.schema import Applier, SchemaSource, ensure_schema
from temporal_dsql_deploy.database.service_role import ensure_service_role
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import TemporalServer
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import StandIn

pytestmark = [pytest.mark.integration, pytest.mark.own_database]
DSQL_SCHEMA = "dsql/v12/temporal"
UNMAPPED = "unmapped_probe"
NOT_TEMPORALS = "reports_not_temporals"


@pytest.fixture(scope="module")
def service_settings(isolated_stand_in: StandIn) -> Settings:
    """The tests' own stand-in with Temporal's DSQL schema and the services' role, as schema setup leaves them."""
    settings = isolated_stand_in.settings
    server = TemporalServer(install_temporal_server(settings, Installer(print, project_root=PROJECT_ROOT)))
    applier = Applier(settings, SchemaSource.resolve(lambda: server, DSQL_SCHEMA, "", DSQL_SCHEMA), print)
    try:
        ensure_schema(applier)
        # A table of the cluster's that is not Temporal's: the services' role gets nothing on it.
        applier.run(f"CREATE TABLE IF NOT EXISTS {NOT_TEMPORALS} (id BIGINT PRIMARY KEY)")
        done = ensure_service_role(settings, applier.run, applier.source.tables())
        print("\n".join(done))
        if not applier.run("SELECT 1 FROM pg_roles WHERE rolname = %s", (UNMAPPED,)):
            applier.run(f"CREATE ROLE {UNMAPPED} WITH LOGIN")
    finally:
        applier.close()
    return settings


def test_the_services_role_reads_and_writes_temporals_tables(service_settings: Settings) -> None:
    role = service_settings.dsql_service_role
    with dsql.connect(service_settings, role=role) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
        conn.execute("INSERT INTO namespace_metadata (partition_id, notification_version) VALUES (-7, 1)")
        conn.execute("UPDATE namespace_metadata SET notification_version = 2 WHERE partition_id = -7")
        assert conn.execute(
            "SELECT notification_version FROM namespace_metadata WHERE partition_id = -7"
        ).fetchone() == (2,)
        conn.execute("DELETE FROM namespace_metadata WHERE partition_id = -7")
        assert conn.execute("SELECT curr_version FROM schema_version").fetchone() is not None


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE services_made_this (id BIGINT PRIMARY KEY)",
        "DROP TABLE executions",
        "ALTER TABLE executions ADD COLUMN services_added_this BIGINT",
        "CREATE INDEX ASYNC services_index ON executions (shard_id)",
        "UPDATE schema_version SET curr_version = '0.0'",
        "SELECT * FROM reports_not_temporals",  # NOT_TEMPORALS
        f"AWS IAM GRANT {UNMAPPED} TO 'arn:aws:iam::000000000000:role/dsql-local'",
        "CREATE ROLE services_made_this WITH LOGIN",
    ],
)
def test_the_services_role_cannot_change_the_schema_or_roles(service_settings: Settings, statement: str) -> None:
    with (
        dsql.connect(service_settings, role=service_settings.dsql_service_role) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_a_role_not_mapped_to_the_signer_cannot_connect(service_settings: Settings) -> None:
    with pytest.raises(psycopg.OperationalError):
        dsql.connect(service_settings, role=UNMAPPED).close()


def test_the_running_services_connect_as_their_own_role(local_stack: LocalStack, settings: Settings) -> None:
    """On the DSQL profile Temporal reaches the backend as the services' role; on PostgreSQL as its configured user."""
    expected = settings.dsql_service_role if settings.is_dsql else settings.temporal_sql_user
    with dsql.connect(settings, "postgres", direct=True) as conn:
        users = {str(user) for (user,) in conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> ''"
        ).fetchall()}  # fmt: skip
    assert expected in users, f"no connection as {expected}; the backend sees {sorted(users)}"
