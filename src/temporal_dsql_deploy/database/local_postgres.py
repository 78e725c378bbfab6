"""The project-owned local PostgreSQL: its data directory, its database, and stale membership rows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import ssl
import string
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import SecretStr

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import DSQL_LOCAL_BACKEND_DATABASE, DSQL_LOCAL_BACKEND_ROLE, dsql_local_dir
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import remove_owned
from temporal_dsql_deploy.private_files import state_writes, write_private
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.service_account import SERVICE_USER
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import Layout

POSTGRES_USER = "postgres"  # Debian's package's user, which PostgreSQL runs as when the stack starts as root


def as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: switch to `postgres` with setpriv, which execs the server itself
    (unlike runuser, which forks), so the supervisor's PID is the postmaster and signals reach it. Its one other
    group is the services' (service_account.py), which may pass through STACK_DIR to the data."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", f"--groups={SERVICE_USER}",
            "--no-new-privs", "--", *argv]  # fmt: skip


TOOL_TIMEOUT_S = 300


PASSWORD_BYTES = 24


def with_local_secrets(settings: Settings, *, create: bool) -> Settings:
    """Settings with the local stack's own secrets: its PostgreSQL password and its DSQL stand-in's credentials."""
    password_file = Layout(settings.stack_dir, settings.search_engine).sql_password
    settings = with_local_dsql_credentials(with_local_password(settings, password_file, create=create), create=create)
    if settings.sql_is_local and settings.dsql_local_backend_password is None:
        backend_password = kept_backend_password(settings, create=create)
        if backend_password is not None:
            settings = settings.model_copy(update={"dsql_local_backend_password": SecretStr(backend_password)})
    return settings


def with_local_dsql_credentials(settings: Settings, *, create: bool) -> Settings:
    """Settings carrying the credentials dsql-local checks IAM tokens against (set by the operator, else
    generated once and kept 0600 beside the stand-in's CA).

    Damaged kept credentials count as none: `repair_local_secrets` replaces them before the stack starts.
    """
    if not settings.sql_is_local or settings.dsql_local_access_key_id is not None:
        return settings
    kept = dsql_local_credentials_file(settings)
    if not kept.exists():
        if not create:
            return settings
        alphabet = string.ascii_uppercase + string.digits
        key = "LOCAL" + "".join(secrets.choice(alphabet) for _ in range(15))
        credentials = {"access_key_id": key, "secret_access_key": secrets.token_urlsafe(30)}
        with state_writes("STACK_DIR", kept):
            write_private(kept, json.dumps(credentials), exclusive=True)
    values = kept_credentials(kept)
    if values is None:
        if create:
            raise _damaged_credentials(kept)
        return settings
    return settings.model_copy(update={"dsql_local_access_key_id": values[0],
                                       "dsql_local_secret_access_key": SecretStr(values[1])})  # fmt: skip


def dsql_local_credentials_file(settings: Settings) -> Path:
    return dsql_local_dir(settings) / "credentials.json"


def kept_credentials(kept: Path) -> tuple[str, str] | None:
    """The kept access key id and secret key; None when the file is damaged (empty, truncated, not ours)."""
    try:
        values = json.loads(_read_kept(kept, "or delete it while the stack is stopped: new ones are made"))
        key, secret = values["access_key_id"], values["secret_access_key"]
    except (ValueError, KeyError, TypeError):  # not JSON, not UTF-8, not an object, or a key missing
        return None
    return (key, secret) if isinstance(key, str) and isinstance(secret, str) and key and secret else None


def _damaged_credentials(kept: Path) -> DeployError:
    return DeployError(f"the local DSQL credentials file {kept} is damaged (not the JSON `invoke up` wrote)",
                       f"stop the stack with `invoke down` (same --runtime), delete {kept}, and start it again: "
                       "new ones are made")  # fmt: skip


def with_local_password(settings: Settings, password_file: Path, *, create: bool) -> Settings:
    """Settings that carry the local PostgreSQL's password when the stack's own database is used.

    A password set by the operator wins; otherwise the generated one kept (0600) beside the stack's data,
    made on first use when `create`. A damaged kept password counts as none unless `create`: then it is named.
    """
    if not settings.sql_is_local or settings.temporal_sql_password is not None:
        return settings
    password = _generated_once(password_file, create=create)
    if password is None:
        if create and password_file.exists():
            raise damaged_password(password_file, None)
        return settings
    return settings.model_copy(update={"temporal_sql_password": SecretStr(password)})


def _generated_once(kept: Path, *, create: bool) -> str | None:
    """The password kept (0600) in `kept`, generated there first when `create`; None when there is none or it is
    damaged."""
    if not kept.exists():
        if not create:
            return None
        with state_writes("STACK_DIR", kept):
            write_private(kept, secrets.token_urlsafe(PASSWORD_BYTES) + "\n", exclusive=True)
    return kept_password(kept)


def kept_password(password_file: Path) -> str | None:
    """The kept password; None when the file is damaged: empty, not text, or more than one line."""
    try:
        password = _read_kept(password_file, UNREADABLE_PG_LOGIN).decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return password if password and password.isprintable() else None


# What makes an unreadable kept PostgreSQL password usable again.
UNREADABLE_PG_LOGIN = (
    "holding the local PostgreSQL's password, or set TEMPORAL_SQL_PASSWORD to it (delete the file if the stack "
    "has no data yet: a new password is made)"
)


def _read_kept(kept: Path, otherwise: str) -> bytes:
    """A generated secret's file; one that cannot be read (a directory, no permission) is named, never a traceback."""
    try:
        return kept.read_bytes()
    except OSError as exc:
        raise DeployError(f"the generated secret file {kept} cannot be read ({exc.strerror})",
                          f"make {kept} a file the user running invoke can read, {otherwise}") from None  # fmt: skip


def damaged_password(password_file: Path, cluster: Path | None) -> DeployError:
    used = f"; the local PostgreSQL in {cluster} was set up with it, so it cannot be made anew" if cluster else ""
    return DeployError(f"the local PostgreSQL password file {password_file} is damaged (empty or not text){used}",
                       RESTORE_PASSWORD)  # fmt: skip


# A role's password as pg_authid keeps it, in the catalog's file: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:...
_SCRAM_VERIFIER = re.compile(rb"SCRAM-SHA-256\$(\d{1,7}):([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*):")
PG_AUTHID_FILE = "global/1260"  # pg_authid is a mapped shared catalog: its file number never changes


def matches_cluster(cluster: Path, password: str) -> bool | None:
    """Whether `password` is a password of a role of `cluster` (RFC 5802's StoredKey, checked offline against the
    verifiers in pg_authid's file); None when that cannot be told (no verifier found, or a non-ASCII password,
    which PostgreSQL normalises with SASLprep first)."""
    try:
        verifiers = _SCRAM_VERIFIER.findall((cluster / PG_AUTHID_FILE).read_bytes())
    except OSError:
        return None
    if not verifiers or not password.isascii():
        return None
    # Hand-written (RFC 5802 section 3, a few lines): no library checks a stored SCRAM verifier offline.
    checked = False
    for iterations, salt, stored_key in verifiers:
        try:
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
            expected = base64.b64decode(stored_key)
        except ValueError:  # bytes of a page that only look like a verifier
            continue
        checked = True
        if hmac.compare_digest(hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest(), expected):
            return True
    return False if checked else None


CA_FILES = ("ca.pem", "ca-key.pem")  # dsql-local's CA certificate and key (dsql-local/internal/tlsca)


def ca_problem(directory: Path) -> str | None:
    """Why dsql-local could not use its kept CA (not PEM, key and certificate not a pair); None: usable or absent."""
    certificate, key = (directory / name for name in CA_FILES)
    if not (certificate.exists() and key.exists()):
        return None  # dsql-local makes a missing pair anew
    try:
        # A password callback, so an encrypted key is refused instead of prompted for on the terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(certificate, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the CA's key does not belong to its certificate"
        if b"ENCRYPTED" in key.read_bytes():  # PEM's "Proc-Type: 4,ENCRYPTED" or PKCS#8's "ENCRYPTED PRIVATE KEY"
            return "the CA's key is encrypted (dsql-local reads it without a passphrase)"
        return "the CA's certificate or key is not PEM"
    return None


DELETE_DATA = "delete the stack's data with `invoke down --volumes` (its workflows are lost)"
RESTORE_PASSWORD = f"restore that file, set TEMPORAL_SQL_PASSWORD to the password, or {DELETE_DATA}"


CLUSTER_FILES = ("global/pg_control", "base", "pg_wal")  # every cluster has them, PG_VERSION beside them


def check_data_dir(data_dir: Path, major_version: str) -> None:
    """Refuse a data directory PostgreSQL could not start from, before anything starts: one of another major
    version, one missing the files every cluster has, or one without PG_VERSION that is not `_unfinished`."""
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        _check_unfinished(data_dir)
        return
    version = version_file.read_text(encoding="utf-8", errors="replace").strip()
    if version != major_version:
        raise DeployError(
            f"the local PostgreSQL data directory {data_dir} was made by PostgreSQL {version!r}, and this stack runs "
            f"PostgreSQL {major_version}",
            f"set POSTGRES_VERSION={version} if that is installed, upgrade the directory with pg_upgrade, or "
            f"{DELETE_DATA}",
        )
    missing = [name for name in CLUSTER_FILES if not (data_dir / name).exists()]
    if missing:
        raise _damaged_data_dir(data_dir, f"{', '.join(missing)} missing")


def _check_unfinished(data_dir: Path) -> None:
    """Refuse a data directory without PG_VERSION unless it is absent or unfinished, which `init_data_dir` makes
    anew: a directory holding no file at all (only directories, as `init_data_dir` makes it and an initdb stopped
    early leaves it) and none of the cluster's CLUSTER_FILES. Anything else may be a cluster that lost a file."""
    if not data_dir.exists() and not data_dir.is_symlink():
        return
    present = [name for name in CLUSTER_FILES if (data_dir / name).exists()]
    if present:
        raise _damaged_data_dir(data_dir, f"PG_VERSION missing, but {', '.join(present)} present")
    if data_dir.is_symlink() or not data_dir.is_dir():
        raise _damaged_data_dir(data_dir, "not a directory")
    kept = next((path for path in data_dir.rglob("*") if path.is_symlink() or not path.is_dir()), None)
    if kept is not None:
        raise _damaged_data_dir(data_dir, f"PG_VERSION missing, but it holds {kept.relative_to(data_dir)}")


def _damaged_data_dir(data_dir: Path, problem: str) -> DeployError:
    return DeployError(f"the local PostgreSQL data directory {data_dir} is damaged: {problem}",
                       f"restore it from a backup, or {DELETE_DATA}")  # fmt: skip


def init_data_dir(data_dir: Path, postgres_bin: Path, settings: Settings, *, project_root: Path, owner: Path) -> bool:
    """Create the PostgreSQL cluster directory if missing, with password (scram) authentication; True if created.

    `owner`: the product's marked directory `data_dir` lies in (initdb needs `data_dir` empty: it carries no marker).
    """
    if (data_dir / "PG_VERSION").exists():
        return False
    _check_unfinished(data_dir)
    if settings.temporal_sql_password is None:
        raise DeployError(f"no password for the local PostgreSQL in {data_dir}", "set TEMPORAL_SQL_PASSWORD")
    with state_writes("STACK_DIR", data_dir):
        remove_owned(data_dir, project_root=project_root, owner=owner)  # an unfinished one of an interrupted run
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
                remove_owned(data_dir, project_root=project_root, owner=owner)  # leave nothing half-made behind
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


BACKEND_ROLE = DSQL_LOCAL_BACKEND_ROLE
# The schemas dsql-local's backend database holds: DSQL's `public`, its `sys` views and dsql-local's own.
BACKEND_SCHEMAS = ("public", "sys", "dsql_local")


def backend_password_file(settings: Settings) -> Path:
    """Beside the local PostgreSQL's own password, shared by the data of every engine as that one is."""
    return Layout(settings.stack_dir, settings.search_engine).all_data / "dsql-local-backend.password"


def kept_backend_password(settings: Settings, *, create: bool) -> str | None:
    """The backend role's password: generated once and kept 0600 as the local PostgreSQL's own password is;
    None when there is none yet and not `create`, or it is damaged."""
    kept = backend_password_file(settings)
    password = _generated_once(kept, create=create)
    if password is None and create:
        raise DeployError(f"the dsql-local backend password file {kept} is damaged (empty or not text)",
                          f"delete {kept} while the stack is stopped: a new one is made and set on start")  # fmt: skip
    return password


def ensure_backend_role(settings: Settings, password: str, database_name: str = DSQL_LOCAL_BACKEND_DATABASE) -> None:
    """Make the local PostgreSQL ready for dsql-local, as its bootstrap superuser: the backend role (created, or
    given `password` and its attributes again), the backend database owned by it, and, for a data directory
    made before the role existed, every schema, table, view, sequence and routine of that database moved to it.

    Ownership moves object by object (REASSIGN OWNED would also try the superuser's system objects, which
    cannot move). The Temporal database of the PostgreSQL profile is left as it is.
    """
    role, database = sql.Identifier(BACKEND_ROLE), sql.Identifier(database_name)
    attributes_sql = "LOGIN NOSUPERUSER CREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD {}"
    try:
        with dsql.connect(settings, database="postgres", direct=True) as admin:
            # The SCRAM verifier, made by libpq here, so the password itself never reaches the server's log.
            verifier = admin.pgconn.encrypt_password(password.encode(), BACKEND_ROLE.encode(), b"scram-sha-256")
            attributes = sql.SQL(attributes_sql).format(sql.Literal(verifier.decode()))
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BACKEND_ROLE,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            admin.execute(sql.SQL(verb + " ROLE {} WITH ").format(role) + attributes)
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database_name,)).fetchone():
                admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))
            else:
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        with dsql.connect(settings, database=database_name, direct=True) as backend:
            for statement in _ownership_moves(backend):
                backend.execute(statement)
            # Custom roles may not create objects in public (PostgreSQL 15's default, made sure of for older clusters).
            backend.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    except psycopg.OperationalError as exc:
        raise _unreachable(settings, exc) from None


# What of the backend database's schemas is not the backend role's yet: the schemas themselves (public stays with
# pg_database_owner where PostgreSQL 15 put it), relations (a sequence owned by a column moves with its table,
# indexes with theirs), routines, and free-standing types (domains, enums, ranges; a table's row type and a
# range's multirange move with them).
_NOT_OWNED = """
SELECT 'SCHEMA', format('%%I', n.nspname) FROM pg_namespace n
 WHERE n.nspname = ANY(%(schemas)s) AND n.nspowner <> %(role)s::regrole AND n.nspowner <> 'pg_database_owner'::regrole
UNION ALL
SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relowner <> %(role)s::regrole
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 'ROUTINE', p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND p.proowner <> %(role)s::regrole
UNION ALL
SELECT 'TYPE', t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('d', 'e', 'r') AND t.typowner <> %(role)s::regrole
"""


def _ownership_moves(backend: psycopg.Connection[tuple[object, ...]]) -> list[sql.Composed]:
    rows = backend.execute(_NOT_OWNED, {"schemas": list(BACKEND_SCHEMAS), "role": BACKEND_ROLE}).fetchall()
    # The names come quoted from the catalog (regclass, regprocedure, regtype and %I quote what needs it).
    return [sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(str(kind)), sql.SQL(str(name)),
                                                      sql.Identifier(BACKEND_ROLE))
            for kind, name in rows]  # fmt: skip


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
