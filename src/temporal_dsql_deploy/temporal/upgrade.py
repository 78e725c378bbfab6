"""Moving a stack from one Temporal release to another: which moves upstream supports, in which order, and the
record of the release a stack's data belongs to.

Upstream's rules (docs.temporal.io, "Upgrade the Temporal Server"): one minor release at a time (patches may be
skipped), the database schema first with the target release's tools, then the servers. Upstream names no order for
the roles; this product's is below, with its reason. Going back is possible only while the schema is the one the
older release runs on: an older server on a newer schema is not a combination upstream supports or tests.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from temporal_dsql_deploy.database.schema import version_key
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.settings.releases import RELEASES, Release, release, supported_versions

# Why this order (upstream names none): ORDER_REASON, which the plan prints.
UPGRADE_ORDER = ("history", "matching", "frontend", "worker")
ORDER_REASON = (
    "history first (it owns the shards and writes what the new release adds; upstream's code expects history ahead "
    "of matching while a rolling upgrade runs), then matching, then the frontend (clients reach a new API only once "
    "the roles behind it serve it), the worker role last (its system workflows go through the frontend); a rollback "
    "goes the other way"
)


@dataclass(frozen=True)
class Hop:
    """One supported move of a stack between two releases."""

    current: Release
    target: Release

    @property
    def rollback(self) -> bool:
        return _index(self.target) < _index(self.current)

    @property
    def schema_changes(self) -> bool:
        return self.target.schema_version != self.current.schema_version

    @property
    def template_changes(self) -> bool:
        return self.target.template_version != self.current.template_version

    @property
    def roles(self) -> tuple[str, ...]:
        """The Temporal roles in the order they are replaced."""
        return tuple(reversed(UPGRADE_ORDER)) if self.rollback else UPGRADE_ORDER


def _index(chosen: Release) -> int:
    return RELEASES.index(chosen)  # one release per minor version, oldest first (settings/releases.py)


def _later(current_version: str) -> list[Release]:
    """The supported releases of later minor versions than `current_version`, oldest first (one per minor)."""
    major, minor = current_version.split(".")[:2]
    return [each for each in RELEASES if each.minor > (int(major), int(minor))]


def _path(current: Release, target: Release) -> str:
    """The releases from `current` to `target`, a hop per minor release."""
    steps = [each.version for each in _later(current.version) if each.minor <= target.minor]
    return " → ".join([current.version, *steps])


def next_release(current_version: str) -> str:
    """The release an upgrade from `current_version` goes to when none is named: the next minor release (the newest
    is its own: `check_hop` then says there is nothing to do)."""
    later = _later(current_version)
    return later[0].version if later else current_version


def check_supported(version: str, what: str) -> Release:
    try:
        return release(version)
    except ValueError as exc:
        raise DeployError(f"{what} Temporal {version}: {exc}",
                          "upgrade it with the version of this product that started it, or start afresh with "
                          "`invoke down --volumes`") from None  # fmt: skip


def _neighbours(current: Release) -> str:
    index = _index(current)
    return ", ".join(each.version for each in RELEASES[max(index - 1, 0) : index + 2] if each is not current)


def check_hop(current_version: str, target_version: str, database_schema: str | None) -> Hop:
    """The hop from the stack's release to `target_version`, or a DeployError saying why upstream does not support
    it and what to do instead. `database_schema`: the schema version the database holds (None: unknown)."""
    try:
        target = release(target_version)
    except ValueError as exc:
        raise DeployError(f"--to {target_version}: {exc}", f"choose one of: {supported_versions()}") from None
    current = check_supported(current_version, "the stack runs")
    hop = Hop(current, target)
    if target is current:
        raise DeployError(f"the stack already runs Temporal {current.version}",
                          f"to move it, name the release before or after it: {_neighbours(current)}")  # fmt: skip
    if hop.rollback:
        _check_rollback(hop, database_schema)
        return hop
    if _index(target) - _index(current) > 1:
        raise DeployError(f"Temporal {current.version} → {target.version} skips a minor release, which upstream does "
                          "not support (each minor release reads only the data of the one before)",
                          f"upgrade one minor release at a time: {_path(current, target)}, one "
                          "`invoke upgrade --to VERSION` each")  # fmt: skip
    if database_schema is not None and version_key(database_schema) > version_key(current.schema_version):
        raise DeployError(f"the database is at schema {database_schema}, newer than Temporal {current.version}'s "
                          f"({current.schema_version}): a later release wrote it, so the stack's release is not "
                          f"{current.version}",
                          "set TEMPORAL_VERSION to the release that wrote it (`invoke schema.validate` shows the "
                          "version) and run `invoke up`")  # fmt: skip
    return hop


def plan_hop(record: ReleaseRecord | None, target_version: str, database_schema: str | None) -> Hop:
    """The hop `upgrade` makes: `check_hop`'s, unless an earlier upgrade stopped half-way (`record.moving_to`), which
    is finished again (every step may run again) or undone where the rollback rules allow."""
    if record is None or record.moving_to is None:
        return check_hop(record.release if record else target_version, target_version, database_schema)
    if target_version == record.moving_to:
        came_from = check_supported(record.release, "the stack runs")
        return Hop(came_from, check_supported(record.moving_to, "the stack moves to"))
    if target_version == record.release:
        return check_hop(record.moving_to, record.release, database_schema)
    raise DeployError(f"an upgrade of the stack from Temporal {record.release} to {record.moving_to} did not finish",
                      f"finish it with `invoke upgrade --to {record.moving_to}` (each step may run again), or go back "
                      f"with `invoke upgrade --to {record.release}` while the schema allows")  # fmt: skip


def _check_rollback(hop: Hop, database_schema: str | None) -> None:
    current, target = hop.current, hop.target
    if _index(current) - _index(target) > 1:
        raise DeployError(f"Temporal {current.version} → {target.version} goes back more than one minor release",
                          "a rollback goes back to the release the stack ran before; restore a backup taken at "
                          f"{target.version} to go further")  # fmt: skip
    schema = database_schema or current.schema_version
    if schema != target.schema_version:
        raise DeployError(
            f"cannot roll back to Temporal {target.version}: the database is at schema {schema} (Temporal "
            f"{current.version}'s), and {target.version} runs on {target.schema_version}; an older server on a newer "
            "schema is not something upstream supports, and DSQL cannot undo the schema step",
            f"stay on {current.version} (fix forward), or restore the backup taken before the upgrade (for DSQL: "
            "AWS Backup's restore to a new cluster)",
        )


def plan_lines(hop: Hop, runtime: str, database_schema: str | None, services: dict[str, int]) -> list[str]:
    """What `upgrade` will do, step by step, in words; `services`: each role's service name and its hosts."""
    current, target = hop.current, hop.target
    lines = [f"Temporal {current.version} → {target.version} ({'rollback' if hop.rollback else 'upgrade'}) on the "
             f"{runtime} runtime"]  # fmt: skip
    lines.append(f"1. build the server with the dsql plugin and upstream's tools at {target.version} (once, cached)")
    if hop.rollback:
        lines.append(f"2. schema: none (the database stays at {database_schema or current.schema_version})")
        lines.append("3. index template: none (an older release ignores the fields a newer one maps)")
    else:
        schema = (f"{database_schema or current.schema_version} → {target.schema_version}" if hop.schema_changes
                  else f"none (both run on {target.schema_version})")  # fmt: skip
        lines.append(f"2. schema: {schema}, each step recorded (target's tools, before any server)")
        template = (
            f"v{current.template_version} → v{target.template_version}, the new fields added to the existing index"
            if hop.template_changes
            else f"v{target.template_version} rewritten (unchanged)"
        )
        lines.append(f"3. index template: {template}")
    roles = ", then ".join(f"{name} ({hosts} host{'s' if hosts > 1 else ''})" for name, hosts in services.items())
    lines.append(f"4. replace the roles one at a time, each healthy before the next: {roles}")
    lines.append(f"   order: {ORDER_REASON}")
    lines.append(f"5. record {target.version} as the stack's release")
    return lines


@dataclass(frozen=True)
class ReleaseRecord:
    """The release the stack's data belongs to and, while an upgrade runs (or after one stopped), where it moves."""

    release: str
    moving_to: str | None = None


def read_record(layout: Layout) -> ReleaseRecord | None:
    """The record kept with the stack's data; None for data made before records were kept (or none at all)."""
    try:
        data = json.loads(layout.release_record.read_text(encoding="utf-8"))
        return ReleaseRecord(str(data["release"]), None if data.get("moving_to") is None else str(data["moving_to"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(layout: Layout, record: ReleaseRecord) -> None:
    path: Path = layout.release_record
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record)) + "\n", encoding="utf-8")


def record_release(layout: Layout, version: str) -> None:
    """The stack's data runs `version` now, all of it (after `up`, or an upgrade that finished)."""
    write_record(layout, ReleaseRecord(version))


def mark_moving(layout: Layout, version: str) -> None:
    """`up` is about to start `version` on data a `check_start` found on another release: recorded as a move under
    way, so that one failing half-way is finished (or undone) like an upgrade's."""
    record = read_record(layout)
    if record is None or (record.release == version and record.moving_to is None):
        return
    leaving = record.release if record.moving_to in (None, version) else record.moving_to
    write_record(layout, ReleaseRecord(leaving, version))


def check_start(layout: Layout, version: str) -> str | None:
    """Before `up` starts Temporal `version` on the data in `layout`: a DeployError if the data belongs to a release
    upstream cannot move to `version` from; a line to tell the operator when `up` moves it (stopping and starting
    everything, schema first); None when nothing changes."""
    record = read_record(layout)
    if record is None or (record.release == version and record.moving_to is None):
        return None
    check_supported(record.release, f"the stack's data in {layout.all_data} was last run by")
    if record.moving_to is not None:
        return _check_unfinished(record, record.moving_to, version)
    try:
        hop = check_hop(record.release, version, None)
    except DeployError as refused:
        raise DeployError(f"the stack's data was last run by Temporal {record.release} and TEMPORAL_VERSION="
                          f"{version}: {refused.problem}",
                          f"set TEMPORAL_VERSION={record.release} again; {refused.fix}") from None  # fmt: skip
    schema = "the schema first" if hop.schema_changes else "the same schema"
    return (f"Temporal {record.release} → {version}: the whole stack restarts on {version} ({schema}); "
            f"`invoke upgrade --to {version}` replaces the roles one at a time while it serves instead")  # fmt: skip


def _check_unfinished(record: ReleaseRecord, moving_to: str, version: str) -> str:
    """`up` after an upgrade stopped half-way: on the release it moved to (finishing the move), or back on the one it
    came from while both run on the same schema."""
    if version == moving_to:
        return f"finishing the move from Temporal {record.release} to {version}: the whole stack restarts on {version}"
    target = check_supported(moving_to, "the stack's data was moving to")
    if version == record.release and release(record.release).schema_version == target.schema_version:
        return f"the move to Temporal {moving_to} did not finish: the whole stack restarts on {version}"
    raise DeployError(f"an upgrade of the stack from Temporal {record.release} to {moving_to} did not finish, "
                      f"and TEMPORAL_VERSION={version}",
                      f"finish it with `invoke upgrade --to {moving_to}`, or set TEMPORAL_VERSION="
                      f"{moving_to} and run `invoke up`")  # fmt: skip
