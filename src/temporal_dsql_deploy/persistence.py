"""The project-owned local PostgreSQL: its data directory, its database, and stale membership rows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
from psycopg import sql

from temporal_dsql_deploy import dsql
from temporal_dsql_deploy.config import Settings
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool

TOOL_TIMEOUT_S = 300


def init_data_dir(data_dir: Path, postgres_bin: Path, user: str) -> bool:
    """Create the PostgreSQL cluster directory if missing; True if it was created."""
    if (data_dir / "PG_VERSION").exists():
        return False
    shutil.rmtree(data_dir, ignore_errors=True)  # a half-made directory from an interrupted run
    data_dir.mkdir(parents=True)
    argv = [str(postgres_bin / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"]
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data_dir, "postgres", "postgres")
        argv = ["runuser", "-u", "postgres", "--", *argv]
    try:
        run_tool(argv, what=f"initdb of {data_dir}", fix="see the message above", timeout_s=TOOL_TIMEOUT_S)
    except DeployError:
        shutil.rmtree(data_dir, ignore_errors=True)  # leave nothing half-made behind
        raise
    return True


def _unreachable(settings: Settings, exc: psycopg.OperationalError) -> DeployError:
    first_line = str(exc).strip().splitlines()[0]
    return DeployError(
        f"cannot reach PostgreSQL at {settings.temporal_sql_host}:{settings.temporal_sql_port}: {first_line}",
        "check `invoke status` and `invoke logs postgresql`",
    )


def ensure_database(settings: Settings) -> bool:
    """Create the configured database on the local PostgreSQL if it is missing; True if created."""
    try:
        with dsql.connect(settings, database="postgres") as admin:
            name = settings.temporal_sql_database
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.OperationalError as exc:
        raise _unreachable(settings, exc) from None


def forget_stopped_members(settings: Settings) -> int:
    """Delete membership rows left by a stopped run of the local stack; return how many.

    Only for the project-owned local database, before any Temporal service starts: rows younger than
    20 s would otherwise be used as ringpop seeds, and joining them fails only after 30 s.
    """
    try:
        with dsql.connect(settings) as conn:
            return conn.execute("DELETE FROM cluster_membership").rowcount
    except psycopg.OperationalError as exc:
        raise _unreachable(settings, exc) from None
