"""Operator-facing actions: what `invoke up/down/status/logs/es.setup` do and print, for either runtime."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from rich.table import Table

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.database.dsql import lint_files
from temporal_dsql_deploy.database.dsql_schema import upstream_label, write_translation
from temporal_dsql_deploy.database.schema import (
    BASE_VERSION,
    Applier,
    ApplyReport,
    SchemaSource,
    default_schema_name,
    shipped_schemas,
)
from temporal_dsql_deploy.database.service_role import ensure_service_role
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.observability.top import watch
from temporal_dsql_deploy.owned_paths import check_owned
from temporal_dsql_deploy.runtime import docker_runtime
from temporal_dsql_deploy.runtime.components import (
    Installer,
    TemporalServer,
    install_temporal_server,
    installed_process_compose,
)
from temporal_dsql_deploy.runtime.control_keys import METRICS_STORE_USER, keys_file, read_control_keys
from temporal_dsql_deploy.runtime.model import Runtime as StackRuntime
from temporal_dsql_deploy.runtime.model import build_stack
from temporal_dsql_deploy.runtime.stack import LocalStack, ServiceState, tail
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.visibility import setup_visibility

Runtime = Literal["local", "docker"]


def _report(message: str) -> None:
    cli.say(f"• {message}")


def _table(rows: list[tuple[str, str, str, str]]) -> Table:
    table = Table("service", "state", "health", "port")
    for row in rows:
        table.add_row(*row)
    return table


def _local_rows(states: list[ServiceState]) -> list[tuple[str, str, str, str]]:
    rows = []
    for state in states:
        health = "-" if state.healthy is None else ("healthy" if state.healthy else "unhealthy")
        if state.one_shot:
            health = "done" if state.ok else (f"exit {state.exit_code}" if state.status == "Completed" else "-")
        rows.append((state.name, state.status, health, ", ".join(map(str, state.ports)) or "-"))
    return rows


def _endpoints(settings: Settings, runtime: Runtime) -> None:
    cli.say(f"  Temporal frontend  {settings.frontend_address}   (namespace {settings.temporal_namespace})")
    cli.say(f"  Web UI             http://127.0.0.1:{settings.temporal_ui_port}")
    cli.say(f"  {settings.search_engine:<18} {settings.elasticsearch_url}")
    if runtime == "docker":
        cli.say(f"  dashboards         http://127.0.0.1:{settings.grafana_port}   (Grafana)")
    else:
        cli.say(f"  dashboards         http://127.0.0.1:{settings.metrics_port}/vmui/#/dashboards   (or `invoke top`)")
        login = f"user {METRICS_STORE_USER}, password: `metrics_store` in {keys_file(settings.stack_dir)}"
        cli.say(f"                     {login}")


def up(settings: Settings, project_root: Path, runtime: Runtime) -> None:
    started = time.monotonic()
    if runtime == "docker":
        with cli.console.status("docker compose up --wait"):
            path = docker_runtime.up(settings, project_root)
        cli.say(f"{path} is up and healthy in {time.monotonic() - started:.1f}s")
    else:
        with cli.console.status("starting the local stack"):
            states = LocalStack(settings, project_root).up(_report)
        cli.console.print(_table(_local_rows(states)))
        cli.say(f"all {len(states)} services up in {time.monotonic() - started:.1f}s")
    _endpoints(settings, runtime)


def down(settings: Settings, project_root: Path, runtime: Runtime, *, volumes: bool, yes: bool = False) -> None:
    if runtime == "docker":
        if volumes:
            _confirm_deletion("the Docker stack's volumes (databases, indexes)", yes)
        docker_runtime.down(settings, project_root, volumes=volumes)
        cli.say("stopped the Docker stack" + (" and deleted its volumes" if volumes else ""))
        return
    stack = LocalStack(settings, project_root)
    stack.check_runs_from_here()
    if volumes:
        # Refused before the question, not after; nothing (a marker included) is written before the answer.
        check_owned(stack.layout.all_data, project_root=project_root, owner=stack.layout.root)
        _confirm_deletion(f"the local stack's data in {stack.layout.all_data} (databases, indexes)", yes)
    stopped = stack.down(installed_process_compose(settings), volumes=volumes)
    if stopped.leftovers:
        cli.say(f"stopped {len(stopped.leftovers)} processes of the stack that ran without their supervisor: "
                + ", ".join(p.describe() for p in stopped.leftovers))  # fmt: skip
    cli.say("stopped the local stack" if stopped.anything else "the local stack was not running")
    if volumes:
        cli.say(f"deleted its data in {stack.layout.all_data}")


def _confirm_deletion(what: str, yes: bool) -> None:
    if not yes and not cli.confirm(f"This will delete {what}. Continue?"):
        raise DeployError("down --volumes cancelled; nothing was stopped or deleted",
                          "run `invoke down --volumes --yes` to skip the question")  # fmt: skip


def status(settings: Settings, project_root: Path, runtime: Runtime) -> None:
    if runtime == "docker":
        containers = docker_runtime.states(settings, project_root)
        rows = [(c.service, c.state, c.health, c.ports) for c in containers]
        bad = [c.service for c in containers if not c.ok]
    else:
        stack = LocalStack(settings, project_root)
        stack.check_runs_as_configured(installed_process_compose(settings))
        states = stack.states(_supervisor(settings))
        rows = _local_rows(states)
        bad = [s.name for s in states if not s.ok]
    cli.console.print(_table(rows))
    if bad:
        raise DeployError(f"not healthy: {', '.join(bad)}", "see `invoke logs SERVICE`; `invoke up` restarts them")


def top(settings: Settings, runtime: Runtime, interval_s: float, rounds: int | None) -> None:
    # Compose publishes the store on PUBLISH_ADDRESS; 0.0.0.0 there is reached on loopback.
    host = "127.0.0.1" if runtime == "local" or settings.publish_address == "0.0.0.0" else settings.publish_address  # noqa: S104
    # The local store (VictoriaMetrics) answers only with the stack's key; Compose's Prometheus has no write API.
    url = f"http://{host}:{settings.metrics_port}"
    auth = (
        read_control_keys(settings.stack_dir, f"the metrics store at {url}").metrics_auth
        if runtime == "local"
        else None
    )
    store = MetricsStore(url, auth=auth)
    watch(store, cli.console, interval_s, rounds)


def _supervisor(settings: Settings) -> Path:
    process_compose = installed_process_compose(settings)
    if process_compose is None:
        raise DeployError("the local stack is not running (it was never started here)", "start it with `invoke up`")
    return process_compose


def restart(settings: Settings, project_root: Path, runtime: Runtime, services: list[str]) -> None:
    started = time.monotonic()
    stack = build_stack(settings).in_runtime(StackRuntime(runtime))
    targets = services or stack.temporal_services()
    unknown = [name for name in targets if name not in stack.names]
    if unknown:
        raise DeployError(f"no service {', '.join(unknown)} in the stack", f"use one of: {', '.join(stack.names)}")
    if runtime == "docker":
        names = docker_runtime.restart(settings, project_root, targets)
    else:
        names = LocalStack(settings, project_root).restart(_supervisor(settings), targets, _report)
    cli.say(f"restarted {', '.join(names)}; everything healthy again in {time.monotonic() - started:.1f}s")


def logs(settings: Settings, project_root: Path, runtime: Runtime, service: str, lines: int) -> None:
    if runtime == "docker":
        cli.say(docker_runtime.logs(settings, project_root, service, lines))
        return
    stack = LocalStack(settings, project_root)
    if service and service not in stack.model.names:
        raise DeployError(f"no service {service!r}", f"use one of: {', '.join(stack.model.names)}")
    for name in [service] if service else stack.model.names:
        cli.say(f"==> {stack.layout.log(name)} <==")
        cli.say(tail(stack.layout.log(name), lines))


def es_setup(settings: Settings, *, cluster_settings: bool) -> None:
    server = TemporalServer(install_temporal_server(settings, Installer(_report)))
    report = setup_visibility(settings, server.es_tool, cluster_settings=cluster_settings)
    state = "created" if report.created else "already present"
    cli.say(f"index {report.index} {state}; {report.fields_verified} mapped fields match Temporal's template")


def _applier(settings: Settings, schema_name: str, schema_dir: str) -> Applier:
    def server() -> TemporalServer:
        return TemporalServer(install_temporal_server(settings, Installer(_report)))

    source = SchemaSource.resolve(server, schema_name, schema_dir, default_schema_name(settings))
    applier = Applier(settings, source, _report)
    cli.say(f"schema {source.root} → {applier.endpoint.address}/{applier.endpoint.database}")
    return applier


def _summary(result: ApplyReport, started: float) -> None:
    applied = ", ".join(result.versions_applied) or "nothing to apply"
    cli.say(f"schema version {result.from_version or 'none'} → {result.to_version}: {applied}")
    cli.say(f"{result.statements} statements, {result.index_jobs} index jobs, {result.retries} retries, "
            f"{result.skipped_as_done} already done, {time.monotonic() - started:.1f}s")  # fmt: skip


def _keep_service_role(settings: Settings, applier: Applier) -> None:
    """On DSQL the services' role gets the tables the schema has now (an update may add some)."""
    if settings.is_dsql:
        for done in ensure_service_role(settings, applier.run, applier.source.tables()):
            cli.say(done)


def schema_setup(settings: Settings, *, version: str, schema_name: str, schema_dir: str,
                 overwrite: bool, confirm: Callable[[str], bool]) -> None:  # fmt: skip
    started = time.monotonic()
    applier = _applier(settings, schema_name, schema_dir)
    try:
        if overwrite:
            tables = ", ".join(applier.source.tables())
            if not confirm(f"drop these tables of {applier.source.root.name} and their data: {tables}?"):
                raise DeployError("overwrite cancelled; nothing was dropped", "pass --yes to skip the question")
        result = applier.setup(version or BASE_VERSION, overwrite=overwrite)
        _keep_service_role(settings, applier)
    finally:
        applier.close()
    if result.tables_dropped:
        cli.say(f"dropped {len(result.tables_dropped)} tables")
    _summary(result, started)


def schema_update(settings: Settings, *, target_version: str, schema_name: str,
                  schema_dir: str) -> None:  # fmt: skip
    started = time.monotonic()
    applier = _applier(settings, schema_name, schema_dir)
    try:
        result = applier.update(target_version)
        _keep_service_role(settings, applier)
    finally:
        applier.close()
    _summary(result, started)


def schema_validate(settings: Settings, *, schema_name: str, schema_dir: str) -> None:
    applier = _applier(settings, schema_name, schema_dir)
    try:
        report = applier.validate()
    finally:
        applier.close()
    cli.say(f"applied version {report.version or 'none'}; newest in the schema {report.latest}")
    if report.unexpected_tables:
        cli.say(f"tables the schema does not define (kept): {', '.join(report.unexpected_tables)}")
    if not report.ok:
        missing = ", ".join(report.missing_tables) or "none"
        raise DeployError(f"schema drift: version {report.version or 'none'} (newest {report.latest}); "
                          f"missing tables: {missing}", "run `invoke schema.update`")  # fmt: skip
    cli.say("schema is current: every table is present")


def schema_translate(settings: Settings) -> None:
    server = TemporalServer(install_temporal_server(settings, Installer(_report)))
    upstream_root = server.schema_dir / "postgresql" / "v12" / "temporal"
    version = SchemaSource(upstream_root).latest_version
    target = shipped_schemas() / "dsql" / "v12" / "temporal"
    changes = write_translation(upstream_root, target, version, upstream_label(settings.temporal_version, version))
    findings = lint_files([target / "schema.sql"])
    cli.say(f"wrote {target} at version {version}: {len(changes)} changes (see CHANGES.md)")
    if findings:
        listed = "\n".join(f"  - {finding}" for finding in findings)
        raise DeployError(f"the translation still has statements DSQL refuses:\n{listed}", "extend dsql_schema.py")
    cli.say("dsql-lint and the key-type check pass on it")
