"""The schema applier: Temporal's versioned schema directories, applied the DSQL way, recorded the Temporal way.

Layout (as `temporal-sql-tool` reads it): `<schema>/schema.sql` is the whole schema at the newest version;
`<schema>/versioned/vX.Y/manifest.json` names each version's files (CurrVersion, MinCompatibleVersion,
Description, SchemaUpdateCqlFiles). Progress is written to `schema_version` and `schema_update_history`
exactly as Temporal writes and reads them, so upstream tools and the server agree with this one.

Every statement runs in its own transaction (DSQL: one DDL per transaction, never DDL with DML); a
conflict (SQLSTATE 40001, OC000/OC001) or a dropped connection retries that statement with jittered
exponential backoff; any other error stops at once, naming the file, the statement and the SQLSTATE.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import psycopg
import sqlparse
from psycopg import errors as pg_errors
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import persistence_endpoint
from temporal_dsql_deploy.database.schema_shape import (
    CATALOG_COLUMNS,
    CATALOG_INDEXES,
    Shape,
    catalog_shape,
    differences,
    shape_of,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import release
from temporal_dsql_deploy.temporal.installed import TemporalServer

BASE_VERSION = "0.0"
RETRY_ATTEMPTS = 8
# Re-running a version that failed part-way meets what its first run already did; like
# temporal-sql-tool, treat "already exists" from a CREATE/ADD and "does not exist" from a DROP as done.
_DUPLICATE = {"42P07", "42701", "42710", "42P06"}  # duplicate table, column, object, schema
_UNDEFINED = {"42P01", "42703", "42704"}  # undefined table, column, object
_CREATES = re.compile(r"^\s*(create|alter\s+table\s+\S+\s+add)\b", re.IGNORECASE)
_DROPS = re.compile(r"^\s*(drop|alter\s+table\s+\S+\s+drop)\b", re.IGNORECASE)
# A migration's INSERT of a fixed row that meets its own row again was applied by an interrupted run.
_INSERTS = re.compile(r"^\s*insert\s+into\b", re.IGNORECASE)
_UNIQUE_VIOLATION = "23505"
_CREATE_TABLE = re.compile(r"^\s*create\s+table\s+(?:if\s+not\s+exists\s+)?(\w+)", re.IGNORECASE)
_ASYNC_INDEX = re.compile(r"^\s*create\s+(?:unique\s+)?index\s+async\b", re.IGNORECASE)

CONTROL_TABLES = ("schema_version", "schema_update_history")
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version_partition INT NOT NULL, db_name VARCHAR(255) NOT NULL, "
    "creation_time TIMESTAMP, curr_version VARCHAR(64), min_compatible_version VARCHAR(64), "
    "PRIMARY KEY (version_partition, db_name))"
)
_HISTORY_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_update_history (version_partition INT NOT NULL, year INT NOT NULL, "
    "month INT NOT NULL, update_time TIMESTAMP NOT NULL, description VARCHAR(255), manifest_md5 VARCHAR(64), "
    "new_version VARCHAR(64), old_version VARCHAR(64), PRIMARY KEY (version_partition, year, month, update_time))"
)
_READ_VERSION = "SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = %s"
_WRITE_VERSION = (
    "INSERT INTO schema_version (version_partition, db_name, creation_time, curr_version, min_compatible_version) "
    "VALUES (0, %s, %s, %s, %s) ON CONFLICT (version_partition, db_name) DO UPDATE SET "
    "creation_time = excluded.creation_time, curr_version = excluded.curr_version, "
    "min_compatible_version = excluded.min_compatible_version"
)
_WRITE_HISTORY = (
    "INSERT INTO schema_update_history (version_partition, year, month, update_time, old_version, new_version, "
    "manifest_md5, description) VALUES (0, %s, %s, %s, %s, %s, %s, %s)"
)

Connect = Callable[[Settings], "psycopg.Connection[tuple[object, ...]]"]


def version_key(version: str) -> tuple[int, ...]:
    """`1.10` sorts after `1.9`; a leading `v` is ignored."""
    try:
        return tuple(int(part) for part in version.removeprefix("v").split("."))
    except ValueError:
        raise DeployError(f"{version!r} is not a schema version", "use numbers like 1.12") from None


@dataclass(frozen=True)
class Statement:
    file: Path
    number: int  # 1-based position in its file
    sql: str

    def describe(self) -> str:
        first_line = " ".join(self.sql.split())[:160]
        return f"{self.file} statement {self.number}: {first_line}"


def split_statements(path: Path) -> list[Statement]:
    """The statements of a SQL file, comments removed (sqlparse knows quoting and dollar-quoting)."""
    text = sqlparse.format(path.read_text(encoding="utf-8"), strip_comments=True)
    pieces = [piece.strip().rstrip(";").strip() for piece in sqlparse.split(text)]
    return [Statement(path, number, sql) for number, sql in enumerate((p for p in pieces if p), start=1)]


@dataclass(frozen=True)
class Migration:
    version: str
    min_compatible_version: str
    description: str
    md5: str
    files: tuple[Path, ...]

    @property
    def statements(self) -> list[Statement]:
        return [statement for path in self.files for statement in split_statements(path)]


class Manifest(BaseModel):
    """A version directory's manifest.json, as temporal-sql-tool reads it (other keys are ignored, as it does)."""

    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True)

    curr_version: str = Field(alias="CurrVersion")
    min_compatible_version: str | None = Field(default=None, alias="MinCompatibleVersion")  # None: CurrVersion
    description: str | None = Field(default=None, alias="Description")
    schema_update_cql_files: list[str] = Field(default_factory=list, alias="SchemaUpdateCqlFiles")


_MANIFEST_SHAPE = (
    'write it as {"CurrVersion": "X.Y", "MinCompatibleVersion": "X.Y", "Description": "...", '
    '"SchemaUpdateCqlFiles": ["file.sql", ...]}'
)


def _manifest_problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def _read_manifest(directory: Path) -> Migration:
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise DeployError(f"{directory} has no manifest.json", "every versioned/vX.Y directory needs one")
    blob = manifest_path.read_bytes()
    try:
        data = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeployError(f"{manifest_path} is not valid JSON: {exc}", "fix the manifest's syntax") from None
    if not isinstance(data, dict):
        raise DeployError(f"{manifest_path} holds a JSON {type(data).__name__}, not an object", _MANIFEST_SHAPE)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_manifest_problem(error) for error in exc.errors())
        raise DeployError(f"{manifest_path} is not a schema manifest: {problems}", _MANIFEST_SHAPE) from None
    version = manifest.curr_version
    try:
        key = version_key(version)
    except DeployError:
        raise DeployError(f"{manifest_path}: CurrVersion {version!r} is not a schema version",
                          "write CurrVersion as numbers like 1.12, as in the directory's name") from None  # fmt: skip
    if key != version_key(directory.name):
        raise DeployError(f"{manifest_path}: CurrVersion {version!r} does not match the directory name",
                          "make the directory vX.Y and CurrVersion X.Y agree")  # fmt: skip
    files = tuple(directory / name for name in manifest.schema_update_cql_files)
    missing = [str(path) for path in files if not path.exists()]
    if missing or not files:
        raise DeployError(f"{manifest_path}: files missing or none listed: {missing}", "fix SchemaUpdateCqlFiles")
    return Migration(
        version=version,
        min_compatible_version=manifest.min_compatible_version or version,
        description=manifest.description or "",
        # The same digest temporal-sql-tool records: md5 of the manifest file as written.
        md5=hashlib.md5(blob, usedforsecurity=False).hexdigest(),
        files=files,
    )


@dataclass(frozen=True)
class SchemaSource:
    """One versioned schema directory."""

    root: Path

    @classmethod
    def resolve(cls, server: Callable[[], TemporalServer], schema_name: str, schema_dir: str,
                default_name: str) -> SchemaSource:  # fmt: skip
        """`--schema-dir`, else `--schema-name` (shipped with this package, else upstream's), else `default_name`."""
        if schema_dir:
            root = Path(schema_dir).resolve()
            root = root.parent if root.name == "versioned" else root
        else:
            name = schema_name or default_name
            shipped = shipped_schemas() / name
            root = shipped if shipped.is_dir() else server().schema_dir / name
        if not (root / "versioned").is_dir():
            raise DeployError(
                f"{root} is not a versioned schema directory (no versioned/ inside)",
                "pass --schema-dir pointing at a directory with versioned/vX.Y/manifest.json",
            )
        return cls(root)

    def migrations(self) -> list[Migration]:
        directories = [d for d in (self.root / "versioned").iterdir() if d.is_dir() and d.name.startswith("v")]
        return sorted((_read_manifest(d) for d in directories), key=lambda m: version_key(m.version))

    @property
    def latest_version(self) -> str:
        migrations = self.migrations()
        return migrations[-1].version if migrations else BASE_VERSION

    @property
    def base_file(self) -> Path:
        return self.root / "schema.sql"

    def tables(self) -> list[str]:
        """Every table the schema ever created (for --overwrite, and the service role's grants)."""
        files = [self.base_file] if self.base_file.exists() else []
        files += [path for migration in self.migrations() for path in migration.files]
        names = {m.group(1).lower() for f in files for s in split_statements(f) if (m := _CREATE_TABLE.match(s.sql))}
        return sorted(names)

    def shape_at(self, version: str) -> Shape:
        """The tables, columns, types and indexes the schema holds at `version`: at the newest, what schema.sql
        makes (what setup and completion apply; upstream's replay also leaves a table its schema.sql lacks), before
        it, its versions up to `version` replayed."""
        if version_key(version) == version_key(self.latest_version) and self.base_file.exists():
            return shape_of(statement.sql for statement in split_statements(self.base_file))
        return shape_of(statement.sql for migration in self.migrations()
                        if version_key(migration.version) <= version_key(version)
                        for statement in migration.statements)  # fmt: skip

    def version_for(self, temporal_version: str) -> str:
        """The version a Temporal release runs on, where this source has it; a source of the user's own that stops
        short of it: its newest."""
        wanted = release(temporal_version).schema_version
        known = {version_key(migration.version) for migration in self.migrations()}
        return wanted if version_key(wanted) in known else self.latest_version


class _TransientError(Exception):
    """A conflict or dropped connection: the statement is retried."""


@dataclass
class ApplyReport:
    from_version: str | None = None
    to_version: str | None = None
    versions_applied: list[str] = field(default_factory=list)
    statements: int = 0
    index_jobs: int = 0
    retries: int = 0
    skipped_as_done: int = 0
    tables_dropped: list[str] = field(default_factory=list)
    tables_completed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Validation:
    version: str | None
    expected: str  # the version the configured Temporal release runs on
    missing_tables: list[str]
    unexpected_tables: list[str]
    drift: list[str]  # columns missing or of another type, indexes missing, in the tables both have

    @property
    def ahead(self) -> bool:
        """At a later version, a later release's (Temporal's own check requires at least its own; the stack's schema
        job refuses it: database/migration.py)."""
        return self.version is not None and version_key(self.version) > version_key(self.expected)

    @property
    def ok(self) -> bool:
        at_least = self.version is not None and version_key(self.version) >= version_key(self.expected)
        return at_least and not self.missing_tables and not self.drift


class Applier:
    """Applies one schema source to the configured database."""

    def __init__(self, settings: Settings, source: SchemaSource, report: Reporter,
                 connect: Connect = dsql.connect) -> None:  # fmt: skip
        self.settings = settings
        self.endpoint = persistence_endpoint(settings)
        self.source = source
        self.report = report
        self._connect = connect
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.result = ApplyReport()

    # --- connection and statement execution -------------------------------------------------
    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect(self.settings)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One statement in its own transaction, retried on conflicts and dropped connections."""
        try:
            return self._run_retrying(sql, params)
        except _TransientError as exc:
            endpoint = self.endpoint.address
            first_line = (str(exc).strip().splitlines() or ["no detail"])[0]
            raise DeployError(
                f"{endpoint} kept failing after {RETRY_ATTEMPTS} attempts ({' '.join(sql.split())[:80]}): {first_line}",
                "check that the database is up (`invoke status`) and reachable, then run the command again; the "
                "schema version shows what was completed",
            ) from None

    def _run_retrying(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        for attempt in Retrying(
            retry=retry_if_exception_type(_TransientError),
            wait=wait_random_exponential(multiplier=0.1, max=5),
            stop=stop_after_attempt(RETRY_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.result.retries += 1
                try:
                    cursor = self._connection().execute(sql, params or None)
                    return cursor.fetchall() if cursor.description else []
                except pg_errors.SerializationFailure as exc:  # 40001: OC000 data / OC001 schema conflict
                    raise _TransientError(str(exc)) from exc
                except psycopg.OperationalError as exc:
                    if self._conn is not None and not self._conn.closed:
                        raise  # the server answered with an error: not a dropped connection
                    self._conn = None
                    raise _TransientError(str(exc)) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _apply(self, statement: Statement) -> None:
        try:
            rows = self.run(statement.sql)
        except psycopg.Error as exc:
            state = exc.sqlstate or "?"
            if (
                (state in _DUPLICATE and _CREATES.match(statement.sql))
                or (state in _UNDEFINED and _DROPS.match(statement.sql))
                or (state == _UNIQUE_VIOLATION and _INSERTS.match(statement.sql))
            ):
                self.result.skipped_as_done += 1
                return
            raise DeployError(
                f"{statement.describe()} failed with SQLSTATE {state}: {str(exc).strip().splitlines()[0]}",
                "fix the statement; the schema version stays at the last version fully applied",
            ) from None
        self.result.statements += 1
        if _ASYNC_INDEX.match(statement.sql) and rows:
            job_id = str(rows[0][0])
            self.report(f"waiting for index job {job_id} ({statement.describe()})")
            try:
                self.run("CALL sys.wait_for_job(%s)", (job_id,))
            except psycopg.Error as exc:
                raise DeployError(
                    f"index job {job_id} of {statement.describe()} failed: {str(exc).strip().splitlines()[0]}",
                    "drop the INVALID index a failed build leaves (DROP INDEX name), then run the command again",
                ) from None
            self.result.index_jobs += 1

    # --- version bookkeeping ----------------------------------------------------------------------
    def current_version(self) -> str | None:
        exists = self.run("SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists or not exists[0][0]:
            return None
        rows = self.run(_READ_VERSION, (self.endpoint.database,))
        return str(rows[0][0]) if rows else None

    def _record(self, old: str, migration_version: str, min_compatible: str, md5: str, description: str) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        database = self.endpoint.database
        self.run(_WRITE_VERSION, (database, now, migration_version, min_compatible))
        self.run(_WRITE_HISTORY, (now.year, now.month, now, old, migration_version, md5, description))
        self.result.to_version = migration_version

    def _lint(self, files: list[Path]) -> None:
        if not self.settings.is_dsql:
            return
        findings = dsql.lint_files(files)
        if findings:
            listed = "\n".join(f"  - {finding}" for finding in findings)
            raise DeployError(f"DSQL would refuse these statements; nothing was applied:\n{listed}",
                              "change the schema files so DSQL accepts them (see the rules above)")  # fmt: skip

    # --- commands -----------------------------------------------------------------------------------
    def setup(self, version: str, *, overwrite: bool) -> ApplyReport:
        """Create the bookkeeping tables and, for the newest version, the whole schema from schema.sql."""
        self.result = ApplyReport()
        latest = self.source.latest_version
        if version_key(version) not in {version_key(BASE_VERSION), version_key(latest)}:
            raise DeployError(
                f"setup --version {version}: schema.sql is the schema at {latest}, so setup takes {BASE_VERSION} "
                f"or {latest}",
                f"run setup --version {BASE_VERSION}, then update --target-version {version}",
            )
        with_base = version_key(version) != version_key(BASE_VERSION)
        self._lint([self.source.base_file] if with_base else [])
        self.result.from_version = self.current_version() if not overwrite else None
        if self.result.from_version is not None:
            if version_key(self.result.from_version) == version_key(version):
                return self.result  # already set up at this version: nothing to do
            raise DeployError(f"the schema is already at version {self.result.from_version}",
                              "use `invoke schema.update`, or `schema.setup --overwrite` to start over")  # fmt: skip
        if overwrite:
            self._drop_tables()
        self.run(_VERSION_TABLE)
        self.run(_HISTORY_TABLE)
        if with_base:
            for statement in split_statements(self.source.base_file):
                self._apply(statement)
        self._record(BASE_VERSION, version, version, "", f"setup of {self.source.root.name} at {version}")
        self.result.versions_applied.append(version)
        return self.result

    def _drop_tables(self) -> None:
        """Drop this schema's tables (and the bookkeeping), one per transaction; other tables are kept."""
        for table in [*self.source.tables(), *CONTROL_TABLES]:
            self.run(f'DROP TABLE IF EXISTS "{table}"')
            self.result.tables_dropped.append(table)

    def update(self, target: str = "") -> ApplyReport:
        """Apply every version after the current one, up to `target` (default: the one the configured Temporal
        release runs on), recording each; at the newest, create any table it defines that the database lacks."""
        self.result = ApplyReport()
        current = self.current_version()
        if current is None:
            raise DeployError("the database has no schema_version", "run `invoke schema.setup --version 0.0` first")
        self.result.from_version = self.result.to_version = current
        migrations = self.source.migrations()
        target = target or self.source.version_for(self.settings.temporal_version)
        if version_key(target) not in {version_key(m.version) for m in migrations}:
            known = ", ".join(m.version for m in migrations)
            raise DeployError(f"--target-version {target} is not in {self.source.root} (versions: {known})",
                              "pick one of the versions listed")  # fmt: skip
        pending = [m for m in migrations
                   if version_key(current) < version_key(m.version) <= version_key(target)]  # fmt: skip
        self._lint([path for migration in pending for path in migration.files])
        for migration in pending:
            self.report(f"applying {migration.version}: {migration.description}")
            for statement in migration.statements:
                self._apply(statement)
            self._record(current, migration.version, migration.min_compatible_version, migration.md5,
                         migration.description)  # fmt: skip
            self.result.versions_applied.append(migration.version)
            current = migration.version
        if version_key(target) == version_key(self.source.latest_version):
            self._complete()
        return self.result

    def _complete(self) -> None:
        """At the newest version, create what its schema defines and the database lacks: the product's DSQL schema
        gains a table within a version (the plugin's value_chunks). schema.sql is applied again, one statement at a
        time; what exists is skipped as done, and nothing is recorded, since the version does not change."""
        validation = self.validate()
        if validation.version != validation.expected or not validation.missing_tables:
            return
        self.report(f"version {validation.expected} lacks {', '.join(validation.missing_tables)}: creating them")
        self._lint([self.source.base_file])
        for statement in split_statements(self.source.base_file):
            self._apply(statement)
        self.result.tables_completed = validation.missing_tables

    def validate(self) -> Validation:
        """The database against the version the configured Temporal release runs on: its tables, their columns and
        types, and its indexes."""
        wanted = self.source.version_for(self.settings.temporal_version)
        expected = self.source.shape_at(wanted)
        found = catalog_shape(self.run(CATALOG_COLUMNS), self.run(CATALOG_INDEXES))
        return Validation(
            version=self.current_version(),
            expected=wanted,
            missing_tables=sorted(set(expected.columns) - set(found.columns)),
            unexpected_tables=sorted(set(found.columns) - set(expected.columns) - set(CONTROL_TABLES)),
            drift=differences(expected, found),
        )


def shipped_schemas() -> Path:
    """The schema directories this package ships (package data, like the templates)."""
    return Path(str(resources.files("temporal_dsql_deploy") / "schemas"))


def default_schema_name(settings: Settings) -> str:
    return "dsql/v12/temporal" if settings.is_dsql else "postgresql/v12/temporal"


def ensure_schema(applier: Applier) -> ApplyReport:
    """Set up the bookkeeping if the database has none, update to the newest version, then create any table that
    version defines and the database lacks."""
    if applier.current_version() is None:
        applier.setup(BASE_VERSION, overwrite=False)
    return applier.update()
