"""Where persistence clients connect, and as whom: the configured endpoint, or the local DSQL stand-in.

With the local DSQL profile (`TEMPORAL_SQL_PLUGIN=dsql` and a loopback host) every client — the schema
tools, `check-dsql`, Temporal itself — goes through dsql-local exactly as it would go to a cluster:
verify-full TLS against the stand-in's CA, an IAM token signed with the stack's local credentials, the
`admin` role and the one `postgres` database. TEMPORAL_SQL_PORT stays the PostgreSQL behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from temporal_dsql_deploy.settings.config import Settings

DSQL_ADMIN_USER = "admin"
DSQL_DATABASE = "postgres"  # a DSQL cluster has exactly one database
# The IAM principal dsql-local says signed a token made with the stack's local credentials (its -iam-principal).
LOCAL_DSQL_PRINCIPAL_ARN = "arn:aws:iam::000000000000:role/dsql-local"
# The database the stand-in keeps DSQL's one `postgres` database in, on the stack's PostgreSQL.
DSQL_LOCAL_BACKEND_DATABASE = "dsql"
# The role dsql-local connects to its backend database as for admin's sessions: no superuser, so that no IAM token
# holder is one. It owns the backend database and what is in it, and may create the custom roles DSQL's admin makes.
# Not named like a schema of that database: search_path's "$user" would put admin's tables in it.
DSQL_LOCAL_BACKEND_ROLE = "dsql_local_admin"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    database: str
    tls: bool
    iam: bool
    region: str | None
    ca_file: Path | None  # None: the public roots
    password: SecretStr | None
    access_key_id: str | None  # IAM tokens: these credentials, else the AWS SDK's default chain
    secret_access_key: SecretStr | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def dsql_local_dir(settings: Settings) -> Path:
    """The stand-in's kept state: its CA (ca.pem for clients) and the stack's local credentials."""
    return settings.stack_dir / "data" / "dsql-local"


def local_ca_file(settings: Settings) -> Path:
    return dsql_local_dir(settings) / "ca.pem"


def persistence_endpoint(settings: Settings) -> Endpoint:
    """The endpoint persistence clients use for these settings."""
    if settings.local_dsql:
        return Endpoint(
            host=settings.temporal_sql_host,
            port=settings.dsql_local_port,
            user=DSQL_ADMIN_USER,
            database=DSQL_DATABASE,
            tls=True,
            iam=True,
            region=settings.active_region,
            ca_file=settings.temporal_sql_tls_ca_file or local_ca_file(settings),
            password=None,
            access_key_id=settings.dsql_local_access_key_id,
            secret_access_key=settings.dsql_local_secret_access_key,
        )
    return Endpoint(
        host=settings.temporal_sql_host,
        port=settings.temporal_sql_port,
        # On DSQL the tools connect as admin, the one role that may change the schema; the services do not use this.
        user=DSQL_ADMIN_USER if settings.is_dsql else settings.temporal_sql_user,
        database=settings.temporal_sql_database,
        tls=settings.temporal_sql_tls_enabled,
        iam=settings.temporal_sql_iam_auth,
        region=settings.aws_region,
        ca_file=settings.temporal_sql_tls_ca_file,
        password=settings.temporal_sql_password,
        access_key_id=None,
        secret_access_key=None,
    )
