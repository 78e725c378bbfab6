"""Invoke tasks: parse arguments, call the package, report. All logic lives in src/temporal_dsql_deploy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, get_args

from invoke import Collection, Context, task

from temporal_dsql_deploy import cli, flags
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.settings.config import Architecture, DsqlLatency
from temporal_dsql_deploy.settings.releases import RELEASES

# What the tasks call loads when a task first calls it (so each task reads its settings before it): `invoke --list`
# answers in 0.6 s against 1.0 s here, a refused setting in 0.75 s against 1.25 s.
if TYPE_CHECKING:
    from temporal_dsql_deploy import connectivity, operations
    from temporal_dsql_deploy.cloud import infra
    from temporal_dsql_deploy.runtime import build as runtime_build
    from temporal_dsql_deploy.runtime import render_compose
    from temporal_dsql_deploy.settings import reference
    from temporal_dsql_deploy.temporal import smoke
else:
    connectivity = cli.lazy_module("temporal_dsql_deploy.connectivity")
    operations = cli.lazy_module("temporal_dsql_deploy.operations")
    infra = cli.lazy_module("temporal_dsql_deploy.cloud.infra")
    runtime_build = cli.lazy_module("temporal_dsql_deploy.runtime.build")
    render_compose = cli.lazy_module("temporal_dsql_deploy.runtime.render_compose")
    reference = cli.lazy_module("temporal_dsql_deploy.settings.reference")
    smoke = cli.lazy_module("temporal_dsql_deploy.temporal.smoke")

ROOT = Path(__file__).resolve().parent

# Every argument but a switch is declared `str` (Invoke passes the text typed) and parsed by one of these, whose
# help states the range it checks. Text arguments default to None: given, they must not be blank.
ARCH = flags.Choice("--arch", get_args(Architecture))
ARCH_HELP = ARCH.help("Target architecture", "DOCKER_ARCH, else this machine's")
OUTPUT = flags.Text("--output", "a path")
SOURCE = flags.Text("--source", "a directory")


def _architecture(arch: str | None, default: Architecture) -> Architecture:
    return default if arch is None else ARCH.parse(arch)


@task(help={"arch": ARCH_HELP, "output": OUTPUT.help("Where to write the file", "compose/docker-compose.yml")})
@cli.reported
def compose(c: Context, arch: str | None = None, output: str | None = None) -> None:
    """Render docker-compose.yml from the service model."""
    settings = cli.settings_for(ROOT)
    target = _architecture(arch, settings.docker_arch)
    destination = Path(OUTPUT.parse(output) or ROOT / "compose" / "docker-compose.yml")
    path = render_compose.write_compose(settings, target, destination)
    cli.say(f"wrote {path} for linux/{target}")


LOAD = flags.Amount("--workflows-per-second", 0.1, 100_000, "workflows per second")


@task(
    help={
        "output": OUTPUT.help("The directory to write the chart to (new, empty, or one this task wrote)", "chart"),
        "workflows_per_second": LOAD.help(
            "Size the chart for this load: hosts per role, history shards and pools "
            "from measured per-host capacity, refused past DSQL's quotas (prints the "
            "plan)",
            "the hosts of TEMPORAL_*_HOSTS",
        ),
        "render": "Also run helm (pinned, built on first use): `helm lint --strict`, then `helm template` with the "
        "chart's defaults into OUTPUT/rendered/ (example values for what only you know, e.g. the cluster endpoint).",
    }
)
@cli.reported
def chart(c: Context, output: str | None = None, render: bool = False, workflows_per_second: str | None = None) -> None:
    """Write the Helm chart of Temporal on DSQL, generated from the service model."""
    settings = cli.settings_for(ROOT)
    load = None if workflows_per_second is None else LOAD.parse(workflows_per_second)
    written = operations.chart(
        settings, ROOT, Path(OUTPUT.parse(output) or ROOT / "chart"), render=render, workflows_per_second=load
    )
    for line in written:
        cli.say(line)


@task(
    help={
        "source": SOURCE.help("A temporal-dsql source checkout to build instead of the pinned upstream module"),
        "arch": ARCH_HELP,
        "images": "Build the stack's images too where a Docker engine answers (the default); --no-images: the "
        "programs alone, whatever the engine",
    }
)
@cli.reported
def build(c: Context, source: str | None = None, arch: str | None = None, images: bool = True) -> None:
    """Cross-compile the stack's programs and, where an engine answers, build the stack's images."""
    settings = cli.settings_for(ROOT)
    target = _architecture(arch, settings.docker_arch)
    checkout = SOURCE.parse(source)
    result = runtime_build.build(settings, ROOT, target, Path(checkout) if checkout else None, cli.say, images=images)
    for binary in result.binaries:
        cli.say(f"built {binary} (linux/{runtime_build.elf_machine(binary)})")
    for image in result.images:
        cli.say(f"image {image} is current for linux/{target}")
    for note in result.notes:
        cli.say(note)


@task(help={"yes": "Apply without asking for confirmation.", "dry_run": "Show what would run; change nothing."})
@cli.reported
def deploy(c: Context, yes: bool = False, dry_run: bool = False) -> None:
    """Create the DSQL cluster with Terraform and write .env from its outputs."""
    settings = cli.settings_for(ROOT)
    result = infra.deploy(settings, ROOT, yes=yes, dry_run=dry_run, confirm=cli.confirm, report=cli.say)
    if dry_run:
        cli.say("dry run: every prerequisite is met; `invoke deploy` would run:")
        for number, step in enumerate(result.steps, start=1):
            cli.say(f"  {number}. {step}")
        return
    cli.say(f"cluster endpoint {result.endpoint} is ACTIVE" + ("" if result.applied else " (nothing to change)"))
    cli.say(".env updated for DSQL" if result.env_changed else ".env already points at this cluster")


RUNTIME = flags.Choice("--runtime", tuple(Runtime))
RUNTIME_HELP = RUNTIME.help("How the stack runs (local: the process supervisor; docker: the rendered compose, which "
                            "needs a Docker engine)", "local")  # fmt: skip
# A redraw faster than the store's fastest scrape (METRICS_SCRAPE_INTERVAL >= 1s) shows nothing new.
INTERVAL = flags.Amount("--interval", 1, 3600, "seconds")
ROUNDS = flags.Count("--rounds", 100_000, note="leave it out to watch until Ctrl-C")
SERVICE = flags.Text("--service", "a service name")
LINES = flags.Count("--lines", 100_000)


@task(help={"runtime": RUNTIME_HELP})
@cli.reported
def up(c: Context, runtime: str = "local") -> None:
    """Start the whole stack and return once every service is healthy."""
    settings = cli.settings_for(ROOT)
    operations.up(settings, ROOT, RUNTIME.parse(runtime))


@task(
    help={
        "volumes": "Also delete the stack's data (databases, indexes; asks first).",
        "runtime": RUNTIME_HELP,
        "yes": "With --volumes: delete without asking for confirmation.",
    }
)
@cli.reported
def down(c: Context, volumes: bool = False, runtime: str = "local", yes: bool = False) -> None:
    """Stop the stack; data is kept unless --volumes."""
    settings = cli.settings_for(ROOT)
    operations.down(settings, ROOT, RUNTIME.parse(runtime), volumes=volumes, yes=yes)


@task(help={"runtime": RUNTIME_HELP})
@cli.reported
def status(c: Context, runtime: str = "local") -> None:
    """Show every service's state, health and port; exit non-zero if any is unhealthy."""
    settings = cli.settings_for(ROOT)
    operations.status(settings, ROOT, RUNTIME.parse(runtime))


@task(
    help={
        "interval": INTERVAL.help("Time between redraws", "5"),
        "rounds": ROUNDS.help("Show this many rounds, then exit (1 prints one snapshot)"),
        "runtime": RUNTIME_HELP,
    }
)
@cli.reported
def top(c: Context, interval: str = "5", rounds: str | None = None, runtime: str = "local") -> None:
    """Watch the dashboards' key figures live in the terminal (from the stack's metrics store)."""
    count = None if rounds is None else ROUNDS.parse(rounds)
    settings = cli.settings_for(ROOT)
    operations.top(settings, ROOT, RUNTIME.parse(runtime), INTERVAL.parse(interval), count)


# Invoke has no optional positional argument (pyinvoke/invoke#159), so `invoke logs SERVICE`, the form every
# fix message shows, makes the service required, and every service's log is `invoke logs all`.
EVERY_SERVICE = "all"
LOG_SERVICE = flags.Text("--service", f"a service name or {EVERY_SERVICE}")


@task(
    positional=["service"],
    help={
        "service": LOG_SERVICE.help(f"Whose log ({EVERY_SERVICE}: every service's)"),
        "lines": LINES.help("How many lines per log, the last ones", "50"),
        "runtime": RUNTIME_HELP,
    },
)
@cli.reported
def logs(c: Context, service: str | None = None, lines: str = "50", runtime: str = "local") -> None:
    """Print a service's log (`invoke logs temporal-history`), or every service's (`invoke logs all`)."""
    name = LOG_SERVICE.parse(service)
    settings = cli.settings_for(ROOT)
    operations.logs(settings, ROOT, RUNTIME.parse(runtime), "" if name == EVERY_SERVICE else name,
                    LINES.parse(lines))  # fmt: skip


@task(
    iterable=["service"],
    help={
        "service": SERVICE.help(
            "A service to restart; repeat for more",
            "the Temporal services, after checking that what they depend on is healthy",
        ),
        "runtime": RUNTIME_HELP,
    },
)
@cli.reported
def restart(c: Context, service: list[str] | None = None, runtime: str = "local") -> None:
    """Restart services (the guide's fix for stale connection state) and return when all are healthy again."""
    names = [SERVICE.parse(name) for name in service or []]
    settings = cli.settings_for(ROOT)
    operations.restart(settings, ROOT, RUNTIME.parse(runtime), names)


RELEASE = flags.Choice("--to", tuple(release.version for release in RELEASES))
REGION = flags.Text("--to", "an AWS Region, e.g. us-west-2")
# Temporal's own shutdown gives a host 30 s at most to hand its shards over; more would only delay the failover.
GRACE = flags.Amount("--grace", 1, 30, "seconds", off=True)


@task(
    help={
        "to": RELEASE.help("The Temporal release to move the running stack to", "the next minor release"),
        "dry_run": "Print the plan (path, schema steps, template, the roles' order); change nothing.",
        "runtime": RUNTIME_HELP,
    }
)
@cli.reported
def upgrade(c: Context, to: str | None = None, dry_run: bool = False, runtime: str = "local") -> None:
    """Move the running stack to another Temporal release while it serves: build it, apply the schema steps and the
    index template, then replace the roles one at a time (one minor release per upgrade, as upstream requires)."""
    target = "" if to is None else RELEASE.parse(to)
    settings = cli.settings_for(ROOT)
    operations.upgrade(settings, ROOT, RUNTIME.parse(runtime), to=target, dry_run=dry_run)


@task(
    help={
        "to": REGION.help("The Region to serve from: the stack's other one", "the Region that does not serve now"),
        "dry_run": "Print the steps, as they run here and with the chart on AWS; change nothing.",
        "runtime": RUNTIME.help(
            "How the stack runs; failover needs docker, as the local runtime runs one Region", "docker"
        ),
        "grace": GRACE.help(
            "How long each of the serving Region's hosts has to hand its shards over before it is "
            "killed; 0 for a Region that is cut off, whose hosts can hand nothing over",
            "20",
        ),
    }
)
@cli.reported
def failover(c: Context, to: str | None = None, dry_run: bool = False, runtime: str = "docker",
             grace: str = "20") -> None:  # fmt: skip
    """Move serving to the peered cluster's other Region: stop (fence) the serving Region's Temporal hosts, start the
    other Region's on its endpoint, wait until they own every shard and the frontend serves; each step timed."""
    region = REGION.parse(to)
    settings = cli.settings_for(ROOT)
    operations.failover(settings, ROOT, RUNTIME.parse(runtime), to=region, dry_run=dry_run,
                        grace_s=round(GRACE.parse(grace)))  # fmt: skip


@task(name="test")
@cli.reported
def smoke_test(c: Context) -> None:
    """Smoke-test the running stack: run the sample workflow and find it through visibility and the UI."""
    settings = cli.settings_for(ROOT)
    report = smoke.run_smoke(settings, ROOT)
    for step, seconds in report.steps:
        cli.say(f"ok  {step} ({seconds:.1f}s)")
    cli.say(f"smoke passed: {report.workflow_id} returned {report.result!r}")


# The driver schedules every workflow at once (about 1.5 KiB each before it starts: 150 MiB at 100,000), and at
# the 10-30 workflows/s measured on this project's machine 100,000 already take one to three hours.
WORKFLOWS = flags.Count("--workflows", 100_000)
# Each workflow in flight is an open start call and result poll of this one client process; 1,000 (or 1,000
# starts a second) is over 30 times what the stack completes here, so more would only queue in the client.
CONCURRENCY = flags.Count("--concurrency", 1_000)
RATE = flags.Amount("--rate", 0.1, 1_000, "workflows per second", off=True)
MIN_THROUGHPUT = flags.Amount("--min-throughput", 0.01, 1_000, "workflows per second", off=True)
# A workflow still open after 300 s counts as failed (load/driver.py WORKFLOW_TIMEOUT_S), never in the p99.
MAX_P99 = flags.Amount("--max-p99", 0.01, 300, "seconds", off=True)
DSQL_LATENCY = flags.Choices("--dsql-latency", get_args(DsqlLatency))


@task(
    help={
        "workflows": WORKFLOWS.help("How many workflows to run", "300"),
        "concurrency": CONCURRENCY.help("Workflows in flight at once", "20"),
        "rate": RATE.help("Start this many workflows per second instead of as fast as --concurrency allows", "0"),
        "shape": "The workload: one of: hello, transitions, large (default hello); hello is one activity, "
        "transitions activities, a timer, a signal and a child (~15 transitions), large one activity with a 1.5 MiB "
        "input and result (the dsql plugin's pieces).",
        "compare": "Run the DSQL profile, the PostgreSQL profile and `temporal server start-dev` (in memory and on a "
        "file) one after the other, plus pgbench's physical limit; the stack is put back as it was.",
        "output": OUTPUT.help("Directory for the JSON and PNG", "STACK_DIR/bench"),
        "min_throughput": MIN_THROUGHPUT.help("Exit non-zero if completed workflows/s is below this", "0"),
        "max_p99": MAX_P99.help("Exit non-zero if the p99 start-to-close latency is above this", "0"),
        "dsql_latency": DSQL_LATENCY.help(
            "A run under each of these dsql-local latency profiles in turn, on the DSQL "
            "profile (the stand-in is set back after; the table shows the database "
            "round trips per workflow it counted)"
        ),
    }
)
@cli.reported
def bench(
    c: Context,
    workflows: str = "300",
    concurrency: str = "20",
    rate: str = "0",
    shape: str = "hello",
    compare: bool = False,
    output: str | None = None,
    min_throughput: str = "0",
    max_p99: str = "0",
    dsql_latency: str | None = None,
) -> None:
    """Drive workflows against the running stack from a worker process of its own; report throughput, latency and
    what each workflow costs (persistence transactions, conflicts, CPU, memory)."""
    # Imported here: the SDK and matplotlib take seconds to load, and every other task would pay for them.
    from temporal_dsql_deploy.load.command import SHAPE, BenchRequest, run_bench  # noqa: PLC0415

    settings = cli.settings_for(ROOT)
    directory = OUTPUT.parse(output)
    request = BenchRequest(WORKFLOWS.parse(workflows), CONCURRENCY.parse(concurrency), RATE.parse(rate),
                           SHAPE.parse(shape), compare, Path(directory) if directory else settings.stack_dir / "bench",
                           MIN_THROUGHPUT.parse(min_throughput), MAX_P99.parse(max_p99),
                           DSQL_LATENCY.parse(dsql_latency) if dsql_latency is not None else ())  # fmt: skip
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
    settings = cli.settings_for(ROOT)
    for step in connectivity.check(settings).steps:
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
    settings = cli.settings_for(ROOT)
    done = infra.cleanup(settings, ROOT, destroy_infra=destroy_infra, yes=yes, confirm=cli.confirm, report=cli.say)
    for line in done or ["nothing to clean up"]:
        cli.say(line)


SCHEMA_NAME = flags.Text("--schema-name", "a schema name")
SCHEMA_NAME_HELP = SCHEMA_NAME.help("A schema this product ships (postgresql/v12/temporal or dsql/v12/temporal)")
SCHEMA_DIR = flags.Text("--schema-dir", "a directory")
SCHEMA_DIR_HELP = SCHEMA_DIR.help("Any versioned schema directory (e.g. a temporal-dsql fork's own schema)")
VERSION = flags.Text("--version", "a schema version")
TARGET_VERSION = flags.Text("--target-version", "a schema version")


@task(
    name="setup",
    help={
        "version": VERSION.help(
            "0.0 (bookkeeping only; then schema.update) or the newest version (the whole schema.sql)", "0.0"
        ),
        "schema_name": SCHEMA_NAME_HELP,
        "schema_dir": SCHEMA_DIR_HELP,
        "overwrite": "Drop this schema's tables first (asks for confirmation).",
        "yes": "Do not ask for confirmation.",
    },
)
@cli.reported
def schema_setup(
    c: Context,
    version: str | None = None,
    schema_name: str | None = None,
    schema_dir: str | None = None,
    overwrite: bool = False,
    yes: bool = False,
) -> None:
    """Create the persistence schema at a version."""
    settings = cli.settings_for(ROOT)
    operations.schema_setup(
        settings,
        ROOT,
        version=VERSION.parse(version),
        schema_name=SCHEMA_NAME.parse(schema_name),
        schema_dir=SCHEMA_DIR.parse(schema_dir),
        overwrite=overwrite,
        confirm=lambda question: yes or cli.confirm(question),
    )


@task(
    name="update",
    help={
        "target_version": TARGET_VERSION.help("Stop at this version", "the newest"),
        "schema_name": SCHEMA_NAME_HELP,
        "schema_dir": SCHEMA_DIR_HELP,
    },
)
@cli.reported
def schema_update(
    c: Context, target_version: str | None = None, schema_name: str | None = None, schema_dir: str | None = None
) -> None:
    """Apply versioned migrations up to the target version."""
    settings = cli.settings_for(ROOT)
    operations.schema_update(
        settings,
        ROOT,
        target_version=TARGET_VERSION.parse(target_version),
        schema_name=SCHEMA_NAME.parse(schema_name),
        schema_dir=SCHEMA_DIR.parse(schema_dir),
    )


@task(name="validate", help={"schema_name": SCHEMA_NAME_HELP, "schema_dir": SCHEMA_DIR_HELP})
@cli.reported
def schema_validate(c: Context, schema_name: str | None = None, schema_dir: str | None = None) -> None:
    """Compare the database with the schema version TEMPORAL_VERSION runs on: the applied version, the tables, their
    columns and types, the indexes; non-zero on any drift."""
    settings = cli.settings_for(ROOT)
    operations.schema_validate(settings, ROOT, schema_name=SCHEMA_NAME.parse(schema_name),
                               schema_dir=SCHEMA_DIR.parse(schema_dir))  # fmt: skip


@task(
    name="setup",
    help={"cluster_settings": "Also apply Temporal's cluster-wide settings (off: shared clusters stay untouched)."},
)
@cli.reported
def es_setup(c: Context, cluster_settings: bool = False) -> None:
    """Create the visibility index template and index from Temporal's own schema, then verify the mapping."""
    settings = cli.settings_for(ROOT)
    operations.es_setup(settings, ROOT, cluster_settings=cluster_settings)


@task
@cli.reported
def docs(c: Context) -> None:
    """Regenerate the README's configuration reference from the settings object."""
    changed = reference.update_readme(ROOT / "README.md")
    cli.say("README.md updated" if changed else "README.md already current")


@task(name="translate")
@cli.reported
def schema_translate(c: Context) -> None:
    """Regenerate schema/dsql/v12/temporal from upstream's PostgreSQL schema: the whole schema at the oldest supported
    release, then a step per later upstream version with only its changes; CHANGES.md says why each differs."""
    operations.schema_translate()


schema = Collection("schema", schema_setup, schema_update, schema_validate, schema_translate)
es = Collection("es", es_setup)
namespace = Collection(
    compose,
    chart,
    docs,
    build,
    deploy,
    up,
    down,
    upgrade,
    failover,
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
