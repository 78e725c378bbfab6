"""One-shot commands the supervisors run as services (es-setup, schema-setup, namespace-setup), and the schema step
`invoke upgrade` runs in the stack's own network (schema-migrate).

`python -m temporal_dsql_deploy COMMAND` (or the `temporal-dsql-deploy` console script); settings come from
the environment alone, which the service model gives the process: the working directory plays no part.
"""

from __future__ import annotations

import argparse
import sys

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.database.local_postgres import (
    BACKEND_ROLE,
    ensure_backend_role,
    ensure_database,
    forget_stopped_members,
)
from temporal_dsql_deploy.database.migration import migrate_to_release
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.components import installed_temporal_server
from temporal_dsql_deploy.settings.config import load_settings_from_environment
from temporal_dsql_deploy.temporal.installed import temporal_cli
from temporal_dsql_deploy.temporal.namespace import ensure_namespace
from temporal_dsql_deploy.temporal.visibility import setup_visibility


@cli.reported
def run(command: str) -> None:
    settings = load_settings_from_environment()  # the environment the service model gave this process
    if command == "es-setup":
        cli.say(setup_visibility(settings, installed_temporal_server(settings).es_tool).describe())
    elif command in ("schema-setup", "schema-migrate"):
        if settings.runs_local_database and not settings.is_dsql and ensure_database(settings):
            cli.say(f"created database {settings.temporal_sql_database}")
        cli.say(migrate_to_release(settings, lambda: installed_temporal_server(settings), cli.say))
        # At the stack's start, in its own database, before any Temporal service runs (never under `upgrade`).
        if command == "schema-setup" and settings.sql_is_local:
            cli.say(f"forgot {forget_stopped_members(settings)} membership rows of the previous run")
    elif command == "dsql-local-setup":
        if settings.dsql_local_backend_password is None:
            raise DeployError(
                "dsql-local-setup needs DSQL_LOCAL_BACKEND_PASSWORD, the password of dsql-local's role",
                "start the stack with `invoke up`, which generates it and hands it to this job",
            )
        ensure_backend_role(settings, settings.dsql_local_backend_password.get_secret_value())
        cli.say(f"dsql-local's backend role {BACKEND_ROLE} is ready (no superuser)")
    elif command == "namespace-setup":
        created = ensure_namespace(temporal_cli(), settings.frontend_address, settings.temporal_namespace)
        cli.say(f"namespace {settings.temporal_namespace} {'registered' if created else 'already registered'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m temporal_dsql_deploy", description=__doc__)
    parser.add_argument("command", choices=["es-setup", "dsql-local-setup", "schema-setup", "schema-migrate",
                                            "namespace-setup"])  # fmt: skip
    run(parser.parse_args(argv).command)


if __name__ == "__main__":
    main(sys.argv[1:])
