"""Local persistence: the project-owned PostgreSQL data directory and Temporal's schema on it.

Until the project's own schema applier exists, the schema is applied with upstream
`temporal-sql-tool` and the upstream `postgresql/v12` schema of the pinned server module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg

from temporal_dsql_deploy.config import Settings
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool

UPSTREAM_SCHEMA = Path("postgresql") / "v12" / "temporal" / "versioned"
TOOL_TIMEOUT_S = 300


def init_data_dir(data_dir: Path, postgres_bin: Path, user: str) -> bool:
    """Create the PostgreSQL cluster directory if missing; True if it was created."""
    if (data_dir / "PG_VERSION").exists():
        return False
    shutil.rmtree(data_dir, ignore_errors=True)  # a half-made directory from an interrupted run
    data_dir.mkdir(parents=True)
    argv = [
        str(postgres_bin / "initdb"),
        "-D",
        str(data_dir),
        "-U",
        user,
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data_dir, "postgres", "postgres")
        argv = ["runuser", "-u", "postgres", "--", *argv]
    try:
        run_tool(argv, what=f"initdb of {data_dir}", fix="see the message above", timeout_s=TOOL_TIMEOUT_S)
    except DeployError:
        shutil.rmtree(data_dir, ignore_errors=True)  # leave nothing half-made behind
        raise
    return True


def _connect(settings: Settings, database: str) -> psycopg.Connection[tuple[object, ...]]:
    password = settings.temporal_sql_password.get_secret_value() if settings.temporal_sql_password else None
    return psycopg.connect(
        host=settings.temporal_sql_host,
        port=settings.temporal_sql_port,
        user=settings.temporal_sql_user,
        password=password,
        dbname=database,
        connect_timeout=10,
        autocommit=True,
    )


def _unreachable(settings: Settings, exc: psycopg.OperationalError) -> DeployError:
    first_line = str(exc).strip().splitlines()[0]
    return DeployError(
        f"cannot reach PostgreSQL at {settings.temporal_sql_host}:{settings.temporal_sql_port}: {first_line}",
        "check `invoke status` and `invoke logs postgresql`",
    )


def _sql_tool(tool: Path, settings: Settings, *args: str) -> None:
    env = {}
    if settings.temporal_sql_password:  # the password travels in the environment, never in argv
        env["SQL_PASSWORD"] = settings.temporal_sql_password.get_secret_value()
    argv = [
        str(tool), "--ep", settings.temporal_sql_host, "-p", str(settings.temporal_sql_port),
        "-u", settings.temporal_sql_user, "--pl", "postgres12", "--db", settings.temporal_sql_database, *args,
    ]  # fmt: skip
    run_tool(argv, what=f"temporal-sql-tool {args[0]}", fix="check `invoke logs postgresql`", timeout_s=TOOL_TIMEOUT_S,
             env=env)  # fmt: skip


def forget_stopped_members(settings: Settings) -> int:
    """Delete membership rows left by a stopped run of the local stack; return how many.

    Only for the project-owned local database, before any Temporal service starts: rows younger than
    20 s would otherwise be used as ringpop seeds, and joining them fails only after 30 s.
    """
    try:
        with _connect(settings, settings.temporal_sql_database) as conn:
            return conn.execute("DELETE FROM cluster_membership").rowcount
    except psycopg.OperationalError as exc:
        raise _unreachable(settings, exc) from None


def setup_upstream_schema(settings: Settings, sql_tool: Path, schema_root: Path) -> str:
    """Create the database and bring Temporal's schema to the newest version; return the version."""
    try:
        with _connect(settings, "postgres") as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (settings.temporal_sql_database,)
            ).fetchone()
        if exists is None:
            _sql_tool(sql_tool, settings, "create-database")
        with _connect(settings, settings.temporal_sql_database) as conn:
            versioned = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not (versioned and versioned[0]):
            _sql_tool(sql_tool, settings, "setup-schema", "-v", "0.0")
        _sql_tool(sql_tool, settings, "update-schema", "-d", str(schema_root / UPSTREAM_SCHEMA))
        with _connect(settings, settings.temporal_sql_database) as conn:
            row = conn.execute("SELECT curr_version FROM schema_version").fetchone()
    except psycopg.OperationalError as exc:
        raise _unreachable(settings, exc) from None
    if row is None:
        raise DeployError("schema_version is empty after update-schema", "run `invoke schema.setup` again")
    return str(row[0])
