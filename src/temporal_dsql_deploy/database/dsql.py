"""Connections to the persistence database: IAM tokens and TLS for DSQL, passwords for PostgreSQL; DSQL SQL checks.

A fresh IAM token is made for every connection, locally (a SigV4 presigned URL, no network call), and
is handed straight to the driver: it is never printed, logged or written anywhere.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import certifi
import psycopg
import sqlparse
from botocore.exceptions import BotoCoreError, NoCredentialsError

from temporal_dsql_deploy.database.endpoint import DSQL_ADMIN_USER, Endpoint, persistence_endpoint
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program
from temporal_dsql_deploy.settings.config import Settings

TOKEN_LIFETIME_S = 900
CONNECT_TIMEOUT_S = 15
LINT_TIMEOUT_S = 120
# Key columns DSQL refuses (supported-data-types); dsql-lint does not check keys, so this does.
_REFUSED_KEY_TYPES = ("bytea", "json", "jsonb", "interval", "timetz")
_CREATE_TABLE = re.compile(r"create\s+table\s+(?:if\s+not\s+exists\s+)?(\w+)\s*\((.*)\)", re.IGNORECASE | re.DOTALL)
_COLUMN = re.compile(r"^\s*(\w+)\s+([a-z]+)", re.IGNORECASE)
_PRIMARY_KEY = re.compile(r"primary\s+key\s*\(([^)]*)\)", re.IGNORECASE)


def auth_token(endpoint: Endpoint) -> str:
    """A fresh IAM token for the endpoint's user (made locally by boto3, with its credentials if it names any):
    DbConnectAdmin for admin, DbConnect for any other role."""
    if not endpoint.region:
        raise DeployError("IAM auth needs AWS_REGION", "set AWS_REGION to the cluster's Region")
    secret = endpoint.secret_access_key.get_secret_value() if endpoint.secret_access_key else None
    import boto3  # noqa: PLC0415  (a fifth of every task's start-up; only token-making tasks pay it)

    try:
        session = boto3.Session(aws_access_key_id=endpoint.access_key_id, aws_secret_access_key=secret)
        client = session.client("dsql", region_name=endpoint.region)
        # botocore adds the token helper to the dsql client at run time; its stubs do not list it.
        generate = (client.generate_db_connect_admin_auth_token if endpoint.user == DSQL_ADMIN_USER  # type: ignore[attr-defined]
                    else client.generate_db_connect_auth_token)  # type: ignore[attr-defined]  # fmt: skip
        token: str = generate(Hostname=endpoint.host, Region=endpoint.region, ExpiresIn=TOKEN_LIFETIME_S)
    except (NoCredentialsError, BotoCoreError) as exc:
        raise DeployError(f"cannot make an IAM auth token: {type(exc).__name__}", _credentials_fix()) from None
    return token


def _credentials_fix() -> str:
    return "configure AWS credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"


def require_local_credentials(settings: Settings, endpoint: Endpoint) -> None:
    """The local DSQL profile signs tokens with the stack's own credentials: refuse clearly before they exist."""
    if settings.local_dsql and endpoint.access_key_id is None:
        kept = endpoint.ca_file.parent if endpoint.ca_file else "STACK_DIR/data/dsql-local"
        if Path(kept, "credentials.json").exists():  # present but unreadable: with_local_dsql_credentials skipped it
            raise DeployError(f"the local DSQL credentials file {kept}/credentials.json is damaged",
                              "run `invoke down`, then `invoke up`, which makes new ones")  # fmt: skip
        raise DeployError(
            f"the local DSQL profile signs its tokens with the stack's local credentials, and there are none yet "
            f"(no {kept}/credentials.json)",
            "start the local stack once with `invoke up`, which makes them; or set TEMPORAL_SQL_PLUGIN=postgres12_pgx",
        )


def connect(
    settings: Settings, database: str | None = None, *, direct: bool = False, role: str | None = None
) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the persistence endpoint: one statement, one transaction.

    `direct`: the PostgreSQL of TEMPORAL_SQL_* itself, even when the local DSQL stand-in fronts it.
    `role`: connect as this database role instead of the endpoint's user (on DSQL, with a DbConnect token).
    """
    endpoint = persistence_endpoint(settings.model_copy(update={"temporal_sql_plugin": "postgres12_pgx"}) if direct
                                    else settings)  # fmt: skip
    if role is not None:
        endpoint = replace(endpoint, user=role)
    if not direct:
        require_local_credentials(settings, endpoint)
    password: str | None = None
    if endpoint.iam:
        password = auth_token(endpoint)
    elif endpoint.password is not None:
        password = endpoint.password.get_secret_value()
    # With TLS: verify-full against the endpoint's CA, else the public roots (Amazon Root CA 1 for DSQL).
    root = str(endpoint.ca_file) if endpoint.ca_file else certifi.where()
    return psycopg.connect(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.user,
        password=password,
        dbname=database or endpoint.database,
        connect_timeout=CONNECT_TIMEOUT_S,
        autocommit=True,
        sslmode="verify-full" if endpoint.tls else "prefer",
        sslrootcert=root if endpoint.tls else None,
    )


@dataclass(frozen=True)
class Finding:
    file: Path
    line: int  # dsql-lint's line number, or the statement number for key checks
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def lint_files(files: list[Path]) -> list[Finding]:
    """What DSQL would refuse in `files`: dsql-lint's diagnostics plus refused key column types."""
    if not files:
        return []
    dsql_lint = shutil.which("dsql-lint")
    if dsql_lint is None:
        raise DeployError("dsql-lint is not installed in this environment", "run `./run invoke ...` to sync it")
    done = run_program([dsql_lint, "--format", "json", *map(str, files)], what="dsql-lint",
                       fix="run it again; if it keeps failing, reinstall with `./run invoke up`",
                       timeout_s=LINT_TIMEOUT_S)  # fmt: skip
    if done.returncode not in (0, 1):
        raise DeployError(f"dsql-lint failed (exit {done.returncode}): {done.stderr.strip()[-500:]}", "see above")
    findings: list[Finding] = [
        Finding(Path(entry["file"]), int(diagnostic.get("line", 0)), f"{diagnostic['rule']}: {diagnostic['message']}")
        for entry in json.loads(done.stdout).get("files", [])
        for diagnostic in entry.get("diagnostics", [])
    ]
    for path in files:
        findings.extend(refused_key_types(path))
    return findings


def refused_key_types(path: Path) -> list[Finding]:
    """Primary-key columns of a type DSQL cannot use in a key (hand-written: dsql-lint skips keys)."""
    text = sqlparse.format(path.read_text(encoding="utf-8"), strip_comments=True)
    findings: list[Finding] = []
    for number, statement in enumerate(sqlparse.split(text), start=1):
        match = _CREATE_TABLE.match(statement.strip())
        if match is None:
            continue
        table, body = match.group(1), match.group(2)
        types: dict[str, str] = {}
        keys: list[str] = []
        for line in body.split(","):
            column = _COLUMN.match(line)
            if column and column.group(1).lower() not in {"primary", "constraint", "unique", "check", "foreign"}:
                types[column.group(1).lower()] = column.group(2).lower()
                if "primary key" in line.lower():
                    keys.append(column.group(1).lower())
        keys += [key.strip().lower() for found in _PRIMARY_KEY.finditer(body) for key in found.group(1).split(",")]
        findings.extend(
            Finding(path, number, f"key_type: {table}.{key} is {types[key]}, which DSQL refuses in a key")
            for key in keys
            if types.get(key) in _REFUSED_KEY_TYPES
        )
    return findings
