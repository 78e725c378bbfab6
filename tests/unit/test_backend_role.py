"""dsql-local's backend role on a real PostgreSQL: made, given the backend database, and moved into data
directories made before it existed (as the bootstrap superuser owned everything then)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from temporal_dsql_deploy.database.local_postgres import (
    BACKEND_ROLE,
    as_postgres_user,
    backend_password_file,
    ensure_backend_role,
    kept_backend_password,
)
from temporal_dsql_deploy.settings.config import Settings
from tests.integration.conftest import require

MakeSettings = Callable[..., Settings]

BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 25431  # a throwaway cluster's, in the range kept for tests
# One cluster for the module, on a fixed port: nox runs each test file on one xdist worker (--dist=loadfile).
SUPERUSER_PASSWORD = "bootstrap-password-0123456789"


@pytest.fixture(scope="module")
def cluster() -> Iterator[int]:
    """A running PostgreSQL 15 whose bootstrap superuser is `temporal`, as `invoke up` makes it."""
    require((BIN / "initdb").exists(), "PostgreSQL 15 is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        (root / "pw").write_text(SUPERUSER_PASSWORD + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            for path in (root, root / "pw"):
                shutil.chown(path, "postgres", "postgres")
        data = root / "data"
        subprocess.run(as_postgres_user([str(BIN / "initdb"), "-D", str(data), "-U", "temporal",
                                         "--auth=scram-sha-256", f"--pwfile={root / 'pw'}", "--no-sync"]),
                       check=True, capture_output=True)  # fmt: skip
        options = f"-p {PORT} -k {root} -c listen_addresses=127.0.0.1"
        start = [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"]
        subprocess.run(as_postgres_user(start), check=True, capture_output=True)
        try:
            yield PORT
        finally:
            subprocess.run(as_postgres_user([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           check=False, capture_output=True)  # fmt: skip


@pytest.fixture
def settings(cluster: int, make_settings: MakeSettings, tmp_path: Path) -> Iterator[Settings]:
    """The stack's settings for that cluster, with neither the backend role nor its database there yet."""
    made = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_SQL_HOST="127.0.0.1",
                         TEMPORAL_SQL_PORT=str(cluster), TEMPORAL_SQL_USER="temporal",
                         TEMPORAL_SQL_PASSWORD=SUPERUSER_PASSWORD)  # fmt: skip
    _reset(cluster)
    yield made
    _reset(cluster)


def _superuser(port: int, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host="127.0.0.1", port=port, user="temporal", password=SUPERUSER_PASSWORD,
                           dbname=database, autocommit=True)  # fmt: skip


def _reset(port: int) -> None:
    with _superuser(port) as conn:
        conn.execute("DROP DATABASE IF EXISTS dsql")
        conn.execute(f"DROP ROLE IF EXISTS {BACKEND_ROLE}")


def _as_backend(port: int, password: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host="127.0.0.1", port=port, user=BACKEND_ROLE, password=password, dbname="dsql",
                           autocommit=True)  # fmt: skip


def test_a_new_cluster_gets_a_backend_role_that_is_no_superuser(settings: Settings, cluster: int) -> None:
    password = kept_backend_password(settings, create=True)
    assert password is not None
    ensure_backend_role(settings, password)
    ensure_backend_role(settings, password)  # again, as every start does
    with _as_backend(cluster, password) as backend:
        role = backend.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        assert role.fetchone() == (False, True, False)
    with _superuser(cluster) as conn:  # the server was handed a verifier, never the password itself
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (BACKEND_ROLE,)).fetchone()
    assert stored is not None
    assert str(stored[0]).startswith("SCRAM-SHA-256$")
    assert password not in str(stored[0])
    with _as_backend(cluster, password) as backend:
        owner = backend.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'dsql'").fetchone()
        assert owner == (BACKEND_ROLE,)
        # What admin's sessions do through it: make a table, a role, and grant the role rows of the table.
        backend.execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")
        backend.execute("CREATE ROLE app_role WITH LOGIN PASSWORD 'app-password'")
        backend.execute("GRANT SELECT, INSERT ON kv TO app_role")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            backend.execute("COPY kv FROM PROGRAM 'true'")
    try:
        with psycopg.connect(host="127.0.0.1", port=cluster, user="app_role", password="app-password", dbname="dsql",
                             autocommit=True) as app:  # fmt: skip
            app.execute("INSERT INTO kv VALUES (1, 'a')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("CREATE TABLE other (k int PRIMARY KEY)")
    finally:
        with _superuser(cluster, "dsql") as conn:
            conn.execute("DROP OWNED BY app_role")
            conn.execute("DROP ROLE app_role")


def test_a_data_directory_made_before_the_role_is_moved_to_it(settings: Settings, cluster: int) -> None:
    with _superuser(cluster) as conn:
        conn.execute("CREATE DATABASE dsql")
    with _superuser(cluster, "dsql") as old:  # what dsql-local made as the superuser before
        for statement in (
            "CREATE TABLE kv (k bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 1) PRIMARY KEY, v text)",
            "CREATE INDEX kv_v ON kv (v)",
            "CREATE SEQUENCE free_seq CACHE 1",
            "CREATE VIEW kv_view AS SELECT k FROM kv",
            "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
            "CREATE SCHEMA sys",
            "CREATE TABLE sys.jobs (job_id text PRIMARY KEY)",
            "CREATE PROCEDURE sys.wait_for_job(id text) LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA dsql_local",
            "CREATE FUNCTION dsql_local.limits_1() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ):
            old.execute(statement)
    password = kept_backend_password(settings, create=True)
    assert password is not None
    ensure_backend_role(settings, password)
    with _superuser(cluster, "dsql") as conn:
        foreign = conn.execute("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('public', 'sys', 'dsql_local') AND pg_get_userbyid(c.relowner) <> %(role)s
            UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('sys', 'dsql_local') AND pg_get_userbyid(p.proowner) <> %(role)s
            UNION ALL SELECT nspname FROM pg_namespace
             WHERE nspname IN ('sys', 'dsql_local') AND pg_get_userbyid(nspowner) <> %(role)s
            UNION ALL SELECT typname FROM pg_type WHERE typname = 'positive' AND pg_get_userbyid(typowner) <> %(role)s
            UNION ALL SELECT datname FROM pg_database WHERE datname = 'dsql' AND pg_get_userbyid(datdba) <> %(role)s
        """, {"role": BACKEND_ROLE}).fetchall()  # fmt: skip
        assert foreign == []
    with _as_backend(cluster, password) as backend:  # what dsql-local does at every start, now as its own role
        backend.execute("CREATE OR REPLACE PROCEDURE sys.wait_for_job(id text) LANGUAGE sql AS 'SELECT 2'")
        backend.execute("CREATE OR REPLACE FUNCTION dsql_local.limits_1() RETURNS int LANGUAGE sql AS 'SELECT 2'")
        backend.execute("ALTER TABLE kv ADD COLUMN extra text")
        backend.execute("INSERT INTO kv (v) VALUES ('x')")


def test_a_changed_kept_password_is_set_on_the_next_start(settings: Settings, cluster: int) -> None:
    ensure_backend_role(settings, "first-password-0123456789")
    ensure_backend_role(settings, "second-password-0123456789")
    with pytest.raises(psycopg.OperationalError):
        _as_backend(cluster, "first-password-0123456789").close()
    _as_backend(cluster, "second-password-0123456789").close()


def test_the_backend_password_is_kept_private_and_stable(settings: Settings) -> None:
    assert kept_backend_password(settings, create=False) is None
    made = kept_backend_password(settings, create=True)
    assert made is not None
    assert len(made) >= 32
    assert kept_backend_password(settings, create=True) == made
    assert stat.S_IMODE(backend_password_file(settings).stat().st_mode) == 0o600
