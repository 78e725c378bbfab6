"""The shape a schema version gives a database (tables, their columns and types, indexes), and the differences
between it and a database's catalog.

Hand-written over sqlparse's statement split: the schemas are Temporal's DDL, a handful of statement forms, and
what matters is the column types as PostgreSQL's catalog names them, which no SQL parser library here resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Words that end a column's type in its definition (what follows is a constraint or a default).
_CONSTRAINT_WORDS = {"not", "null", "default", "primary", "unique", "check", "references", "generated", "constraint",
                     "collate"}  # fmt: skip
NOT_COLUMNS = {"primary", "constraint", "unique", "check", "foreign"}
# Spellings of a type, as PostgreSQL's information_schema names it.
_TYPE_NAMES = {
    "int": "integer", "int4": "integer", "integer": "integer", "serial": "integer",
    "bigint": "bigint", "int8": "bigint", "bigserial": "bigint",
    "smallint": "smallint", "int2": "smallint",
    "varchar": "character varying", "character varying": "character varying",
    "timestamp": "timestamp without time zone", "timestamp without time zone": "timestamp without time zone",
    "timestamptz": "timestamp with time zone", "timestamp with time zone": "timestamp with time zone",
    "bool": "boolean", "float8": "double precision",
}  # fmt: skip
_CREATE_TABLE = re.compile(r"^create\s+table\s+(?:if\s+not\s+exists\s+)?(\w+)\s*\((.*)\)$", re.IGNORECASE | re.DOTALL)
_DROP_TABLE = re.compile(r"^drop\s+table\s+(?:if\s+exists\s+)?(\w+)", re.IGNORECASE)
ALTER_TABLE = re.compile(r"^alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?(\w+)\s+(.*)$", re.IGNORECASE | re.DOTALL)
# The clauses of an ALTER TABLE that change columns (others, such as SET DEFAULT, change no shape).
_ADD_COLUMN = re.compile(r"^add\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?(.*)$", re.IGNORECASE | re.DOTALL)
_DROP_COLUMN = re.compile(r"^drop\s+(?:column\s+)?(?:if\s+exists\s+)?(\w+)", re.IGNORECASE)
_ALTER_TYPE = re.compile(r"^alter\s+(?:column\s+)?(\w+)\s+(?:set\s+data\s+)?type\s+(.*)$", re.IGNORECASE | re.DOTALL)
_CREATE_INDEX = re.compile(r"^create\s+(?:unique\s+)?index\s+(?:async\s+|concurrently\s+)?(?:if\s+not\s+exists\s+)?"
                           r"(\w+)\s+on\s+(\w+)", re.IGNORECASE)  # fmt: skip
_DROP_INDEX = re.compile(r"^drop\s+index\s+(?:concurrently\s+)?(?:if\s+exists\s+)?(\w+)", re.IGNORECASE)


def canonical_type(spelled: str) -> str:
    """A column type as information_schema names it, with a character length where there is one."""
    text = " ".join(spelled.lower().split())
    length = re.search(r"\(\s*(\d+)\s*\)", text)
    base = re.sub(r"\s*\(.*?\)", "", text).strip()
    name = _TYPE_NAMES.get(base, base)
    return f"{name}({length.group(1)})" if length and name in {"character varying", "character"} else name


def split_items(body: str) -> list[str]:
    """The top-level comma-separated items of a table body or of an ALTER TABLE's clauses."""
    items, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()] if current.strip() else items


def _column(item: str) -> tuple[str, str] | None:
    """A column definition's name and type; None for a table constraint."""
    words = item.split()
    if len(words) < 2 or words[0].lower() in NOT_COLUMNS:
        return None
    spelled: list[str] = []
    for word in words[1:]:
        if word.lower() in _CONSTRAINT_WORDS:
            break
        spelled.append(word)
    return words[0].lower(), canonical_type(" ".join(spelled))


@dataclass
class Shape:
    """Tables with their columns' types, and index names by table."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    indexes: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, statement: str) -> None:
        """Replay one DDL statement; other statements change no shape."""
        sql = " ".join(statement.split()) if not statement.lstrip().lower().startswith("create table") else statement
        sql = sql.strip()
        if created := _CREATE_TABLE.match(sql):
            table = created.group(1).lower()
            self.columns[table] = dict(c for item in split_items(created.group(2)) if (c := _column(item)))
            self.indexes.setdefault(table, set())
        elif dropped := _DROP_TABLE.match(sql):
            self.columns.pop(dropped.group(1).lower(), None)
            self.indexes.pop(dropped.group(1).lower(), None)
        elif altered := ALTER_TABLE.match(sql):
            columns = self.columns.setdefault(altered.group(1).lower(), {})
            for clause in split_items(altered.group(2)):
                self._alter(columns, clause)
        elif index := _CREATE_INDEX.match(sql):
            self.indexes.setdefault(index.group(2).lower(), set()).add(index.group(1).lower())
        elif gone := _DROP_INDEX.match(sql):
            for names in self.indexes.values():
                names.discard(gone.group(1).lower())

    @staticmethod
    def _alter(columns: dict[str, str], clause: str) -> None:
        if changed := _ALTER_TYPE.match(clause):
            columns[changed.group(1).lower()] = canonical_type(
                re.split(r"\s+using\s+", changed.group(2), flags=re.I)[0]
            )
        elif added := _ADD_COLUMN.match(clause):
            if column := _column(added.group(1)):
                columns[column[0]] = column[1]
        elif removed := _DROP_COLUMN.match(clause):
            columns.pop(removed.group(1).lower(), None)


def shape_of(statements: Iterable[str]) -> Shape:
    shape = Shape()
    for statement in statements:
        shape.apply(statement)
    return shape


# The catalog's view of the public schema: every column with its type, and every valid index.
CATALOG_COLUMNS = (
    "SELECT table_name, column_name, data_type, character_maximum_length FROM information_schema.columns "
    "WHERE table_schema = 'public'"
)
# An INVALID index (an ASYNC build that failed) is not counted: it is there and serves nothing.
CATALOG_INDEXES = (
    "SELECT t.relname, i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
    "WHERE n.nspname = 'public' AND x.indisvalid"
)


def catalog_shape(columns: Iterable[tuple[object, ...]], indexes: Iterable[tuple[object, ...]]) -> Shape:
    """A Shape from the rows of CATALOG_COLUMNS and CATALOG_INDEXES."""
    shape = Shape()
    for table, column, data_type, length in columns:
        spelled = f"{data_type}({length})" if length is not None else str(data_type)
        shape.columns.setdefault(str(table), {})[str(column)] = canonical_type(spelled)
    for table, index in indexes:
        shape.indexes.setdefault(str(table), set()).add(str(index))
    return shape


def differences(expected: Shape, found: Shape) -> list[str]:
    """What the database lacks or has otherwise than `expected`, for the tables `expected` defines (a table the
    database lacks altogether is reported once, by the caller's table check)."""
    problems = []
    for table, columns in sorted(expected.columns.items()):
        present = found.columns.get(table)
        if present is None:
            continue
        for column, kind in columns.items():
            if column not in present:
                problems.append(f"{table}.{column} ({kind}) is missing")
            elif present[column] != kind:
                problems.append(f"{table}.{column} is {present[column]}, the schema says {kind}")
        for index in sorted(expected.indexes.get(table, set()) - found.indexes.get(table, set())):
            problems.append(f"index {index} on {table} is missing")
    return problems
