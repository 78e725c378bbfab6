"""One-shot commands the supervisors run as services (es-setup, schema-setup, namespace-setup).

`python -m temporal_dsql_deploy COMMAND`; settings come from `.env` in the working directory and the
environment the service model gives the process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.components import installed_temporal_server, temporal_cli
from temporal_dsql_deploy.namespace import ensure_namespace
from temporal_dsql_deploy.persistence import forget_stopped_members, setup_upstream_schema
from temporal_dsql_deploy.visibility import setup_visibility


@cli.reported
def run(command: str) -> None:
    settings = cli.settings_for(Path.cwd())
    if command == "es-setup":
        report = setup_visibility(settings, installed_temporal_server(settings).es_tool)
        state = "created" if report.created else "already present"
        cli.say(f"index {report.index} {state}; {report.fields_verified} mapped fields match the template")
    elif command == "schema-setup":
        server = installed_temporal_server(settings)
        version = setup_upstream_schema(settings, server.sql_tool, server.schema_dir)
        cli.say(f"persistence schema at version {version}")
        if settings.sql_is_local:  # the stack's own database; no Temporal service runs yet
            cli.say(f"forgot {forget_stopped_members(settings)} membership rows of the previous run")
    elif command == "namespace-setup":
        created = ensure_namespace(temporal_cli(), settings.frontend_address, settings.temporal_namespace)
        cli.say(f"namespace {settings.temporal_namespace} {'registered' if created else 'already registered'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m temporal_dsql_deploy", description=__doc__)
    parser.add_argument("command", choices=["es-setup", "schema-setup", "namespace-setup"])
    run(parser.parse_args(argv).command)


if __name__ == "__main__":
    main(sys.argv[1:])
