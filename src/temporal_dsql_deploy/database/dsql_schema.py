"""Translate Temporal's PostgreSQL schema into one Aurora DSQL accepts, recording every change and why.

Same tables and column names; only what DSQL refuses changes: BYTEA key columns (UUID for 16-byte ids,
VARCHAR for the two keys that are not; the same ids outside keys follow, so they still compare),
BIGSERIAL, CHECK constraints, inline UNIQUE, synchronous indexes. Rules, not hand edits, so the next
upstream release translates the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import sqlparse

# Key columns that are not 16-byte ids (see the DSQL reference): a text encoding instead of UUID.
TEXT_KEY_COLUMNS = {
    "task_queue_id": ("VARCHAR(1024)", "variable-length (namespace id, queue name, type, partition): hex text"),
    "chasm_path": ("VARCHAR(1024)", "a Go string, not an id"),
}
# 16-byte ids that are UUID keys in some table: a column of the same name is UUID everywhere, key or not,
# so the joins and comparisons between them (current_executions.run_id = executions.run_id) still work.
ID_COLUMNS = frozenset({"namespace_id", "run_id", "tree_id", "branch_id"})
_CREATE_TABLE = re.compile(r"^create\s+table\s+(\w+)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_CREATE_INDEX = re.compile(r"^create\s+(unique\s+)?index\s+(?!async\b)", re.IGNORECASE)
_PRIMARY_KEY = re.compile(r"primary\s+key\s*\(([^)]*)\)", re.IGNORECASE)
_COLUMN = re.compile(r"^(\s*)(\w+)(\s+)(\w+)(.*)$", re.DOTALL)
_NOT_COLUMNS = {"primary", "constraint", "unique", "check", "foreign"}


@dataclass(frozen=True)
class Change:
    table: str
    item: str
    upstream: str
    dsql: str
    reason: str


# The dsql plugin's own table: a value over DSQL's 1 MiB column limit (a batch of history events, a buffered
# event, an activity's heartbeat details) in pieces, written and removed with its row (server/internal/dsql).
PLUGIN_TABLES = """CREATE TABLE value_chunks (
  shard_id INTEGER NOT NULL,
  kind SMALLINT NOT NULL,
  owner_a UUID NOT NULL,
  owner_b UUID NOT NULL,
  item BIGINT NOT NULL,
  chunk_group BIGINT NOT NULL,
  chunk INTEGER NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (shard_id, kind, owner_a, owner_b, item, chunk_group, chunk)
);
"""
PLUGIN_CHANGES = [
    Change("value_chunks", "(table)", "(none)", "CREATE TABLE value_chunks",
           "the dsql plugin keeps a value over DSQL's 1 MiB column limit in pieces, with its row"),
]  # fmt: skip


def _split_columns(body: str) -> list[str]:
    """Top-level comma-separated items of a CREATE TABLE body."""
    items, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current] if current.strip() else items


def _translate_table(table: str, body: str, changes: list[Change]) -> tuple[str, list[str]]:
    """The DSQL body of one table, and the statements that must follow it (unique indexes)."""
    items = [item.strip() for item in _split_columns(body)]
    keys = {k.strip().lower() for m in _PRIMARY_KEY.finditer(body) for k in m.group(1).split(",")}
    keys |= {item.split()[0].lower() for item in items if "primary key" in item.lower() and item.split()}
    kept, after = [], []
    for item in items:
        lower = item.lower()
        if lower.startswith("constraint") and " check " in f" {lower} ":
            changes.append(Change(table, item.split()[1], item, "(removed)", "DSQL has no CHECK constraints"))
            continue
        column = _COLUMN.match(item)
        if column is None or column.group(2).lower() in _NOT_COLUMNS:
            kept.append(item)
            continue
        name, kind, rest = column.group(2), column.group(4), column.group(5)
        if kind.upper() == "BYTEA" and name.lower() in keys:
            new_kind, why = TEXT_KEY_COLUMNS.get(name.lower(), ("UUID", "a 16-byte id"))
            changes.append(Change(table, name, "BYTEA (key)", new_kind, f"BYTEA is refused in keys; {why}"))
            kind = new_kind
        elif kind.upper() == "BYTEA" and name.lower() in ID_COLUMNS:
            why = "the same 16-byte id is a UUID key elsewhere, and is compared and joined with it"
            changes.append(Change(table, name, "BYTEA", "UUID", why))
            kind = "UUID"
        if kind.upper() == "BIGSERIAL":
            changes.append(Change(table, name, "BIGSERIAL", "BIGINT",
                                  "DSQL has no SERIAL; the DSQL plugin assigns the ids"))  # fmt: skip
            kind = "BIGINT"
        if re.search(r"\bunique\b", rest, re.IGNORECASE):
            rest = re.sub(r"\s*\bunique\b", "", rest, flags=re.IGNORECASE)
            index = f"{table}_{name}_key"
            after.append(f"CREATE UNIQUE INDEX ASYNC {index} ON {table} ({name})")
            why = "DSQL takes uniqueness only as an index, and builds indexes asynchronously"
            changes.append(Change(table, name, "inline UNIQUE", f"CREATE UNIQUE INDEX ASYNC {index}", why))
        kept.append(f"{name} {kind}{rest}")
    return ",\n  ".join(kept), after


def translate(upstream_sql: str) -> tuple[str, list[Change]]:
    """DSQL text for an upstream schema file, and the list of changes made."""
    changes: list[Change] = []
    out: list[str] = []
    for raw in sqlparse.split(sqlparse.format(upstream_sql, strip_comments=True)):
        statement = raw.strip().rstrip(";").strip()
        if not statement.lower().startswith("create table"):
            statement = " ".join(statement.split())  # one line: indexes and DML
        if not statement:
            continue
        table = _CREATE_TABLE.match(statement)
        if table:
            body, after = _translate_table(table.group(1), table.group(2), changes)
            out.append(f"CREATE TABLE {table.group(1)} (\n  {body}\n)")
            out.extend(after)
        elif _CREATE_INDEX.match(statement):
            name = statement.split()[3 if statement.lower().startswith("create unique") else 2]
            translated = _CREATE_INDEX.sub(lambda m: f"CREATE {'UNIQUE ' if m.group(1) else ''}INDEX ASYNC ", statement)
            changes.append(Change(statement.split(" ON ")[-1].split()[0], name, "CREATE INDEX", "CREATE INDEX ASYNC",
                                  "DSQL builds indexes asynchronously; the applier waits for each job"))  # fmt: skip
            out.append(translated)
        else:
            out.append(statement)
    return ";\n\n".join(out) + ";\n", changes


def upstream_label(temporal_version: str, schema_version: str) -> str:
    return f"go.temporal.io/server v{temporal_version} schema/postgresql/v12/temporal {schema_version}"


def _changes_table(changes: list[Change], upstream: str) -> str:
    rows = ["| Table | Column / object | Upstream | DSQL | Why |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| {c.table} | {c.item} | {c.upstream} | {c.dsql} | {c.reason} |" for c in changes]
    return (
        "# DSQL schema for Temporal: every change from upstream and why\n\n"
        f"Generated by `invoke schema.translate` from {upstream}. Tables and column names are upstream's;\n"
        "only what Aurora DSQL refuses changes. The project's DSQL persistence plugin reads this schema.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def write_translation(upstream_root: Path, target_root: Path, version: str, upstream_label: str) -> list[Change]:
    """Write `schema.sql`, `versioned/v<version>/` and `CHANGES.md` for the DSQL schema."""
    sql, changes = translate((upstream_root / "schema.sql").read_text(encoding="utf-8"))
    sql, changes = f"{sql}\n{PLUGIN_TABLES}", changes + PLUGIN_CHANGES
    header = f"-- Aurora DSQL schema for Temporal, translated from {upstream_label} (see CHANGES.md).\n\n"
    target_root.mkdir(parents=True, exist_ok=True)
    (target_root / "schema.sql").write_text(header + sql, encoding="utf-8")
    versioned = target_root / "versioned" / f"v{version}"
    versioned.mkdir(parents=True, exist_ok=True)
    (versioned / "schema.sql").write_text(header + sql, encoding="utf-8")
    manifest = {
        "CurrVersion": version,
        "MinCompatibleVersion": version,
        "Description": f"the whole Temporal schema for DSQL, translated from {upstream_label}",
        "SchemaUpdateCqlFiles": ["schema.sql"],
    }
    (versioned / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (target_root / "CHANGES.md").write_text(_changes_table(changes, upstream_label), encoding="utf-8")
    return changes
