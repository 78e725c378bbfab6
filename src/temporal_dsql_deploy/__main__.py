"""One-shot commands the supervisors run as services (es-setup, schema-setup, namespace-setup).

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
from temporal_dsql_deploy.database.schema import Applier, SchemaSource, default_schema_name, ensure_schema
from temporal_dsql_deploy.database.service_role import ensure_service_role
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
    elif command == "schema-setup":
        if settings.runs_local_database and not settings.is_dsql and ensure_database(settings):
            cli.say(f"created database {settings.temporal_sql_database}")
        source = SchemaSource.resolve(lambda: installed_temporal_server(settings), "", "",
                                      default_schema_name(settings))  # fmt: skip
        applier = Applier(settings, source, cli.say)
        try:
            result = ensure_schema(applier)
            if settings.is_dsql:  # the services' own role, kept in step with the tables the schema has now
                for done in ensure_service_role(settings, applier.run, source.tables()):
                    cli.say(done)
        finally:
            applier.close()
        cli.say(f"persistence schema at version {result.to_version} ({source.root}); "
                f"{result.statements} statements, {result.retries} retries")  # fmt: skip
        if settings.sql_is_local:  # the stack's own database; no Temporal service runs yet
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
    parser.add_argument("command", choices=["es-setup", "dsql-local-setup", "schema-setup", "namespace-setup"])
    run(parser.parse_args(argv).command)


if __name__ == "__main__":
    main(sys.argv[1:])
