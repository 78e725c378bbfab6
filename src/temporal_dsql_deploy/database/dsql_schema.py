"""Translate Temporal's PostgreSQL schema into one Aurora DSQL accepts, recording every change and why.

Same tables and column names; only what DSQL refuses changes: BYTEA key columns (UUID for 16-byte ids,
VARCHAR for the two keys that are not; the same ids outside keys follow, so they still compare),
BIGSERIAL, CHECK constraints, inline UNIQUE, synchronous indexes. Rules, not hand edits, so the next
upstream release translates the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlparse

from temporal_dsql_deploy.database.schema import SchemaSource, version_key
from temporal_dsql_deploy.database.schema_shape import ALTER_TABLE, NOT_COLUMNS, split_items
from temporal_dsql_deploy.settings.releases import LATEST, RELEASES

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


def _translate_table(table: str, body: str, changes: list[Change]) -> tuple[str, list[str]]:
    """The DSQL body of one table, and the statements that must follow it (unique indexes)."""
    items = split_items(body)
    keys = {k.strip().lower() for m in _PRIMARY_KEY.finditer(body) for k in m.group(1).split(",")}
    keys |= {item.split()[0].lower() for item in items if "primary key" in item.lower() and item.split()}
    kept, after = [], []
    for item in items:
        lower = item.lower()
        if lower.startswith("constraint") and " check " in f" {lower} ":
            changes.append(Change(table, item.split()[1], item, "(removed)", "DSQL has no CHECK constraints"))
            continue
        column = _COLUMN.match(item)
        if column is None or column.group(2).lower() in NOT_COLUMNS:
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


def _translate_clause(where: str, statement: str, table: str, clause: str, changes: list[Change]) -> str:
    """An ALTER TABLE clause: refused if DSQL would refuse it and no rule rewrites it (see _REFUSED_CLAUSES); a
    16-byte id column added later is UUID, as the same id is everywhere else."""
    for pattern, reason, plan in _REFUSED_CLAUSES:
        if found := pattern.match(clause):
            named = {name: " ".join(value.split()).upper() if name == "inline" else value
                     for name, value in found.groupdict().items()}  # fmt: skip
            raise RefusedStepError(where, statement, reason.format(table=table, **named), plan)
    added = _ADDED_COLUMN.match(clause)
    if added is None or added.group(3).upper() != "BYTEA" or added.group(2).lower() not in ID_COLUMNS:
        return clause
    why = "the same 16-byte id is a UUID key elsewhere, and is compared and joined with it"
    changes.append(Change(table, added.group(2), "BYTEA", "UUID", why))
    return f"{added.group(1)}{added.group(2)} UUID{added.group(4)}"


def translate(upstream_sql: str, where: str = "upstream schema") -> tuple[str, list[Change]]:
    """DSQL text for an upstream schema file, and the list of changes made; RefusedStepError, naming `where`, for a
    statement DSQL would refuse that no rule rewrites."""
    changes: list[Change] = []
    out: list[str] = []
    for raw in sqlparse.split(sqlparse.format(upstream_sql, strip_comments=True)):
        statement = raw.strip().rstrip(";").strip()
        if not statement.lower().startswith("create table"):
            statement = " ".join(statement.split())  # one line: indexes and DML
        if not statement:
            continue
        if _PLPGSQL.match(statement):
            raise RefusedStepError(
                where, statement, "runs a PL/pgSQL block, which DSQL does not run", "write plain SQL"
            )
        table = _CREATE_TABLE.match(statement)
        if table:
            body, after = _translate_table(table.group(1), table.group(2), changes)
            out.append(f"CREATE TABLE {table.group(1)} (\n  {body}\n)")
            out.extend(after)
        elif altered := ALTER_TABLE.match(statement):
            clauses = [_translate_clause(where, statement, altered.group(1), clause, changes)
                       for clause in split_items(altered.group(2))]  # fmt: skip
            out.append(f"ALTER TABLE {altered.group(1)} {', '.join(clauses)}")
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


# What an upstream statement may ask that DSQL refuses and no rule here rewrites, clause by clause of an ALTER TABLE
# (and a PL/pgSQL block): refused when translated, with the plan a DSQL-shaped step would need, so that the next
# release cannot slip a statement past the translation. A constraint is matched before a column, whose name could
# be CONSTRAINT's.
_ADDED_COLUMN = re.compile(r"^(add\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?)(\w+)\s+(\w+)(.*)$",
                           re.IGNORECASE | re.DOTALL)  # fmt: skip
_REFUSED_CLAUSES = (
    (
        re.compile(
            r"^add\s+(?:constraint\s+\w+\s+)?(?:primary\s+key|unique|check|foreign\s+key|exclude)\b", re.IGNORECASE
        ),
        "adds a constraint to {table}, and DSQL takes keys and uniqueness only when a table is created",
        "create a new table with the key and copy the rows over in batches, or a UNIQUE INDEX ASYNC",
    ),
    (
        re.compile(r"^alter\s+(?:column\s+)?(?P<column>\w+)\s+(?:set\s+data\s+)?type\b", re.IGNORECASE),
        "changes the type of {table}.{column}, and DSQL has no ALTER COLUMN ... TYPE",
        "write the step as a plan DSQL accepts: add a column of the new type, backfill it in batches of at most 3,000 "
        "rows, switch the plugin's statements to it, then drop the old one",
    ),
    (
        re.compile(
            r"^add\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?(?P<column>\w+)\s.*?\b(?P<inline>default|not\s+null|"
            r"unique|primary\s+key|references)\b",
            re.IGNORECASE | re.DOTALL,
        ),
        "adds {table}.{column} with an inline {inline}, which DSQL refuses on ADD COLUMN",
        "add the column bare and have the plugin read NULL as the default, or create the index ASYNC",
    ),
)
_PLPGSQL = re.compile(r"^do\s", re.IGNORECASE)


class RefusedStepError(ValueError):
    """An upstream statement DSQL refuses and the translation cannot rewrite."""

    def __init__(self, where: str, statement: str, reason: str, plan: str) -> None:
        super().__init__(f"{where}: {reason}: {statement}")
        self.plan = plan


@dataclass(frozen=True)
class Step:
    """One upstream schema version after the baseline: its manifest's facts and files."""

    version: str
    min_compatible_version: str
    description: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Translation:
    """The baseline (the whole upstream schema at the oldest supported release) and the steps after it."""

    baseline_sql: Path
    baseline_version: str
    baseline_label: str
    steps: tuple[Step, ...]
    steps_label: str  # the upstream release the steps come from


UPSTREAM_POSTGRESQL_SCHEMA = "schema/postgresql/v12/temporal"


def releases_translation(module_dir: Callable[[str], Path]) -> Translation:
    """What to translate for the supported releases: the oldest's whole schema, and every later version the newest
    has; `module_dir` finds go.temporal.io/server at a version in the Go module cache."""
    oldest, newest = RELEASES[0], LATEST
    baseline = module_dir(f"v{oldest.version}") / UPSTREAM_POSTGRESQL_SCHEMA
    upstream = SchemaSource(module_dir(f"v{newest.version}") / UPSTREAM_POSTGRESQL_SCHEMA)
    baseline_version = SchemaSource(baseline).latest_version
    steps = tuple(Step(m.version, m.min_compatible_version, m.description, m.files) for m in upstream.migrations()
                  if version_key(m.version) > version_key(baseline_version))  # fmt: skip
    return Translation(baseline / "schema.sql", baseline_version, upstream_label(oldest.version, baseline_version),
                       steps, f"go.temporal.io/server v{newest.version} {UPSTREAM_POSTGRESQL_SCHEMA}")  # fmt: skip


def _section(title: str, changes: list[Change]) -> str:
    rows = ["| Table | Column / object | Upstream | DSQL | Why |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| {c.table} | {c.item} | {c.upstream} | {c.dsql} | {c.reason} |" for c in changes]
    return f"## {title}\n\n" + ("\n".join(rows) if changes else "Nothing DSQL refuses: applied as upstream wrote it.")


def _write_version(directory: Path, files: dict[str, str], version: str, min_compatible: str, what: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    manifest = {"CurrVersion": version, "MinCompatibleVersion": min_compatible, "Description": what,
                "SchemaUpdateCqlFiles": list(files)}  # fmt: skip
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def write_translation(source: Translation, target_root: Path) -> list[Change]:
    """Write `versioned/v<baseline>/` (the whole schema then), one `versioned/v<step>/` per later upstream version
    with only its changes, `schema.sql` (the whole schema at the newest) and `CHANGES.md`; a step DSQL would refuse
    raises RefusedStepError before anything is written."""
    baseline, changes = translate(source.baseline_sql.read_text(encoding="utf-8"), source.baseline_label)
    baseline, changes = f"{baseline}\n{PLUGIN_TABLES}", changes + PLUGIN_CHANGES
    sections = [_section(f"{source.baseline_version}: the whole schema ({source.baseline_label})", changes)]
    steps: list[tuple[Step, dict[str, str]]] = []
    for step in source.steps:
        step_changes: list[Change] = []
        translated = {}
        for path in step.files:
            where = f"upstream schema {step.version} ({path.name})"
            translated[path.name], found = translate(path.read_text(encoding="utf-8"), where)
            step_changes += found
        steps.append((step, translated))
        changes += step_changes
        sections.append(_section(f"{step.version}: {step.description} ({source.steps_label})", step_changes))
    header = "-- Aurora DSQL schema for Temporal, translated from {} (see CHANGES.md).\n\n"
    versioned = target_root / "versioned"
    whole_at_baseline = f"the whole Temporal schema for DSQL, from {source.baseline_label}"
    _write_version(versioned / f"v{source.baseline_version}",
                   {"schema.sql": header.format(source.baseline_label) + baseline}, source.baseline_version,
                   source.baseline_version, whole_at_baseline)  # fmt: skip
    for step, translated in steps:
        label = header.format(f"{source.steps_label} versioned/v{step.version}")
        files = {name: label + sql for name, sql in translated.items()}
        _write_version(versioned / f"v{step.version}", files, step.version, step.min_compatible_version,
                       step.description)  # fmt: skip
    newest = steps[-1][0].version if steps else source.baseline_version
    whole = "\n".join([baseline, *(sql for _step, translated in steps for sql in translated.values())])
    (target_root / "schema.sql").write_text(
        f"-- Aurora DSQL schema for Temporal at {newest}: versioned/ applied in order (see CHANGES.md).\n\n" + whole,
        encoding="utf-8",
    )
    (target_root / "CHANGES.md").write_text(
        "# DSQL schema for Temporal: every change from upstream and why\n\n"
        "Generated by `invoke schema.translate`: the whole upstream schema at the oldest supported release, then one\n"
        "step per later upstream version with only that version's changes. Tables and column names are upstream's;\n"
        "only what Aurora DSQL refuses changes. The project's DSQL persistence plugin reads this schema.\n\n"
        + "\n\n".join(sections)
        + "\n",
        encoding="utf-8",
    )
    return changes
