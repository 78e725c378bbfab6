"""The schema job: Temporal's persistence schema brought to the version the configured release runs on, and on
DSQL the services' role kept in step with the tables. Run at the stack's start (schema-setup) and by `upgrade`
before any role moves to a newer release (schema-migrate)."""

from __future__ import annotations

from collections.abc import Callable

from temporal_dsql_deploy.database.schema import (
    Applier,
    ApplyReport,
    SchemaSource,
    default_schema_name,
    ensure_schema,
    version_key,
)
from temporal_dsql_deploy.database.service_role import ensure_service_role
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import TemporalServer


def migrate_to_release(settings: Settings, server: Callable[[], TemporalServer], report: Reporter) -> str:
    """Apply the missing schema steps up to the release's version; a line saying where the schema is now."""
    source = SchemaSource.resolve(server, "", "", default_schema_name(settings))
    applier = Applier(settings, source, report)
    try:
        _refuse_a_later_schema(applier.current_version(), source.version_for(settings.temporal_version), settings)
        result: ApplyReport = ensure_schema(applier)
        if settings.is_dsql:  # the services' own role, kept in step with the tables the schema has now
            for done in ensure_service_role(settings, applier.run, source.tables()):
                report(done)
    finally:
        applier.close()
    applied = ", ".join(result.versions_applied) or "nothing to apply"
    return (f"persistence schema at version {result.to_version} ({applied}; {source.root}); "
            f"{result.statements} statements, {result.retries} retries")  # fmt: skip


def _refuse_a_later_schema(applied: str | None, wanted: str, settings: Settings) -> None:
    """An older server on a schema a later release wrote is not something upstream supports (temporal/upgrade.py):
    refused before any Temporal role starts on it."""
    if applied is not None and version_key(applied) > version_key(wanted):
        raise DeployError(f"the database is at schema {applied}, which a later release than Temporal "
                          f"{settings.temporal_version} (schema {wanted}) wrote",
                          "set TEMPORAL_VERSION to the release that runs on it, or restore the backup taken before "
                          "the upgrade")  # fmt: skip
