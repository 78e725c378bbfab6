"""The schema applier against a real PostgreSQL (a throwaway server of its own), and upstream's tools."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.dsql_schema import releases_translation, write_translation
from temporal_dsql_deploy.database.local_postgres import init_data_dir
from temporal_dsql_deploy.database.schema import Applier, SchemaSource, ensure_schema
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import make_owned_dir
from temporal_dsql_deploy.runtime.installer import Installer, server_module_dir
from temporal_dsql_deploy.runtime.units.postgresql import install_postgresql
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings, load_settings
from temporal_dsql_deploy.settings.releases import RELEASES, Release
from temporal_dsql_deploy.temporal.installed import TemporalServer
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.own_database]
UPSTREAM = "postgresql/v12/temporal"
MakeApplier = Callable[..., Applier]
PASSWORD = secrets.token_urlsafe(16)  # the throwaway server's, like the stack's own: password auth


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_port() -> Iterator[int]:
    """A PostgreSQL server of this test session alone, on a free port."""
    base = load_settings(Path(__file__).resolve().parents[2])
    bin_dir = install_postgresql(base, Installer(print))
    # Not under pytest's tmp (mode 0700, root's): the postgres account must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="tdd-test-pg-"))
    os.chmod(root, 0o755)  # noqa: S103
    if os.geteuid() == 0:  # the server runs as `postgres` and writes its log and socket here
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    owner = base.model_copy(update={"temporal_sql_user": "temporal", "temporal_sql_password": SecretStr(PASSWORD)})
    project_root = Path(__file__).resolve().parents[2]
    make_owned_dir(root, project_root=project_root)  # the product deletes only what it made and marked
    init_data_dir(data, bin_dir, owner, project_root=project_root, owner=root)
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
                    "-l", str(root / "pg.log"), "start"], check=True, capture_output=True, timeout=90)  # fmt: skip
    yield port
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                   check=False, capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> TemporalServer:
    base = load_settings(Path(__file__).resolve().parents[2])
    return TemporalServer(install_temporal_server(base, Installer(print, project_root=PROJECT_ROOT)))


@pytest.fixture
def database_settings(postgres_port: int, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a brand-new database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    clean_env.setenv("TEMPORAL_SQL_PORT", str(postgres_port))
    clean_env.setenv("TEMPORAL_SQL_PASSWORD", PASSWORD)
    clean_env.setenv("TEMPORAL_SQL_PLUGIN", "postgres12_pgx")  # this session's own PostgreSQL, straight
    with dsql.connect(load_settings(tmp_path), database="postgres", direct=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def make(**variables: str) -> Settings:
        for key, value in {"TEMPORAL_SQL_DATABASE": name, **variables}.items():
            clean_env.setenv(key, value)
        return load_settings(tmp_path)

    return make


@pytest.fixture
def make_applier(database_settings: Callable[..., Settings], server: TemporalServer) -> Iterator[MakeApplier]:
    made: list[Applier] = []

    def make(schema_dir: Path | None = None, **variables: str) -> Applier:
        source = SchemaSource(schema_dir) if schema_dir else SchemaSource(server.schema_dir / UPSTREAM)
        # This session's own PostgreSQL, straight: with the dsql plugin the applier still lints the DSQL way.
        applier = Applier(database_settings(**variables), source, lambda _message: None,
                          connect=lambda settings: dsql.connect(settings, direct=True))  # fmt: skip
        made.append(applier)
        return applier

    yield make
    for applier in made:
        applier.close()


def _query(applier: Applier, sql: str) -> list[tuple[object, ...]]:
    return applier.run(sql)


def _history_count(applier: Applier) -> int:
    return int(str(_query(applier, "SELECT count(*) FROM schema_update_history")[0][0]))


def test_stock_schema_matches_upstream_bookkeeping(make_applier: MakeApplier, server: TemporalServer) -> None:
    applier = make_applier()
    result = ensure_schema(applier)
    latest = applier.source.latest_version
    assert result.to_version == latest
    assert applier.current_version() == latest
    history = _history_count(applier)
    assert history == len(applier.source.migrations()) + 1  # each version, plus the setup at 0.0
    settings = applier.settings
    upstream = subprocess.run(
        [str(server.sql_tool), "--ep", "127.0.0.1", "-p", str(settings.temporal_sql_port), "-u", "temporal",
         "--pl", "postgres12", "--db", settings.temporal_sql_database, "update-schema",
         "-d", str(applier.source.root / "versioned")],
        capture_output=True, text=True, check=False, timeout=120, env={**os.environ, "SQL_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert upstream.returncode == 0, upstream.stderr
    assert f"found zero updates from current version {latest}" in upstream.stdout + upstream.stderr
    assert _history_count(applier) == history
    assert applier.validate().ok


def test_applying_the_same_version_twice_is_a_no_op(make_applier: MakeApplier) -> None:
    applier = make_applier()
    ensure_schema(applier)
    history = _history_count(applier)
    again = applier.update()
    assert again.versions_applied == []
    assert again.statements == 0
    assert _history_count(applier) == history
    assert applier.setup(applier.source.latest_version, overwrite=False).versions_applied == []


def test_a_table_the_version_gained_is_created_without_a_new_version(make_applier: MakeApplier) -> None:
    applier = make_applier()
    ensure_schema(applier)
    history = _history_count(applier)
    _query(applier, "DROP TABLE history_tree")  # as a database made before the schema defined it
    assert applier.validate().missing_tables == ["history_tree"]
    result = ensure_schema(applier)
    assert result.tables_completed == ["history_tree"]
    assert result.statements >= 1
    assert applier.validate().ok
    assert _history_count(applier) == history  # the version did not change, so nothing is recorded
    assert ensure_schema(applier).tables_completed == []


def test_validate_names_a_column_of_another_type_and_a_missing_index(make_applier: MakeApplier) -> None:
    applier = make_applier()
    ensure_schema(applier)
    assert applier.validate().ok
    _query(applier, "ALTER TABLE executions ALTER COLUMN next_event_id TYPE INTEGER")
    _query(applier, "DROP INDEX cm_idx_rolehost")
    report = applier.validate()
    assert report.drift == [
        "index cm_idx_rolehost on cluster_membership is missing",
        "executions.next_event_id is integer, the schema says bigint",
    ]
    assert not report.ok


def test_setup_at_the_newest_version_uses_schema_sql(make_applier: MakeApplier) -> None:
    applier = make_applier()
    latest = applier.source.latest_version
    result = applier.setup(latest, overwrite=False)
    assert result.versions_applied == [latest]
    assert applier.validate().ok
    with pytest.raises(DeployError, match=r"setup --version 1\.5"):
        applier.setup("1.5", overwrite=False)


def test_overwrite_drops_only_this_schemas_tables(make_applier: MakeApplier) -> None:
    applier = make_applier()
    ensure_schema(applier)
    _query(applier, "CREATE TABLE operator_notes (id INT PRIMARY KEY)")
    _query(applier, "INSERT INTO namespace_metadata (partition_id, notification_version) VALUES (99, 1)")
    result = applier.setup(applier.source.latest_version, overwrite=True)
    assert "executions" in result.tables_dropped
    assert "operator_notes" not in result.tables_dropped
    assert _query(applier, "SELECT count(*) FROM operator_notes") == [(0,)]
    assert _query(applier, "SELECT count(*) FROM namespace_metadata WHERE partition_id = 99") == [(0,)]


def _versioned(root: Path, versions: dict[str, list[str]]) -> Path:
    for version, statements in versions.items():
        directory = root / "versioned" / f"v{version}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "changes.sql").write_text(";\n".join(statements) + ";\n", encoding="utf-8")
        manifest = (f'{{"CurrVersion": "{version}", "MinCompatibleVersion": "{version}", '
                    f'"Description": "test {version}", "SchemaUpdateCqlFiles": ["changes.sql"]}}')  # fmt: skip
        (directory / "manifest.json").write_text(manifest, encoding="utf-8")
    return root


def test_update_across_versions_and_target_version(make_applier: MakeApplier, tmp_path: Path) -> None:
    versions = {
        "0.1": ["CREATE TABLE a (id INT PRIMARY KEY)"],
        "0.2": ["CREATE TABLE b (id INT PRIMARY KEY)", "ALTER TABLE a ADD COLUMN n TEXT"],
    }
    schema = _versioned(tmp_path / "s", versions)
    applier = make_applier(schema)
    applier.setup("0.0", overwrite=False)
    assert applier.update("0.1").versions_applied == ["0.1"]
    assert applier.current_version() == "0.1"
    assert applier.update().versions_applied == ["0.2"]
    assert applier.current_version() == "0.2"
    with pytest.raises(DeployError, match=r"--target-version 9\.9"):
        applier.update("9.9")


def test_a_failing_statement_names_file_statement_and_sqlstate(make_applier: MakeApplier, tmp_path: Path) -> None:
    versions = {"0.1": ["CREATE TABLE a (id INT PRIMARY KEY)"], "0.2": ["CREATE TABLE b (id INT PRIMARY KEY)"]}
    schema = _versioned(tmp_path / "s", versions)
    applier = make_applier(schema)
    applier.setup("0.0", overwrite=False)
    applier.update("0.1")
    schema_file = schema / "versioned" / "v0.2" / "changes.sql"
    schema_file.write_text(
        "CREATE TABLE b (id INT PRIMARY KEY);\nINSERT INTO b VALUES ('not a number');\n", encoding="utf-8"
    )
    with pytest.raises(DeployError) as caught:
        applier.update()
    message = str(caught.value)
    assert str(schema_file) in message
    assert "statement 2" in message
    assert "SQLSTATE 22P02" in message
    assert applier.current_version() == "0.1"


def test_interrupted_update_resumes(make_applier: MakeApplier, tmp_path: Path) -> None:
    versions = {
        "0.1": ["CREATE TABLE a (id INT PRIMARY KEY)"],
        "0.2": ["CREATE TABLE b (id INT PRIMARY KEY)", "INSERT INTO c VALUES (1)"],
    }
    schema = _versioned(tmp_path / "s", versions)
    applier = make_applier(schema)
    applier.setup("0.0", overwrite=False)
    with pytest.raises(DeployError, match="SQLSTATE 42P01"):
        applier.update()
    assert applier.current_version() == "0.1"  # 0.2 half-done: table b exists, the version did not move
    _versioned(schema, {"0.2": ["CREATE TABLE b (id INT PRIMARY KEY)", "CREATE TABLE c (id INT PRIMARY KEY)",
                                "INSERT INTO c VALUES (1)"]})  # fmt: skip
    resumed = applier.update()
    assert resumed.versions_applied == ["0.2"]
    assert resumed.skipped_as_done == 1  # CREATE TABLE b had already run
    assert _query(applier, "SELECT count(*) FROM c") == [(1,)]


def test_conflicts_are_retried(make_applier: MakeApplier, tmp_path: Path) -> None:
    """A real 40001 from the server (raised by the statement itself twice, as a conflicting commit would)."""
    schema = _versioned(tmp_path / "s", {"0.1": ["CREATE SEQUENCE attempts"]})
    conflict = ("DO $$ BEGIN IF nextval('attempts') < 3 THEN RAISE EXCEPTION "
                "'change conflicts with another transaction (OC000)' USING ERRCODE = '40001'; END IF; "
                "CREATE TABLE after_conflict (id INT PRIMARY KEY); END $$")  # fmt: skip
    _versioned(schema, {"0.2": [conflict]})
    (schema / "versioned" / "v0.2" / "changes.sql").write_text(conflict + ";\n", encoding="utf-8")
    applier = make_applier(schema)
    applier.setup("0.0", overwrite=False)
    result = applier.update()
    assert result.retries == 2
    assert applier.current_version() == "0.2"
    assert _query(applier, "SELECT count(*) FROM after_conflict") == [(0,)]


@pytest.mark.parametrize(
    ("statement", "rule"),
    [("CREATE INDEX a_n ON a (n)", "index_async"), ("TRUNCATE a", "TRUNCATE"),
     ("CREATE TABLE k (id BYTEA PRIMARY KEY)", "key_type")],
)  # fmt: skip
def test_dsql_refusals_stop_before_anything_runs(
    make_applier: MakeApplier, tmp_path: Path, statement: str, rule: str
) -> None:
    versions = {
        "0.1": ["CREATE TABLE a (id INT PRIMARY KEY, n TEXT)"],
        "0.2": ["CREATE TABLE z (id INT PRIMARY KEY)", statement],
    }
    schema = _versioned(tmp_path / "s", versions)
    applier = make_applier(schema, TEMPORAL_SQL_PLUGIN="dsql")
    applier.setup("0.0", overwrite=False)
    applier.update("0.1")
    with pytest.raises(DeployError) as caught:
        applier.update()
    assert rule in str(caught.value)
    assert "nothing was applied" in str(caught.value)
    assert applier.current_version() == "0.1"
    assert _query(applier, "SELECT to_regclass('z') IS NULL") == [(True,)]


def test_shipped_dsql_schema_is_the_translation_of_the_supported_releases(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "schema" / "dsql" / "v12" / "temporal"
    write_translation(releases_translation(server_module_dir), tmp_path)
    generated = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert generated == sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file())
    for name in generated:
        assert (shipped / name).read_text(encoding="utf-8") == (tmp_path / name).read_text(encoding="utf-8"), (
            f"{shipped / name} is stale: run `invoke schema.translate`"
        )


@pytest.mark.parametrize("chosen", RELEASES, ids=[chosen.version for chosen in RELEASES])
def test_each_release_is_listed_with_its_upstreams_schema_and_template_versions(chosen: Release) -> None:
    """The release table says what upstream's module of that release holds (downloaded into the module cache here
    if no build has fetched it yet)."""
    root = server_module_dir(f"v{chosen.version}")
    assert SchemaSource(root / "schema" / UPSTREAM).latest_version == chosen.schema_version
    embedded = (root / "schema" / "embed.go").read_text(encoding="utf-8")
    template = f'"elasticsearch/visibility/versioned/v{chosen.template_version}/index_template_v7.json"'
    assert template in embedded
