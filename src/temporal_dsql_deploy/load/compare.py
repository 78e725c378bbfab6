"""`invoke bench --compare`: the same load on the DSQL profile, the PostgreSQL profile and the pinned temporal
CLI's dev server (in memory and on a file), on this machine, one after the other; plus the physical limit:
the stack's PostgreSQL's own commit rate (pgbench, same clients) over each profile's transactions per workflow."""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporal_dsql_deploy.database.local_postgres import ensure_database
from temporal_dsql_deploy.load.bench import Target, measure, stack_target
from temporal_dsql_deploy.load.driver import Load, Progress
from temporal_dsql_deploy.load.report import RunResult
from temporal_dsql_deploy.process import run_tool, spawn
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.components import install_all
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import temporal_cli
from temporal_dsql_deploy.temporal.serving import wait_serving

PROFILES = (("DSQL profile (local default)", "dsql"), ("PostgreSQL profile", "postgres12_pgx"))
DEV_SERVER_IN_MEMORY = "temporal server start-dev (in memory)"
DEV_SERVER_FILE = "temporal server start-dev (file)"
PGBENCH_DATABASE = "pgbench"
PGBENCH_SCALE = 10
PGBENCH_SECONDS = 15
DEV_SERVER_READY_S = 60


@dataclass
class Comparison:
    runs: list[RunResult] = field(default_factory=list)
    pgbench_commits_per_s: float = 0.0
    limits: dict[str, float] = field(default_factory=dict)  # physical limit (workflows/s) per profile

    def ratio(self, label: str, baseline: str) -> float:
        by_label = {run.label: run.completed_per_s for run in self.runs}
        return by_label[label] / by_label[baseline] if by_label.get(baseline) else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pgbench_commit_rate(settings: Settings, paths: Paths, clients: int, work_dir: Path) -> float:
    """Committed transactions per second of pgbench's simple-update on the stack's PostgreSQL."""
    scratch = settings.model_copy(update={"temporal_sql_database": PGBENCH_DATABASE})
    ensure_database(scratch)
    password = settings.temporal_sql_password.get_secret_value() if settings.temporal_sql_password else ""
    target = ["-h", "127.0.0.1", "-p", str(settings.temporal_sql_port), "-U", settings.temporal_sql_user]
    env = {"PGPASSWORD": password}  # in the environment, never on the command line
    pgbench = str(paths.postgres_bin / "pgbench")
    run_tool([pgbench, "-i", "-q", "-s", str(PGBENCH_SCALE), *target, PGBENCH_DATABASE], what="pgbench -i",
             fix="see `invoke logs postgresql`", timeout_s=300, env=env, cwd=work_dir)  # fmt: skip
    output = run_tool([pgbench, "-n", "-N", "-c", str(clients), "-j", "2", "-T", str(PGBENCH_SECONDS), *target,
                       PGBENCH_DATABASE], what="pgbench", fix="see `invoke logs postgresql`",
                      timeout_s=PGBENCH_SECONDS + 120, env=env, cwd=work_dir)  # fmt: skip
    found = re.search(r"tps = ([\d.]+)", output)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps line:\n{output[-800:]}")
    return float(found.group(1))


def _dev_server(
    label: str, load: Load, work_dir: Path, progress: Progress, settings: Settings, database: Path | None
) -> RunResult:
    port, metrics = _free_port(), _free_port()
    argv = [str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
            "--metrics-port", str(metrics), "--http-port", str(_free_port()), "--log-level", "warn"]  # fmt: skip
    if database is not None:
        argv += ["--db-filename", str(database)]
    log = work_dir / f"dev-server-{'file' if database else 'memory'}.log"
    with spawn(argv, what=label, log=log) as server:
        address = f"127.0.0.1:{port}"
        wait_serving(address, "default", DEV_SERVER_READY_S, f"see {log}")
        target = Target(label, address, "default", (metrics,), {label: server.pid}, settings, None)
        return measure(target, load, work_dir, progress)


def compare(
    settings: Settings,
    project_root: Path,
    load: Load,
    work_dir: Path,
    progress: Callable[[str], Progress],
    report: Reporter,
) -> Comparison:
    """Every target in turn on this machine, the user's stack put back as it was afterwards."""
    paths = install_all(settings, project_root, report)
    original = LocalStack(settings, project_root)
    was_running = original.running(paths.process_compose)
    comparison = Comparison()
    try:
        for label, plugin in PROFILES:
            stack = LocalStack(settings.model_copy(update={"temporal_sql_plugin": plugin}), project_root)
            report(f"starting the stack for the {label}")
            states = stack.up(lambda _message: None)
            comparison.runs.append(measure(stack_target(label, stack, states), load, work_dir, progress(label)))
            if not comparison.pgbench_commits_per_s:
                report("pgbench on the stack's PostgreSQL (the physical limit)")
                comparison.pgbench_commits_per_s = pgbench_commit_rate(stack.settings, paths, load.concurrency,
                                                                       work_dir)  # fmt: skip
        original.down(paths.process_compose, volumes=False)  # the dev server gets the machine to itself
        with tempfile.TemporaryDirectory(dir=work_dir, prefix="dev-server-") as scratch:
            for label, database in ((DEV_SERVER_IN_MEMORY, None), (DEV_SERVER_FILE, Path(scratch) / "dev.sqlite")):
                report(f"starting {label}")
                comparison.runs.append(_dev_server(label, load, work_dir, progress(label), settings, database))
    finally:
        if was_running:
            original.up(lambda _message: None)
        else:
            original.down(paths.process_compose, volumes=False)
    for run in comparison.runs:
        if run.db_transactions_per_workflow:
            comparison.limits[f"limit: {run.label}"] = (
                comparison.pgbench_commits_per_s / run.db_transactions_per_workflow
            )
    return comparison
