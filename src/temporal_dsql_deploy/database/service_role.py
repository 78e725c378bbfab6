"""The database role Temporal's services connect as on DSQL: reads and writes on Temporal's tables, nothing else.

AWS's guidance for applications on DSQL: admin (`dsql:DbConnectAdmin`) only for schema changes; the application
connects as a custom role (`dsql:DbConnect`) that `AWS IAM GRANT` maps to the IAM principal it runs as, with
only the PostgreSQL privileges its SQL needs. Schema setup runs as admin, so it keeps the role in step with the
schema: every run grants on the tables the schema has now, and an upgrade that adds tables is covered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from temporal_dsql_deploy.database.endpoint import LOCAL_DSQL_PRINCIPAL_ARN
from temporal_dsql_deploy.database.schema import CONTROL_TABLES
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.config import IAM_PRINCIPAL_ARN, Settings

# One statement in its own transaction, retried on conflicts (DSQL: a GRANT is DDL, alone in its transaction).
Run = Callable[[str, tuple[object, ...]], list[tuple[object, ...]]]

ADMIN_ROLE = "admin"
_SCHEMA = "public"


def service_principal(settings: Settings) -> str:
    """The IAM principal the services sign their tokens as: dsql-local's own locally, the configured one in AWS."""
    if settings.local_dsql:
        return LOCAL_DSQL_PRINCIPAL_ARN
    if settings.dsql_service_principal_arn is None:
        raise DeployError(
            f"DSQL_SERVICE_ROLE={settings.dsql_service_role}: the services connect as that role with dsql:DbConnect "
            "tokens, and DSQL_SERVICE_PRINCIPAL_ARN does not say which IAM principal they sign them as",
            "set DSQL_SERVICE_PRINCIPAL_ARN to the services' IAM role ARN (their ECS task or EKS pod role, which "
            "needs the policy `terraform output service_connect_policy_arn`), or DSQL_SERVICE_ROLE=admin",
        )
    return settings.dsql_service_principal_arn


def ensure_service_role(settings: Settings, run: Run, schema_tables: Iterable[str]) -> list[str]:
    """Create the services' role, map it to their IAM principal and grant it DML on Temporal's tables (those of
    `schema_tables` the database has) and reads of the schema's version.

    Idempotent; answers what it changed. `run` is connected as admin. Names are validated settings
    (a plain role name, an ARN of AWS's shape), so they can be written into statements that take no parameters.
    """
    role = settings.dsql_service_role
    if role == ADMIN_ROLE:
        return []
    principal = service_principal(settings)
    done: list[str] = []
    if not run("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
        run(f"CREATE ROLE {role} WITH LOGIN", ())
        done.append(f"created role {role}")
    mapped = {str(arn) for (arn,) in run("SELECT arn FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,))}
    if principal not in mapped:
        run(f"AWS IAM GRANT {role} TO '{principal}'", ())
        done.append(f"mapped role {role} to {principal}")
    # The role is this product's: a principal it was mapped to before (DSQL_SERVICE_PRINCIPAL_ARN changed) loses it.
    for stale in sorted(mapped - {principal}):
        if re.fullmatch(IAM_PRINCIPAL_ARN, stale):
            run(f"AWS IAM REVOKE {role} FROM '{stale}'", ())
            done.append(f"unmapped role {role} from {stale}")
    present = {str(name) for (name,) in run("SELECT tablename FROM pg_tables WHERE schemaname = %s", (_SCHEMA,))}
    temporal_tables = sorted(present.intersection(schema_tables).difference(CONTROL_TABLES))
    run(f"GRANT USAGE ON SCHEMA {_SCHEMA} TO {role}", ())
    if temporal_tables:
        run(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(temporal_tables)} TO {role}", ())
    # The schema's own bookkeeping is the schema tools' to write: the services only read the version.
    control = [table for table in CONTROL_TABLES if table in present]
    if control:
        run(f"GRANT SELECT ON {', '.join(control)} TO {role}", ())
        run(f"REVOKE INSERT, UPDATE, DELETE ON {', '.join(control)} FROM {role}", ())
    done.append(f"granted {role} reads and writes on {len(temporal_tables)} of Temporal's tables")
    return done
