"""The services' own database role on DSQL: what schema setup asks of the database, and what it refuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from temporal_dsql_deploy.database.endpoint import DSQL_LOCAL_BACKEND_ROLE, LOCAL_DSQL_PRINCIPAL_ARN
from temporal_dsql_deploy.database.service_role import ensure_service_role, service_principal
from temporal_dsql_deploy.errors import ConfigError, DeployError
from temporal_dsql_deploy.runtime.model import Condition
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import SecretRef
from tests.conftest import DSQL

SERVICES_ARN = "arn:aws:iam::111122223333:role/temporal-services"
# What the schema creates (a table it dropped since, never there, included).
TEMPORAL_TABLES = ("executions", "shards", "dropped_long_ago")


class FakeDatabase:
    """Answers the two catalogue reads as a DSQL cluster would, and records every statement."""

    def __init__(self, *, role_exists: bool, mapped: tuple[str, ...] = ()) -> None:
        self.role_exists = role_exists
        self.mapped = mapped
        self.statements: list[str] = []

    def run(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        self.statements.append(sql)
        if sql.startswith("SELECT 1 FROM pg_roles"):
            return [(1,)] if self.role_exists else []
        if "sys.iam_pg_role_mappings" in sql:
            return [(arn,) for arn in self.mapped]
        if "FROM pg_tables" in sql:  # Temporal's tables, the schema's bookkeeping, and a table not Temporal's
            return [("executions",), ("shards",), ("schema_version",), ("schema_update_history",), ("reports",)]
        return []


def test_a_new_cluster_gets_the_role_its_mapping_and_dml_only(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(**DSQL, DSQL_SERVICE_PRINCIPAL_ARN=SERVICES_ARN)
    database = FakeDatabase(role_exists=False)
    done = ensure_service_role(settings, database.run, TEMPORAL_TABLES)
    writes = [sql for sql in database.statements if not sql.startswith("SELECT")]
    assert writes == [
        "CREATE ROLE temporal_service WITH LOGIN",
        f"AWS IAM GRANT temporal_service TO '{SERVICES_ARN}'",
        "GRANT USAGE ON SCHEMA public TO temporal_service",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON executions, shards TO temporal_service",
        "GRANT SELECT ON schema_version, schema_update_history TO temporal_service",
        "REVOKE INSERT, UPDATE, DELETE ON schema_version, schema_update_history FROM temporal_service",
    ]
    assert not any("CREATE ON" in sql or "ALL PRIVILEGES" in sql for sql in writes)
    assert done[:2] == ["created role temporal_service", f"mapped role temporal_service to {SERVICES_ARN}"]


def test_a_second_run_only_grants_again(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(**DSQL, DSQL_SERVICE_PRINCIPAL_ARN=SERVICES_ARN)
    database = FakeDatabase(role_exists=True, mapped=(SERVICES_ARN,))
    ensure_service_role(settings, database.run, TEMPORAL_TABLES)
    assert not any(sql.startswith(("CREATE ROLE", "AWS IAM")) for sql in database.statements)
    assert any(sql.startswith("GRANT SELECT") for sql in database.statements)


def test_a_principal_the_role_was_mapped_to_before_loses_it(make_settings: Callable[..., Settings]) -> None:
    old = "arn:aws:iam::111122223333:role/old-services"
    settings = make_settings(**DSQL, DSQL_SERVICE_PRINCIPAL_ARN=SERVICES_ARN)
    database = FakeDatabase(role_exists=True, mapped=(old,))
    done = ensure_service_role(settings, database.run, TEMPORAL_TABLES)
    assert f"AWS IAM GRANT temporal_service TO '{SERVICES_ARN}'" in database.statements
    assert f"AWS IAM REVOKE temporal_service FROM '{old}'" in database.statements
    assert f"unmapped role temporal_service from {old}" in done


def test_admin_as_the_service_role_changes_nothing(make_settings: Callable[..., Settings]) -> None:
    database = FakeDatabase(role_exists=True)
    assert ensure_service_role(make_settings(**DSQL, DSQL_SERVICE_ROLE="admin"), database.run, TEMPORAL_TABLES) == []
    assert database.statements == []


def test_a_cluster_in_aws_needs_the_services_principal(make_settings: Callable[..., Settings]) -> None:
    database = FakeDatabase(role_exists=False)
    with pytest.raises(DeployError) as raised:
        ensure_service_role(make_settings(**DSQL), database.run, TEMPORAL_TABLES)
    assert "DSQL_SERVICE_PRINCIPAL_ARN" in str(raised.value)
    assert "service_connect_policy_arn" in (raised.value.fix or "")
    assert database.statements == []  # nothing half-done


def test_the_local_profile_maps_dsql_locals_own_principal(make_settings: Callable[..., Settings]) -> None:
    assert service_principal(make_settings(TEMPORAL_SQL_PLUGIN="dsql")) == LOCAL_DSQL_PRINCIPAL_ARN


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DSQL_SERVICE_ROLE", "Temporal"),
        ("DSQL_SERVICE_ROLE", "temporal; DROP TABLE executions"),
        ("DSQL_SERVICE_ROLE", "pg_monitor"),
        ("DSQL_SERVICE_ROLE", "x" * 64),
        ("DSQL_SERVICE_ROLE", "user"),
        ("DSQL_SERVICE_ROLE", "table"),
        ("DSQL_SERVICE_PRINCIPAL_ARN", "arn:aws:iam::1234:role/short-account"),
        ("DSQL_SERVICE_PRINCIPAL_ARN", "arn:aws:iam::111122223333:role/it's"),
        ("DSQL_SERVICE_PRINCIPAL_ARN", "arn:aws:sts::111122223333:assumed-role/x/y"),
    ],
)
def test_names_written_into_statements_are_refused_unless_plain(
    make_settings: Callable[..., Settings], name: str, value: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(**DSQL, **{name: value})
    assert name in str(raised.value)


def test_the_local_stack_wires_the_split_roles(make_settings: Callable[..., Settings]) -> None:
    """The services connect as their role, schema setup (as admin) is told which principal to map it to, and
    dsql-local runs admin's sessions as its non-superuser backend role, which a job before it makes."""
    stack = build_stack(make_settings())
    servers = [stack.get(name) for name in stack.temporal_services()]
    assert servers
    assert {server.environment["TEMPORAL_SQL_USER"] for server in servers} == {"temporal_service"}
    schema_setup = stack.get("schema-setup").environment
    assert schema_setup["DSQL_SERVICE_ROLE"] == "temporal_service"
    assert schema_setup["DSQL_SERVICE_PRINCIPAL_ARN"] == LOCAL_DSQL_PRINCIPAL_ARN
    stand_in = stack.get("dsql-local")
    flags = dict(zip(stand_in.args[::2], stand_in.args[1::2], strict=True))
    assert flags["--backend-user"] == DSQL_LOCAL_BACKEND_ROLE
    assert flags["--iam-principal"] == LOCAL_DSQL_PRINCIPAL_ARN
    assert stand_in.depends_on == {"dsql-local-setup": Condition.COMPLETED}
    setup = stack.get("dsql-local-setup")
    assert setup.args == ("dsql-local-setup",)
    assert setup.one_shot
    assert setup.environment["DSQL_LOCAL_BACKEND_PASSWORD"] == SecretRef("DSQL_LOCAL_BACKEND_PASSWORD")


def test_the_postgresql_profile_keeps_its_configured_user(make_settings: Callable[..., Settings]) -> None:
    stack = build_stack(make_settings(TEMPORAL_SQL_PLUGIN="postgres12_pgx"))
    assert {stack.get(name).environment["TEMPORAL_SQL_USER"] for name in stack.temporal_services()} == {"temporal"}
    assert "DSQL_SERVICE_ROLE" not in stack.get("schema-setup").environment
