"""The shape a schema version gives a database, replayed from its DDL, and what differs in a catalog."""

from __future__ import annotations

import pytest

from temporal_dsql_deploy.database.schema_shape import canonical_type, catalog_shape, differences, shape_of


@pytest.mark.parametrize(
    ("spelled", "catalog"),
    [("INT", "integer"), ("BIGSERIAL", "bigint"), ("VARCHAR(255)", "character varying(255)"),
     ("character varying( 16 )", "character varying(16)"), ("TIMESTAMP", "timestamp without time zone"),
     ("BYTEA", "bytea"), ("UUID", "uuid"), ("NUMERIC(10, 2)", "numeric")],
)  # fmt: skip
def test_a_type_is_named_as_the_catalog_names_it(spelled: str, catalog: str) -> None:
    assert canonical_type(spelled) == catalog


def test_ddl_replays_into_tables_columns_and_indexes() -> None:
    shape = shape_of([
        "CREATE TABLE t (id BYTEA NOT NULL, n INT DEFAULT 0, note VARCHAR(16) NULL, PRIMARY KEY (id),\n"
        "  CONSTRAINT c CHECK (n > 0))",
        "ALTER TABLE t ADD COLUMN a BIGINT NULL, ADD b TEXT",
        "ALTER TABLE t DROP note",
        "ALTER TABLE t ALTER COLUMN n TYPE BIGINT USING n::bigint",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0",
        "CREATE UNIQUE INDEX ASYNC t_a ON t (a)",
        "CREATE TABLE gone (k INT PRIMARY KEY)",
        "DROP TABLE gone",
        "INSERT INTO t (id) VALUES ('x')",
    ])  # fmt: skip
    assert shape.columns == {"t": {"id": "bytea", "n": "bigint", "a": "bigint", "b": "text"}}
    assert shape.indexes == {"t": {"t_a"}}


def test_what_the_catalog_lacks_or_has_otherwise_is_named() -> None:
    expected = shape_of(["CREATE TABLE t (id UUID PRIMARY KEY, n BIGINT, note VARCHAR(16))",
                         "CREATE INDEX ASYNC t_n ON t (n)", "CREATE TABLE other (k INT PRIMARY KEY)"])  # fmt: skip
    columns = [("t", "id", "uuid", None), ("t", "n", "integer", None), ("t", "extra", "text", None)]
    found = catalog_shape(columns, [("t", "t_pkey")])
    assert differences(expected, found) == [
        "t.n is integer, the schema says bigint",
        "t.note (character varying(16)) is missing",
        "index t_n on t is missing",
    ]
    exact = catalog_shape([("t", "id", "uuid", None), ("t", "n", "bigint", None),
                           ("t", "note", "character varying", 16)], [("t", "t_n")])  # fmt: skip
    assert differences(expected, exact) == []
