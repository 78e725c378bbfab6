"""Operator-facing actions: what `invoke up/down/status/logs/es.setup` do and print, for either runtime."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.database.dsql import lint_files
from temporal_dsql_deploy.database.dsql_schema import RefusedStepError, releases_translation, write_translation
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
from temporal_dsql_deploy.kubernetes.chart import chart_settings, write_chart
from temporal_dsql_deploy.kubernetes.render import render as render_chart
from temporal_dsql_deploy.kubernetes.sizing import plan as size_for
from temporal_dsql_deploy.observability.top import watch
from temporal_dsql_deploy.runtime import regions
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, compose_file
from temporal_dsql_deploy.runtime.installer import Installer, server_module_dir
from temporal_dsql_deploy.runtime.interface import ServiceRow, StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import write_compose
from temporal_dsql_deploy.runtime.targets import runtime_for
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings, host_architecture, pin_setting
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.temporal.installed import TemporalServer
from temporal_dsql_deploy.temporal.upgrade import (
    Hop,
    ReleaseRecord,
    check_supported,
    next_release,
    plan_hop,
    plan_lines,
    read_record,
    record_release,
    write_record,
)
from temporal_dsql_deploy.temporal.visibility import setup_visibility


def _report(message: str) -> None:
    cli.say(f"• {message}")


def _table(rows: list[ServiceRow]) -> Table:
    table = Table("service", "state", "health", "port")
    for row in rows:
        table.add_row(row.name, row.state, row.health, row.ports)
    return table


def up(settings: Settings, project_root: Path, runtime: Runtime) -> None:
    started = time.monotonic()
    target = runtime_for(settings, project_root, runtime)
    with cli.console.status(target.starting):
        rows = target.up(_report)
    cli.console.print(_table(rows))
    cli.say(f"all {len(rows)} services up in {time.monotonic() - started:.1f}s")
    cli.say(f"  Temporal frontend  {settings.frontend_address}   (namespace {settings.temporal_namespace})")
    cli.say(f"  Web UI             http://127.0.0.1:{settings.temporal_ui_port}")
    cli.say(f"  {settings.search_engine:<18} {settings.elasticsearch_url}")
    for line in target.dashboards():
        cli.say(f"  {line}")


def down(settings: Settings, project_root: Path, runtime: Runtime, *, volumes: bool, yes: bool = False) -> None:
    target = runtime_for(settings, project_root, runtime)
    if volumes:  # what may not be deleted is refused before the question; nothing is written before the answer
        what = target.deletable_data()
        if not yes and not cli.confirm(f"This will delete {what}. Continue?"):
            raise DeployError("down --volumes cancelled; nothing was stopped or deleted",
                              "run `invoke down --volumes --yes` to skip the question")  # fmt: skip
    for line in target.down(volumes=volumes):
        cli.say(line)


def status(settings: Settings, project_root: Path, runtime: Runtime) -> None:
    rows = runtime_for(settings, project_root, runtime).status()
    cli.console.print(_table(rows))
    bad = [row.name for row in rows if not row.ok]
    if bad:
        raise DeployError(f"not healthy: {', '.join(bad)}", "see `invoke logs SERVICE`; `invoke up` restarts them")


def top(settings: Settings, project_root: Path, runtime: Runtime, interval_s: float, rounds: int | None) -> None:
    watch(runtime_for(settings, project_root, runtime).metrics_store(), cli.console, interval_s, rounds)


def _known(target: StackRuntime, names: list[str]) -> None:
    model = target.model
    unknown = [name for name in names if name not in model.names]
    if unknown:
        raise DeployError(f"no service {', '.join(unknown)} in the stack", f"use one of: {', '.join(model.names)}")


def restart(settings: Settings, project_root: Path, runtime: Runtime, services: list[str]) -> None:
    started = time.monotonic()
    target = runtime_for(settings, project_root, runtime)
    targets = services or target.model.temporal_services()
    _known(target, targets)
    names = target.restart(targets, _report)
    cli.say(f"restarted {', '.join(names)}; everything healthy again in {time.monotonic() - started:.1f}s")


def upgrade(settings: Settings, project_root: Path, runtime: Runtime, *, to: str, dry_run: bool) -> None:
    """Move the running stack to Temporal `to` ("": the next minor release, or the one an unfinished upgrade was
    moving to) while it serves: the target's build, the schema and the index template first, then one role at a time
    (temporal/upgrade.py: the rules, the order). A failure leaves a record a second run finishes from."""
    started = time.monotonic()
    layout = Layout(settings.stack_dir, settings.search_engine)
    record = read_record(layout) or ReleaseRecord(settings.temporal_version)
    current = check_supported(record.release, "the stack runs").version  # before the runtime's model needs it
    stack = runtime_for(settings.model_copy(update={"temporal_version": current}), project_root, runtime)
    unhealthy = [row.name for row in stack.status() if not row.ok]  # raises when the stack is not running
    if unhealthy:
        raise DeployError(f"the stack must be healthy before its release changes; not healthy: {', '.join(unhealthy)}",
                          f"see `invoke logs {unhealthy[0]}`; `invoke up` restarts what is down")  # fmt: skip
    stack.check_replaceable()
    database_schema = stack.schema_version()
    hop = plan_hop(record, to or record.moving_to or next_release(current), database_schema)
    roles = {regions.role_service(settings, settings.serving, role): settings.hosts(role) for role in hop.roles}
    for line in plan_lines(hop, runtime.value, database_schema, roles):
        cli.say(line)
    if dry_run:
        cli.say("dry run: nothing was built or changed")
        return
    at_target = settings.model_copy(update={"temporal_version": hop.target.version})
    step = time.monotonic()
    stack.prepare_release(at_target, _report)  # a build that fails changes nothing
    cli.say(f"built Temporal {hop.target.version} in {time.monotonic() - step:.1f}s")
    write_record(layout, ReleaseRecord(hop.current.version, hop.target.version))  # until the last role has moved
    try:
        _move(stack, hop, at_target, roles)
    except DeployError as failed:
        raise DeployError(f"{failed.problem}\nthe move to Temporal {hop.target.version} stopped there",
                          f"{failed.fix}; then `invoke upgrade --to {hop.target.version}` finishes it (each step may "
                          f"run again), or `invoke upgrade --to {hop.current.version}` goes back while the schema "
                          "allows") from None  # fmt: skip
    record_release(layout, hop.target.version)
    cli.say(f"the stack runs Temporal {hop.target.version} ({time.monotonic() - started:.1f}s in all)")
    cli.say(pin_setting(project_root, "TEMPORAL_VERSION", hop.target.version))


def _move(stack: StackRuntime, hop: Hop, at_target: Settings, roles: dict[str, int]) -> None:
    if not hop.rollback:
        step = time.monotonic()
        for line in stack.migrate(at_target, _report):
            cli.say(line)
        cli.say(f"schema and index template at {hop.target.version} in {time.monotonic() - step:.1f}s")
    for service in roles:
        step = time.monotonic()
        stack.replace_release(service, at_target)
        cli.say(f"{service}: on {hop.target.version}, the stack healthy again after {time.monotonic() - step:.1f}s")
    stack.finish_release(at_target)


def failover(settings: Settings, project_root: Path, runtime: Runtime, *, to: str, dry_run: bool,
             grace_s: int) -> None:  # fmt: skip
    """Move serving to the stack's other Region (`to` "": the one not serving), each step timed (runtime/regions.py:
    fence the old Region's hosts, start the new Region's, every shard owned, the frontend serving)."""
    to = to or regions.other_region(settings)
    for line in regions.plan_lines(settings, to):
        cli.say(line)
    if dry_run:
        cli.say("dry run: nothing was changed")
        return
    stack = runtime_for(settings, project_root, runtime)
    if not isinstance(stack, DockerRuntime):
        raise DeployError(
            "failover moves Temporal between two Regions' hosts, and the local runtime runs one Region",
            "run it with --runtime docker (on AWS: the Helm steps above)",
        )
    began = time.monotonic()

    def record(serving: Settings) -> None:
        write_compose(serving, host_architecture(), compose_file(project_root))
        cli.say(pin_setting(project_root, "SERVING_REGION", to))

    regions.failover(stack, to, record, lambda step: cli.say(f"{step.what} ({step.seconds:.1f}s)"), grace_s)
    cli.say(f"{to} serves ({time.monotonic() - began:.1f}s in all)")


def logs(settings: Settings, project_root: Path, runtime: Runtime, service: str, lines: int) -> None:
    target = runtime_for(settings, project_root, runtime)
    if service:
        _known(target, [service])
    cli.say(target.logs(service, lines))


def _upstream_tools(settings: Settings, project_root: Path) -> TemporalServer:
    """Upstream's tools and schema files, built from the checkout's server module the first time."""
    return TemporalServer(install_temporal_server(settings, Installer(_report, project_root=project_root)))


def es_setup(settings: Settings, project_root: Path, *, cluster_settings: bool) -> None:
    server = _upstream_tools(settings, project_root)
    cli.say(setup_visibility(settings, server.es_tool, cluster_settings=cluster_settings).describe())


def _applier(settings: Settings, project_root: Path, schema_name: str, schema_dir: str) -> Applier:
    def server() -> TemporalServer:
        return _upstream_tools(settings, project_root)

    source = SchemaSource.resolve(server, schema_name, schema_dir, default_schema_name(settings))
    applier = Applier(settings, source, _report)
    cli.say(f"schema {source.root} → {applier.endpoint.address}/{applier.endpoint.database}")
    return applier


def _summary(result: ApplyReport, started: float) -> None:
    applied = ", ".join(result.versions_applied) or "nothing to apply"
    cli.say(f"schema version {result.from_version or 'none'} → {result.to_version}: {applied}")
    if result.tables_completed:
        cli.say(f"created the tables version {result.to_version} defines and the database lacked: "
                f"{', '.join(result.tables_completed)}")  # fmt: skip
    cli.say(f"{result.statements} statements, {result.index_jobs} index jobs, {result.retries} retries, "
            f"{result.skipped_as_done} already done, {time.monotonic() - started:.1f}s")  # fmt: skip


def _keep_service_role(settings: Settings, applier: Applier) -> None:
    """On DSQL the services' role gets the tables the schema has now (an update may add some)."""
    if settings.is_dsql:
        for done in ensure_service_role(settings, applier.run, applier.source.tables()):
            cli.say(done)


def schema_setup(settings: Settings, project_root: Path, *, version: str, schema_name: str, schema_dir: str,
                 overwrite: bool, confirm: Callable[[str], bool]) -> None:  # fmt: skip
    started = time.monotonic()
    applier = _applier(settings, project_root, schema_name, schema_dir)
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


def schema_update(settings: Settings, project_root: Path, *, target_version: str, schema_name: str,
                  schema_dir: str) -> None:  # fmt: skip
    started = time.monotonic()
    applier = _applier(settings, project_root, schema_name, schema_dir)
    try:
        result = applier.update(target_version)
        _keep_service_role(settings, applier)
    finally:
        applier.close()
    _summary(result, started)


def schema_validate(settings: Settings, project_root: Path, *, schema_name: str, schema_dir: str) -> None:
    applier = _applier(settings, project_root, schema_name, schema_dir)
    try:
        report = applier.validate()
    finally:
        applier.close()
    cli.say(f"applied version {report.version or 'none'}; the version Temporal {settings.temporal_version} runs on "
            f"{report.expected}")  # fmt: skip
    if report.ahead:
        cli.say(f"warning: the database is at a later release's schema ({report.version}); the stack's schema job "
                f"refuses to start Temporal {settings.temporal_version} on it (an older server on a newer schema is "
                f"not supported): set TEMPORAL_VERSION to that release. Checked against {report.expected}")  # fmt: skip
    if report.unexpected_tables:
        cli.say(f"tables the schema does not define (kept): {', '.join(report.unexpected_tables)}")
    if not report.ok:
        listed = [f"missing table {table}" for table in report.missing_tables] + report.drift
        details = "".join(f"\n  - {line}" for line in listed)
        raise DeployError(f"schema drift: version {report.version or 'none'} (expected {report.expected}){details}",
                          "run `invoke schema.update`; a column or index that differs was changed by hand")  # fmt: skip
    cli.say("schema is current: every table, column type and index is as the schema says")


def schema_translate() -> None:
    """The DSQL schema from upstream's: the whole schema at the oldest supported release, then each later upstream
    version's changes as a step of its own (the Go module cache holds both releases' schema files). Written beside
    the shipped one and checked there first; it replaces the shipped one whole, so no version of before stays."""
    source = releases_translation(server_module_dir)
    target = shipped_schemas() / "dsql" / "v12" / "temporal"
    with tempfile.TemporaryDirectory(prefix=".translation-", dir=target.parent) as staging:
        written = Path(staging) / target.name
        try:
            changes = write_translation(source, written)
        except RefusedStepError as exc:
            raise DeployError(f"the translation stopped; nothing was written: {exc}", exc.plan) from None
        findings = lint_files(sorted(written.rglob("*.sql")))
        if findings:
            listed = "\n".join(f"  - {finding}" for finding in findings)
            raise DeployError(f"the translation has statements DSQL refuses; nothing was written:\n{listed}",
                              "extend the rules in database/dsql_schema.py")  # fmt: skip
        shutil.rmtree(target, ignore_errors=True)
        written.rename(target)
    versions = ", ".join([source.baseline_version, *(step.version for step in source.steps)])
    cli.say(f"wrote {target}: versions {versions}, {len(changes)} changes (see CHANGES.md)")
    cli.say("dsql-lint and the key-type check pass on it")


def chart(settings: Settings, project_root: Path, output: Path, *, render: bool,
          workflows_per_second: float | None = None) -> list[str]:  # fmt: skip
    """Write the chart (sized for `workflows_per_second` if given; with `render`, linted and rendered with helm);
    what was done, line by line."""
    done: list[str] = []
    sized = None
    if workflows_per_second is not None:
        lifetime = settings.temporal_sql_max_conn_lifetime.total_seconds()
        sized = size_for(workflows_per_second, chart_settings(settings).temporal_sql_max_conns, lifetime)
        done += sized.lines()
    written = write_chart(settings, output, sized)
    done.append(f"wrote the Helm chart to {written} (Temporal {settings.temporal_version})")
    if render:
        rendered = render_chart(settings, written, Installer(_report, project_root=project_root))
        done.append(f"helm lint --strict passed; {rendered.documents} manifests in {rendered.manifests}")
        if rendered.examples is not None:
            done.append(f"rendered with example values for what this checkout does not know: {rendered.examples}; "
                        "install with your own (`helm install temporal DIR -f my-values.yaml`)")  # fmt: skip
    return done
