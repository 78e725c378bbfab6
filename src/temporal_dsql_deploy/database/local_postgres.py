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
from temporal_dsql_deploy.database.endpoint import dsql_local_dir
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import remove_owned
from temporal_dsql_deploy.private_files import state_writes, write_private
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
    if not password_file.exists():
        if not create:
            return settings
        with state_writes("STACK_DIR", password_file):
            write_private(password_file, secrets.token_urlsafe(PASSWORD_BYTES) + "\n", exclusive=True)
    password = kept_password(password_file)
    if password is None:
        if create:
            raise damaged_password(password_file, None)
        return settings
    return settings.model_copy(update={"temporal_sql_password": SecretStr(password)})


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
