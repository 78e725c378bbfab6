"""The project-owned local PostgreSQL: its data directory, its database, and stale membership rows."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import SecretStr

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import dsql_local_dir
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.private_files import write_private
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.runtime.render_supervisor import Layout, as_postgres_user
from temporal_dsql_deploy.settings.config import Settings

TOOL_TIMEOUT_S = 300


PASSWORD_BYTES = 24


def with_local_secrets(settings: Settings, *, create: bool) -> Settings:
    """Settings with the local stack's own secrets: its PostgreSQL password and its DSQL stand-in's credentials."""
    password_file = Layout(settings.stack_dir, settings.search_engine).sql_password
    return with_local_dsql_credentials(with_local_password(settings, password_file, create=create), create=create)


def with_local_dsql_credentials(settings: Settings, *, create: bool) -> Settings:
    """Settings carrying the credentials dsql-local checks IAM tokens against (set by the operator, else
    generated once and kept 0600 beside the stand-in's CA)."""
    if not settings.sql_is_local or settings.dsql_local_access_key_id is not None:
        return settings
    kept = dsql_local_dir(settings) / "credentials.json"
    if not kept.exists():
        if not create:
            return settings
        alphabet = string.ascii_uppercase + string.digits
        key = "LOCAL" + "".join(secrets.choice(alphabet) for _ in range(15))
        credentials = {"access_key_id": key, "secret_access_key": secrets.token_urlsafe(30)}
        write_private(kept, json.dumps(credentials), exclusive=True)
    values = json.loads(kept.read_text(encoding="utf-8"))
    secret = SecretStr(values["secret_access_key"])
    return settings.model_copy(update={"dsql_local_access_key_id": values["access_key_id"],
                                       "dsql_local_secret_access_key": secret})  # fmt: skip


def with_local_password(settings: Settings, password_file: Path, *, create: bool) -> Settings:
    """Settings that carry the local PostgreSQL's password when the stack's own database is used.

    A password set by the operator wins; otherwise the generated one kept (0600) beside the stack's data,
    made on first use when `create`.
    """
    if not settings.sql_is_local or settings.temporal_sql_password is not None:
        return settings
    if not password_file.exists():
        if not create:
            return settings
        write_private(password_file, secrets.token_urlsafe(PASSWORD_BYTES) + "\n", exclusive=True)
    password = password_file.read_text(encoding="utf-8").strip()
    return settings.model_copy(update={"temporal_sql_password": SecretStr(password)})


DELETE_DATA = "delete the stack's data with `invoke down --volumes` (its workflows are lost)"


def check_data_dir(data_dir: Path, major_version: str) -> None:
    """Refuse a data directory PostgreSQL could not start from, before anything starts: one of another major
    version, or one missing the files every cluster has. A directory initdb never finished is made anew instead."""
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        return
    version = version_file.read_text(encoding="utf-8", errors="replace").strip()
    if version != major_version:
        raise DeployError(
            f"the local PostgreSQL data directory {data_dir} was made by PostgreSQL {version!r}, and this stack runs "
            f"PostgreSQL {major_version}",
            f"set POSTGRES_VERSION={version} if that is installed, upgrade the directory with pg_upgrade, or "
            f"{DELETE_DATA}",
        )
    missing = [name for name in ("global/pg_control", "base", "pg_wal") if not (data_dir / name).exists()]
    if missing:
        raise DeployError(f"the local PostgreSQL data directory {data_dir} is damaged: {', '.join(missing)} missing",
                          f"restore it from a backup, or {DELETE_DATA}")  # fmt: skip


def init_data_dir(data_dir: Path, postgres_bin: Path, settings: Settings) -> bool:
    """Create the PostgreSQL cluster directory if missing, with password (scram) authentication; True if created."""
    if (data_dir / "PG_VERSION").exists():
        return False
    if settings.temporal_sql_password is None:
        raise DeployError(f"no password for the local PostgreSQL in {data_dir}", "set TEMPORAL_SQL_PASSWORD")
    shutil.rmtree(data_dir, ignore_errors=True)  # a half-made directory from an interrupted run
    data_dir.mkdir(parents=True, mode=0o700)
    # initdb reads the password from a file: one in a private directory beside the data, for the moment it takes.
    with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".initdb-") as private:
        password_file = Path(private) / "password"
        password_file.write_text(settings.temporal_sql_password.get_secret_value() + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        argv = [str(postgres_bin / "initdb"), "-D", str(data_dir), "-U", settings.temporal_sql_user,
                "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"]  # fmt: skip
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            for path in (data_dir, Path(private), password_file):
                shutil.chown(path, "postgres", "postgres")
            argv = as_postgres_user(argv)
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
        with dsql.connect(settings, database="postgres", direct=True) as admin:
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
