"""The shipped DSQL schema and the translation rules that make it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from temporal_dsql_deploy.database.dsql import lint_files, refused_key_types
from temporal_dsql_deploy.database.dsql_schema import translate
from temporal_dsql_deploy.database.schema import SchemaSource
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
    assert source.latest_version == "1.19"
    assert "executions" in source.tables(current_only=True)
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
