"""The shipped DSQL schema and the translation rules that make it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from temporal_dsql_deploy.database.dsql import lint_files, refused_key_types
from temporal_dsql_deploy.database.dsql_schema import RefusedStepError, Step, Translation, translate, write_translation
from temporal_dsql_deploy.database.schema import SchemaSource
from temporal_dsql_deploy.settings.releases import LATEST, RELEASES
from tests.conftest import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "schema" / "dsql" / "v12" / "temporal"


def _shipped_files() -> list[Path]:
    return sorted(SHIPPED.rglob("*.sql"))


def test_every_shipped_dsql_file_passes_dsql_lint_and_the_key_check() -> None:
    files = _shipped_files()
    assert len(files) >= 2
    assert lint_files(files) == []


def test_key_check_catches_what_dsql_lint_misses(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE t (a BYTEA NOT NULL, b INT, PRIMARY KEY (a, b));\n", encoding="utf-8")
    assert [finding.message for finding in refused_key_types(bad)] == [
        "key_type: t.a is bytea, which DSQL refuses in a key"
    ]


def test_shipped_schema_is_a_versioned_source_at_upstreams_version() -> None:
    source = SchemaSource(SHIPPED)
    assert source.latest_version == LATEST.schema_version
    assert "executions" in source.shape_at(source.latest_version).columns
    assert "schema_version" not in source.tables()


def test_a_manifest_is_read_as_temporal_sql_tool_reads_it(tmp_path: Path) -> None:
    version = tmp_path / "versioned" / "v1.2"
    version.mkdir(parents=True)
    (version / "a.sql").write_text("CREATE TABLE t (id INT PRIMARY KEY);\n", encoding="utf-8")
    manifest = b'{"CurrVersion": 1.2, "SchemaUpdateCqlFiles": ["a.sql"], "Other": true}\n'
    (version / "manifest.json").write_bytes(manifest)
    [migration] = SchemaSource(tmp_path).migrations()
    # A number is read as its text; MinCompatibleVersion defaults to CurrVersion; other keys are ignored.
    assert (migration.version, migration.min_compatible_version, migration.description) == ("1.2", "1.2", "")
    assert migration.files == (version / "a.sql",)
    assert migration.md5 == hashlib.md5(manifest, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize(
    ("upstream", "expected", "reason"),
    [
        ("CREATE TABLE t (id BYTEA NOT NULL, data BYTEA, PRIMARY KEY (id));", "id UUID NOT NULL", "16-byte id"),
        ("CREATE TABLE t (task_queue_id BYTEA NOT NULL, PRIMARY KEY (task_queue_id));",
         "task_queue_id VARCHAR(1024) NOT NULL", "variable-length"),
        ("CREATE TABLE t (k INT NOT NULL, id BIGSERIAL NOT NULL UNIQUE, PRIMARY KEY (k, id));",
         "CREATE UNIQUE INDEX ASYNC t_id_key ON t (id)", "no SERIAL"),
        ("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, CONSTRAINT one CHECK (id = 0));", "id INT NOT NULL PRIMARY KEY",
         "no CHECK"),
        ("CREATE INDEX t_k ON t (k);", "CREATE INDEX ASYNC t_k ON t (k)", "asynchronously"),
    ],
)  # fmt: skip
def test_translation_rules(upstream: str, expected: str, reason: str) -> None:
    sql, changes = translate(upstream)
    assert expected in sql
    assert any(reason in change.reason for change in changes)


def test_non_key_bytea_columns_stay_bytea() -> None:
    sql, changes = translate("CREATE TABLE t (id BYTEA NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (id));")
    assert "data BYTEA NOT NULL" in sql
    assert [change.item for change in changes] == ["id"]


def _upstream_step(root: Path, version: str, statements: str) -> Step:
    directory = root / f"v{version}"
    directory.mkdir(parents=True)
    (directory / "step.sql").write_text(statements, encoding="utf-8")
    return Step(version, "1.0", f"upstream's {version}", (directory / "step.sql",))


def _translation(tmp_path: Path, *steps: tuple[str, str]) -> Translation:
    baseline = tmp_path / "upstream" / "schema.sql"
    baseline.parent.mkdir(parents=True)
    baseline.write_text("CREATE TABLE a (id BYTEA NOT NULL, PRIMARY KEY (id));\n", encoding="utf-8")
    made = tuple(_upstream_step(tmp_path / "upstream", version, sql) for version, sql in steps)
    return Translation(baseline, "1.0", "upstream 1.0", made, "upstream 1.2")


def test_each_upstream_version_after_the_baseline_is_a_step_of_its_own(tmp_path: Path) -> None:
    target = tmp_path / "dsql"
    created = "CREATE TABLE b (run_id BYTEA NOT NULL, PRIMARY KEY (run_id));\n"
    altered = "ALTER TABLE a ADD COLUMN note TEXT;\nCREATE INDEX a_note ON a (note);\n"
    write_translation(_translation(tmp_path, ("1.1", created), ("1.2", altered)), target)
    migrations = SchemaSource(target).migrations()
    assert [m.version for m in migrations] == ["1.0", "1.1", "1.2"]
    baseline, step_one, step_two = ([s.sql for s in m.statements] for m in migrations)
    assert [sql.split("(")[0].strip() for sql in baseline] == ["CREATE TABLE a", "CREATE TABLE value_chunks"]
    assert [sql.split("(")[0].strip() for sql in step_one] == ["CREATE TABLE b"]
    assert "run_id UUID NOT NULL" in step_one[0]
    assert step_two == ["ALTER TABLE a ADD COLUMN note TEXT", "CREATE INDEX ASYNC a_note ON a (note)"]
    assert [m.min_compatible_version for m in migrations] == ["1.0", "1.0", "1.0"]
    assert sorted(SchemaSource(target).shape_at("1.0").columns) == ["a", "value_chunks"]
    assert SchemaSource(target).shape_at("1.2").columns["a"] == {"id": "uuid", "note": "text"}
    whole = (target / "schema.sql").read_text(encoding="utf-8")
    assert all(table in whole for table in ("CREATE TABLE a", "CREATE TABLE b", "ADD COLUMN note"))
    assert "## 1.1: upstream's 1.1" in (target / "CHANGES.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("ALTER TABLE a ALTER COLUMN id TYPE VARCHAR(255);", "changes the type of a.id"),
        ("ALTER TABLE ONLY a ALTER id SET DATA TYPE TEXT;", "changes the type of a.id"),
        ("ALTER TABLE a ADD COLUMN n BIGINT NOT NULL DEFAULT 0;", "adds a.n with an inline NOT NULL"),
        ("ALTER TABLE a ADD IF NOT EXISTS n BIGINT DEFAULT 0;", "adds a.n with an inline DEFAULT"),
        ("ALTER TABLE a ADD COLUMN n TEXT, ADD COLUMN m INT UNIQUE;", "adds a.m with an inline UNIQUE"),
        ("ALTER TABLE a ADD CONSTRAINT one UNIQUE (n);", "adds a constraint to a"),
        ("ALTER TABLE a ADD CONSTRAINT c CHECK (n IS NOT NULL);", "adds a constraint to a"),
        ("DO $$ BEGIN PERFORM 1; END $$;", "PL/pgSQL"),
    ],
)
def test_a_step_dsql_would_refuse_is_refused_when_translated_and_nothing_is_written(
    tmp_path: Path, statement: str, refusal: str
) -> None:
    source = _translation(tmp_path, ("1.1", "CREATE TABLE b (k INT PRIMARY KEY);\n"), ("1.2", statement))
    with pytest.raises(RefusedStepError) as caught:
        write_translation(source, tmp_path / "dsql")
    assert "upstream schema 1.2 (step.sql)" in str(caught.value)
    assert refusal in str(caught.value)
    assert caught.value.plan
    assert not (tmp_path / "dsql").exists()


def test_what_dsql_runs_passes_and_an_id_column_added_later_is_a_uuid(tmp_path: Path) -> None:
    step = "ALTER TABLE a ADD COLUMN n INT, ALTER COLUMN n SET DEFAULT 0, ADD COLUMN run_id BYTEA NULL;\n"
    changes = write_translation(_translation(tmp_path, ("1.1", step)), tmp_path / "dsql")
    [altered] = [s.sql for s in SchemaSource(tmp_path / "dsql").migrations()[-1].statements]
    assert altered == "ALTER TABLE a ADD COLUMN n INT, ALTER COLUMN n SET DEFAULT 0, ADD COLUMN run_id UUID NULL"
    assert ("a", "run_id", "BYTEA", "UUID") in [(c.table, c.item, c.upstream, c.dsql) for c in changes]


def test_a_release_runs_on_its_own_schema_version_or_a_users_schema_on_its_newest(tmp_path: Path) -> None:
    shipped = SchemaSource(SHIPPED)
    assert [shipped.version_for(chosen.version) for chosen in RELEASES] == [c.schema_version for c in RELEASES]
    own = tmp_path / "own"
    for version in ("0.1", "0.2"):
        (own / "versioned" / f"v{version}").mkdir(parents=True)
        (own / "versioned" / f"v{version}" / "a.sql").write_text(f"CREATE TABLE t{version[-1]} (k INT);\n")
        (own / "versioned" / f"v{version}" / "manifest.json").write_text(
            f'{{"CurrVersion": "{version}", "SchemaUpdateCqlFiles": ["a.sql"]}}'
        )
    assert SchemaSource(own).version_for(LATEST.version) == "0.2"
    assert sorted(SchemaSource(own).shape_at("0.1").columns) == ["t1"]
