"""What `invoke bench` does end to end: the run (or the comparison) with a progress bar, the table, the JSON and
the PNG, and what the thresholds say."""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from temporal_dsql_deploy import flags
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import driver
from temporal_dsql_deploy.load.bench import measure, stack_target
from temporal_dsql_deploy.load.compare import DEV_SERVER_IN_MEMORY, PROFILES, Comparison, compare
from temporal_dsql_deploy.load.report import RunResult, missed_thresholds, write_json, write_plot
from temporal_dsql_deploy.load.shapes import SHAPES
from temporal_dsql_deploy.load.stand_in import admin_client, latency_profile
from temporal_dsql_deploy.owned_paths import make_owned_dir
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.components import installed_process_compose
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import DsqlLatency, Settings

TABLE_WIDTH = 190
SHAPE = flags.Choice("--shape", tuple(SHAPES))


@dataclass(frozen=True)
class BenchRequest:
    """What `invoke bench` was asked for, each value already parsed and range-checked by its flag."""

    workflows: int
    concurrency: int
    rate: float
    shape: str
    compare: bool
    output: Path
    min_throughput: float
    max_p99_s: float
    dsql_latency: tuple[DsqlLatency, ...] = ()  # a run under each of dsql-local's profiles; (): as it is set


@dataclass
class BenchOutcome:
    results: list[RunResult]
    files: list[Path]
    missed: list[str] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)


def load_of(request: BenchRequest) -> driver.Load:
    return driver.Load(SHAPES[request.shape], request.workflows, request.concurrency, request.rate)


def machine() -> str:
    memory_gib = psutil.virtual_memory().total / 2**30
    system = f"{platform.system()} {platform.release()}"
    return f"{platform.machine()}, {psutil.cpu_count()} cores, {memory_gib:.0f} GiB, {system}"


@contextlib.contextmanager
def progress_bars(console: Console) -> Iterator[Callable[[str], driver.Progress]]:
    """A bar per run, made on demand: `bar(label)` gives the driver's progress callback."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:

        def bar(label: str) -> driver.Progress:
            task = progress.add_task(label, total=None)
            return lambda done, total: progress.update(task, completed=done, total=total)

        yield bar


def table(results: list[RunResult], limits: dict[str, float]) -> Table:
    view = Table(title="workflows: started/s, completed/s, start-to-close latency; cost per workflow")
    for column in ("target", "started/s", "completed/s", "p50 ms", "p95 ms", "p99 ms", "failed", "db tx/wf",
                   "db tx/s", "db round trips/wf", "persist. req/wf", "conflicts", "replays", "chunked/wf (KiB, stmts)",
                   "CPU s/wf", "RSS MiB", "PSS MiB"):  # fmt: skip
        view.add_column(column, justify="left" if column == "target" else "right")
    for r in results:
        tx = "-" if r.db_transactions_per_workflow is None else f"{r.db_transactions_per_workflow:.1f}"
        tx_s = "-" if r.db_transactions_per_s is None else f"{r.db_transactions_per_s:.0f}"
        trips = "-" if r.db_round_trips_per_workflow is None else f"{r.db_round_trips_per_workflow:.1f}"
        chunked = "-"
        if r.chunked_values_per_workflow:
            per_value = f"{r.chunked_kib_per_value:.0f}, {r.chunk_statements_per_value:.1f}"
            chunked = f"{r.chunked_values_per_workflow:.1f} ({per_value})"
        view.add_row(r.label, f"{r.started_per_s:.1f}", f"{r.completed_per_s:.1f}", f"{r.p50_ms:.0f}",
                     f"{r.p95_ms:.0f}", f"{r.p99_ms:.0f}", str(r.failed), tx, tx_s, trips,
                     f"{r.persistence_requests_per_workflow:.1f}", f"{r.conflicts:.0f}", f"{r.replays:.0f}",
                     chunked, f"{r.server_cpu_s_per_workflow:.3f}", f"{r.peak_rss_mib:.0f}",
                     f"{r.pss_mib:.0f}")  # fmt: skip
    for name, value in limits.items():
        view.add_row(name, "", f"{value:.1f}", *[""] * 14)
    return view


def memory_table(results: list[RunResult]) -> Table:
    """Each process's proportional memory after each run, largest first."""
    view = Table(title="memory after the run: proportional set size (PSS), MiB")
    view.add_column("target")
    view.add_column("total", justify="right")
    view.add_column("by process")
    for r in results:
        ranked = sorted(r.pss_mib_by_process.items(), key=lambda item: -item[1])
        view.add_row(r.label, f"{r.pss_mib:.0f}", ", ".join(f"{name} {mib:.0f}" for name, mib in ranked))
    return view


def _single(settings: Settings, project_root: Path, request: BenchRequest,
            bar: Callable[[str], driver.Progress]) -> list[RunResult]:  # fmt: skip
    stack = LocalStack(settings, project_root)
    process_compose = installed_process_compose(settings)
    if process_compose is None or not stack.running(process_compose):
        raise DeployError("the local stack is not running", "start it with `invoke up`, or use --compare")
    label = "DSQL profile" if stack.settings.local_dsql else f"{stack.settings.temporal_sql_plugin} profile"
    target = stack_target(label, stack, stack.states(process_compose))
    if not request.dsql_latency:
        return [measure(target, load_of(request), request.output, bar(label))]
    if not settings.local_dsql:
        raise DeployError(
            f"--dsql-latency delays dsql-local, which the {label} does not go through",
            "run it on the local DSQL profile: TEMPORAL_SQL_PLUGIN=dsql with the stack's stand-in",
        )
    results = []
    with admin_client(settings) as admin:
        for profile in request.dsql_latency:
            with latency_profile(admin, profile):
                run = replace(target, label=f"{label}, {profile} latency")
                results.append(measure(run, load_of(request), request.output, bar(run.label)))
    return results


def bench_output_dir(settings: Settings, project_root: Path, output: Path) -> Path:
    """`output`, made. Inside a STACK_DIR not made yet (the default, STACK_DIR/bench, before a first `up`): that
    STACK_DIR is made first as the product's, which the stack the bench then starts claims as its own."""
    if output.resolve().is_relative_to(settings.stack_dir.resolve()) and not settings.stack_dir.exists():
        make_owned_dir(settings.stack_dir, project_root=project_root)
    output.mkdir(parents=True, exist_ok=True)
    return output


def run_bench(settings: Settings, project_root: Path, request: BenchRequest, report: Reporter,
              console: Console) -> BenchOutcome:  # fmt: skip
    if request.compare and request.dsql_latency:
        raise DeployError(
            "--dsql-latency and --compare were both given",
            "use --compare for the stores side by side, --dsql-latency for the stack under DSQL's latency",
        )
    load = load_of(request)
    work_dir = bench_output_dir(settings, project_root, request.output)
    comparison = Comparison()
    with progress_bars(console) as bar:
        if request.compare:
            comparison = compare(settings, project_root, load, work_dir, bar, report)
        else:
            comparison.runs = _single(settings, project_root, request, bar)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    title = (f"{load.workflows} {load.shape.name} workflows, concurrency {load.concurrency}"
             f"{f', {load.rate:g}/s' if load.rate else ''}; {machine()}")  # fmt: skip
    extra: dict[str, object] = {
        "machine": machine(),
        "at": stamp,
        "title": title,
        "pgbench_commits_per_s": comparison.pgbench_commits_per_s,
        "limits": comparison.limits,
    }
    name = f"bench-{'compare-' if request.compare else ''}{load.shape.name}-{stamp}"
    files = [write_json(work_dir / f"{name}.json", comparison.runs, extra),
             write_plot(work_dir / f"{name}.png", comparison.runs, comparison.limits, title)]  # fmt: skip
    outcome = BenchOutcome(comparison.runs, files)
    if request.compare:
        default, dev = PROFILES[0][0], DEV_SERVER_IN_MEMORY
        outcome.ratios = [f"{default} / {dev}: {comparison.ratio(default, dev):.2f}",
                          f"{default} / {PROFILES[1][0]}: {comparison.ratio(default, PROFILES[1][0]):.2f}"]  # fmt: skip
        for run in comparison.runs:
            limit = comparison.limits.get(f"limit: {run.label}")
            if limit:
                outcome.ratios.append(f"{run.label} / its physical limit: {run.completed_per_s / limit:.2f}")
    for result in comparison.runs:
        # Thresholds hold the product's stack (the default profile when comparing); a failed workflow fails any run.
        checked = not request.compare or result.label == PROFILES[0][0]
        thresholds = (request.min_throughput, request.max_p99_s * 1000) if checked else (0.0, 0.0)
        outcome.missed += [f"{result.label}: {miss}" for miss in missed_thresholds(result, *thresholds)]
    # Fifteen columns: wider than a log's 80 when there is no terminal to measure.
    wide = Console(file=console.file, width=max(console.width, TABLE_WIDTH), highlight=False)
    wide.print(table(comparison.runs, comparison.limits))
    wide.print(memory_table(comparison.runs))
    return outcome
