"""Invoke tasks: parse arguments, call the package, report. All logic lives in src/temporal_dsql_deploy."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, task

from temporal_dsql_deploy import cli, operations
from temporal_dsql_deploy.cloud import infra
from temporal_dsql_deploy.database.connectivity import check as check_persistence
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.build import build as build_runtime
from temporal_dsql_deploy.runtime.build import elf_machine
from temporal_dsql_deploy.runtime.render_compose import write_compose
from temporal_dsql_deploy.settings.config import Architecture
from temporal_dsql_deploy.settings.reference import update_readme
from temporal_dsql_deploy.temporal.smoke import run_smoke

ROOT = Path(__file__).resolve().parent
ARCH_HELP = "Target architecture: amd64 or arm64 (default: DOCKER_ARCH, else this machine's)."


def _architecture(value: str) -> Architecture:
    if value == "amd64":
        return "amd64"
    if value == "arm64":
        return "arm64"
    raise DeployError(f"--arch {value!r} is not supported", "use --arch amd64 or --arch arm64")


@task(help={"arch": ARCH_HELP, "output": "Where to write the file (default: compose/docker-compose.yml)."})
@cli.reported
def compose(c: Context, arch: str = "", output: str = "") -> None:
    """Render docker-compose.yml from the service model."""
    settings = cli.settings_for(ROOT)
    target = _architecture(arch or settings.docker_arch)
    path = write_compose(settings, target, Path(output) if output else ROOT / "compose" / "docker-compose.yml")
    cli.say(f"wrote {path} for linux/{target}")


@task(
    help={
        "source": "A temporal-dsql source checkout to build instead of the pinned upstream module.",
        "arch": ARCH_HELP,
    }
)
@cli.reported
def build(c: Context, source: str = "", arch: str = "") -> None:
    """Cross-compile the Temporal server and tools and build the runtime image."""
    settings = cli.settings_for(ROOT)
    target = _architecture(arch or settings.docker_arch)
    result = build_runtime(settings, ROOT, target, Path(source) if source else None, cli.say)
    for binary in result.binaries:
        cli.say(f"built {binary} (linux/{elf_machine(binary)})")
    cli.say(f"image {result.image} built for linux/{target}" if result.image else "no image built")
    for note in result.notes:
        cli.say(note)


@task(help={"yes": "Apply without asking for confirmation.", "dry_run": "Show what would run; change nothing."})
@cli.reported
def deploy(c: Context, yes: bool = False, dry_run: bool = False) -> None:
    """Create the DSQL cluster with Terraform and write .env from its outputs."""
    result = infra.deploy(cli.settings_for(ROOT), ROOT, yes=yes, dry_run=dry_run, confirm=cli.confirm, report=cli.say)
    if dry_run:
        cli.say("dry run: every prerequisite is met; `invoke deploy` would run:")
        for number, step in enumerate(result.steps, start=1):
            cli.say(f"  {number}. {step}")
        return
    cli.say(f"cluster endpoint {result.endpoint} is ACTIVE" + ("" if result.applied else " (nothing to change)"))
    cli.say(".env updated for DSQL" if result.env_changed else ".env already points at this cluster")


RUNTIME_HELP = "local (process supervisor, default) or docker (the rendered compose; needs a Docker engine)."


@task(help={"runtime": RUNTIME_HELP})
@cli.reported
def up(c: Context, runtime: str = "local") -> None:
    """Start the whole stack and return once every service is healthy."""
    operations.up(cli.settings_for(ROOT), ROOT, operations.runtime_of(runtime))


@task(help={"volumes": "Also delete the stack's data (databases, indexes).", "runtime": RUNTIME_HELP})
@cli.reported
def down(c: Context, volumes: bool = False, runtime: str = "local") -> None:
    """Stop the stack; data is kept unless --volumes."""
    operations.down(cli.settings_for(ROOT), ROOT, operations.runtime_of(runtime), volumes=volumes)


@task(help={"runtime": RUNTIME_HELP})
@cli.reported
def status(c: Context, runtime: str = "local") -> None:
    """Show every service's state, health and port; exit non-zero if any is unhealthy."""
    operations.status(cli.settings_for(ROOT), ROOT, operations.runtime_of(runtime))


@task(
    help={
        "interval": "Seconds between redraws (default 5).",
        "rounds": "Show this many rounds, then exit (default: until Ctrl-C); 1 prints one snapshot.",
        "runtime": RUNTIME_HELP,
    }
)
@cli.reported
def top(c: Context, interval: float = 5.0, rounds: int = 0, runtime: str = "local") -> None:
    """Watch the dashboards' key figures live in the terminal (from the stack's metrics store)."""
    operations.top(cli.settings_for(ROOT), operations.runtime_of(runtime), interval, rounds or None)


@task(
    help={
        "service": "Only this service's log (default: all).",
        "lines": "How many lines per log (default 50).",
        "runtime": RUNTIME_HELP,
    }
)
@cli.reported
def logs(c: Context, service: str = "", lines: int = 50, runtime: str = "local") -> None:
    """Print the stack's logs."""
    operations.logs(cli.settings_for(ROOT), ROOT, operations.runtime_of(runtime), service, lines)


@task(
    iterable=["service"],
    help={
        "service": "A service to restart; repeat for more (default: the Temporal services, after checking that "
        "what they depend on is healthy).",
        "runtime": RUNTIME_HELP,
    },
)
@cli.reported
def restart(c: Context, service: list[str] | None = None, runtime: str = "local") -> None:
    """Restart services (the guide's fix for stale connection state) and return when all are healthy again."""
    operations.restart(cli.settings_for(ROOT), ROOT, operations.runtime_of(runtime), service or [])


@task(name="test")
@cli.reported
def smoke_test(c: Context) -> None:
    """Smoke-test the running stack: run the sample workflow and find it through visibility and the UI."""
    report = run_smoke(cli.settings_for(ROOT), ROOT)
    for step, seconds in report.steps:
        cli.say(f"ok  {step} ({seconds:.1f}s)")
    cli.say(f"smoke passed: {report.workflow_id} returned {report.result!r}")


@task(
    help={
        "workflows": "How many workflows to run (default 300).",
        "concurrency": "Workflows in flight at once (default 20).",
        "rate": "Start this many workflows per second instead of as fast as --concurrency allows (default 0: off).",
        "shape": "hello (one activity) or transitions (activities, a timer, a signal, a child; ~15 transitions).",
        "compare": "Run the DSQL profile, the PostgreSQL profile and `temporal server start-dev` (in memory and on a "
        "file) one after the other, plus pgbench's physical limit; the stack is put back as it was.",
        "output": "Directory for the JSON and PNG (default: STACK_DIR/bench).",
        "min_throughput": "Exit non-zero if completed workflows/s is below this (default 0: no threshold).",
        "max_p99": "Exit non-zero if the p99 start-to-close latency is above this many seconds (default 0: none).",
    }
)
@cli.reported
def bench(
    c: Context,
    workflows: int = 300,
    concurrency: int = 20,
    rate: float = 0.0,
    shape: str = "hello",
    compare: bool = False,
    output: str = "",
    min_throughput: float = 0.0,
    max_p99: float = 0.0,
) -> None:
    """Drive workflows against the running stack from a worker process of its own; report throughput, latency and
    what each workflow costs (persistence transactions, conflicts, CPU, memory)."""
    # Imported here: the SDK and matplotlib take seconds to load, and every other task would pay for them.
    from temporal_dsql_deploy.load.command import BenchRequest, run_bench  # noqa: PLC0415

    settings = cli.settings_for(ROOT)
    directory = Path(output) if output else settings.stack_dir / "bench"
    request = BenchRequest(workflows, concurrency, rate, shape, compare, directory, min_throughput, max_p99)
    outcome = run_bench(settings, ROOT, request, cli.say, cli.console)
    for line in outcome.ratios:
        cli.say(line)
    for path in outcome.files:
        cli.say(f"wrote {path}")
    if outcome.missed:
        raise DeployError("; ".join(outcome.missed), "see the table above and the worker logs beside the JSON")


@task(name="check-dsql")
@cli.reported
def check_dsql(c: Context) -> None:
    """Check the DSQL endpoint: token, TLS, SELECT 1, latency and schema version."""
    for step in check_persistence(cli.settings_for(ROOT)).steps:
        cli.say(f"ok  {step}")


@task(
    help={
        "destroy_infra": "Also destroy the DSQL cluster (only if its Project tag equals PROJECT_NAME).",
        "yes": "Do not ask for confirmation.",
    }
)
@cli.reported
def cleanup(c: Context, destroy_infra: bool = False, yes: bool = False) -> None:
    """Stop the stack, remove its data and generated files; optionally destroy the cluster."""
    done = infra.cleanup(
        cli.settings_for(ROOT), ROOT, destroy_infra=destroy_infra, yes=yes, confirm=cli.confirm, report=cli.say
    )
    for line in done or ["nothing to clean up"]:
        cli.say(line)


SCHEMA_NAME_HELP = "A schema this product ships, e.g. postgresql/v12/temporal or dsql/v12/temporal."
SCHEMA_DIR_HELP = "Any versioned schema directory (e.g. a temporal-dsql fork's own schema)."


@task(
    name="setup",
    help={
        "version": "0.0 (bookkeeping only; then schema.update) or the newest version (the whole schema.sql).",
        "schema_name": SCHEMA_NAME_HELP,
        "schema_dir": SCHEMA_DIR_HELP,
        "overwrite": "Drop this schema's tables first (asks for confirmation).",
        "yes": "Do not ask for confirmation.",
    },
)
@cli.reported
def schema_setup(
    c: Context,
    version: str = "",
    schema_name: str = "",
    schema_dir: str = "",
    overwrite: bool = False,
    yes: bool = False,
) -> None:
    """Create the persistence schema at a version."""
    operations.schema_setup(
        cli.settings_for(ROOT),
        version=version,
        schema_name=schema_name,
        schema_dir=schema_dir,
        overwrite=overwrite,
        confirm=lambda question: yes or cli.confirm(question),
    )


@task(
    name="update",
    help={
        "target_version": "Stop at this version (default: the newest).",
        "schema_name": SCHEMA_NAME_HELP,
        "schema_dir": SCHEMA_DIR_HELP,
    },
)
@cli.reported
def schema_update(c: Context, target_version: str = "", schema_name: str = "", schema_dir: str = "") -> None:
    """Apply versioned migrations up to the target version."""
    operations.schema_update(cli.settings_for(ROOT), target_version=target_version, schema_name=schema_name,
                             schema_dir=schema_dir)  # fmt: skip


@task(name="validate", help={"schema_name": SCHEMA_NAME_HELP, "schema_dir": SCHEMA_DIR_HELP})
@cli.reported
def schema_validate(c: Context, schema_name: str = "", schema_dir: str = "") -> None:
    """Report the applied schema version and any drift from the schema files; non-zero if behind or missing tables."""
    operations.schema_validate(cli.settings_for(ROOT), schema_name=schema_name, schema_dir=schema_dir)


@task(
    name="setup",
    help={"cluster_settings": "Also apply Temporal's cluster-wide settings (off: shared clusters stay untouched)."},
)
@cli.reported
def es_setup(c: Context, cluster_settings: bool = False) -> None:
    """Create the visibility index template and index from Temporal's own schema, then verify the mapping."""
    operations.es_setup(cli.settings_for(ROOT), cluster_settings=cluster_settings)


@task
@cli.reported
def docs(c: Context) -> None:
    """Regenerate the README's configuration reference from the settings object."""
    changed = update_readme(ROOT / "README.md")
    cli.say("README.md updated" if changed else "README.md already current")


@task(name="translate")
@cli.reported
def schema_translate(c: Context) -> None:
    """Regenerate schema/dsql/v12/temporal from the pinned upstream PostgreSQL schema, with CHANGES.md."""
    operations.schema_translate(cli.settings_for(ROOT))


schema = Collection("schema", schema_setup, schema_update, schema_validate, schema_translate)
es = Collection("es", es_setup)
namespace = Collection(
    compose,
    docs,
    build,
    deploy,
    up,
    down,
    restart,
    status,
    top,
    logs,
    smoke_test,
    bench,
    check_dsql,
    cleanup,
    schema,
    es,
)
