"""`invoke bench`: one load against one running Temporal, from a worker process of its own, measured."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil
from temporalio.client import Client
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.database.endpoint import DSQL_LOCAL_BACKEND_DATABASE
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load.driver import Load, Outcome, Progress, drive
from temporal_dsql_deploy.load.probes import COUNTERS, ProcessUsage, database_transactions, scrape
from temporal_dsql_deploy.load.report import RunResult, summarise
from temporal_dsql_deploy.load.stand_in import StandInCounts, admin_client, counts
from temporal_dsql_deploy.process import Spawned, spawn
from temporal_dsql_deploy.runtime import tracking
from temporal_dsql_deploy.runtime.model import temporal_roles
from temporal_dsql_deploy.runtime.stack import LocalStack, ServiceState
from temporal_dsql_deploy.settings.config import Settings

WORKER_READY_S = 60
SAMPLE_INTERVAL_S = 1.0
# PostgreSQL publishes a busy backend's counters at most once a second: let the last ones land.
STATS_SETTLE_S = 2.0


@dataclass(frozen=True)
class Target:
    """A running Temporal to measure, and where to read what it costs."""

    label: str
    address: str
    namespace: str
    metrics_ports: tuple[int, ...]
    processes: Mapping[str, int]  # server-side processes by name (pid); their descendants count with them
    settings: Settings  # reaches the local database whose transactions count
    database: str | None  # None: no local database to count (the dev server's SQLite)
    supervisor: Mapping[str, int] = field(default_factory=dict)  # counted alone: its descendants are the above
    stand_in: bool = False  # Temporal reaches its database through the stack's dsql-local, which counts round trips


def stack_target(label: str, stack: LocalStack, states: list[ServiceState]) -> Target:
    """The local stack as a target: every long-running service counts; it must be healthy."""
    unhealthy = [state.name for state in states if not state.ok]
    if unhealthy:
        raise DeployError(f"the local stack is not healthy ({', '.join(unhealthy)})",
                          "see `invoke status`; `invoke up` restarts what is down")  # fmt: skip
    settings = stack.settings
    record = tracking.StackRecord.read(stack.layout.state)
    database = None
    if settings.sql_is_local:
        database = DSQL_LOCAL_BACKEND_DATABASE if settings.local_dsql else settings.temporal_sql_database
    return Target(
        label=label,
        address=settings.frontend_address,
        namespace=settings.temporal_namespace,
        metrics_ports=tuple(role.metrics_port for role in temporal_roles(settings)),
        processes={state.name: state.pid for state in states if not state.one_shot and state.pid > 0},
        supervisor={"process-compose": record.supervisor_pid} if record and record.supervisor_pid else {},
        settings=settings,
        database=database,
        stand_in=settings.local_dsql,
    )


def start_worker(address: str, namespace: str, task_queue: str, log: Path) -> Spawned:
    """The worker process, once it polls; bounded wait, its log named if it never does."""
    argv = [sys.executable, "-m", "temporal_dsql_deploy.load.worker", "--address", address,
            "--namespace", namespace, "--task-queue", task_queue]  # fmt: skip
    worker = spawn(argv, what="the benchmark worker", log=log)
    waiting = Retrying(stop=stop_after_delay(WORKER_READY_S), wait=wait_fixed(0.2),
                       retry=retry_if_result(lambda ready: not ready))  # fmt: skip

    def ready() -> bool:
        if not worker.alive():
            raise DeployError(f"the benchmark worker exited: {log.read_text(errors='replace')[-1500:]}",
                              f"see {log}; check `invoke status`")  # fmt: skip
        return "ready" in log.read_text(errors="replace")

    try:
        waiting(ready)
    except RetryError:
        worker.stop()
        raise DeployError(
            f"the benchmark worker did not start polling within {WORKER_READY_S}s", f"see {log}"
        ) from None
    except DeployError:
        worker.stop()
        raise
    return worker


async def connect(address: str, namespace: str) -> Client:
    try:
        return await Client.connect(address, namespace=namespace)
    except RuntimeError as exc:
        raise DeployError(f"cannot reach Temporal at {address}: {exc}", "see `invoke status`") from None


async def _transitions(client: Client, outcomes: list[Outcome]) -> int | None:
    done = next((o for o in outcomes if o.error is None), None)
    if done is None:
        return None
    description = await client.get_workflow_handle(done.workflow_id).describe()
    return int(description.raw_description.workflow_execution_info.state_transition_count)


async def _sampled(usages: list[ProcessUsage], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for usage in usages:
            usage.sample()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL_S)


@dataclass(frozen=True)
class Counted:
    """The counters read before and after a run."""

    metrics: dict[str, float]
    transactions: int | None
    stand_in: StandInCounts | None


def _counted(target: Target) -> Counted:
    transactions = database_transactions(target.settings, target.database) if target.database else None
    stand_in = None
    if target.stand_in:
        with admin_client(target.settings) as admin:
            stand_in = counts(admin)
    return Counted(scrape(target.metrics_ports), transactions, stand_in)


def warmup_size(workflows: int) -> int:
    """Workflows run first and not measured: a search engine's JIT and a fresh task queue settle in them."""
    return min(50, max(10, workflows // 5))


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()  # this process only: the worker and servers it started count elsewhere
    return float(times.user + times.system)


async def _measure(target: Target, load: Load, task_queue: str, worker_pid: int, progress: Progress) -> RunResult:
    client = await connect(target.address, target.namespace)
    warmup = replace(load, workflows=warmup_size(load.workflows), rate=0.0, id_prefix=f"{load.id_prefix}-warmup")
    await drive(client, task_queue, warmup, lambda _done, _total: None)
    server, worker = ProcessUsage(target.processes, target.supervisor), ProcessUsage({"bench worker": worker_pid})
    client_cpu = _own_cpu_s()
    before = _counted(target)
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sampled([server, worker], stop))
    outcomes = await drive(client, task_queue, load, progress)
    stop.set()
    await sampler
    client_cpu = _own_cpu_s() - client_cpu
    await asyncio.sleep(STATS_SETTLE_S)
    server.sample()
    after = _counted(target)
    counted = {name: after.metrics[name] - before.metrics[name] for name in COUNTERS}
    summary = summarise(target.label, outcomes)
    completed = max(summary.completed, 1)
    transactions = None
    if after.transactions is not None and before.transactions is not None:
        transactions = after.transactions - before.transactions
    stand_in = after.stand_in - before.stand_in if after.stand_in and before.stand_in else None
    return RunResult(
        shape=load.shape.name,
        workflows=load.workflows,
        concurrency=load.concurrency,
        rate=load.rate,
        state_transitions=await _transitions(client, outcomes),
        db_transactions_per_workflow=None if transactions is None else transactions / completed,
        db_transactions_per_s=None if transactions is None else transactions / summary.duration_s,
        db_round_trips_per_workflow=None if stand_in is None else stand_in.round_trips / completed,
        db_writing_commits_per_workflow=None if stand_in is None else stand_in.writing_commits / completed,
        db_round_trips_by_kind_per_workflow=None
        if stand_in is None
        else {kind: count / completed for kind, count in sorted(stand_in.by_kind.items()) if count},
        persistence_requests_per_workflow=counted["persistence_requests"] / completed,
        conflicts=counted["conflicts"],
        replays=counted["replays"],
        shard_loads=counted["shard_loads"],
        chunked_values_per_workflow=counted["chunked_values"] / completed,
        chunked_kib_per_value=counted["chunked_bytes"] / 1024 / max(counted["chunked_values"], 1),
        chunk_statements_per_value=counted["chunk_statements"] / max(counted["chunked_values"], 1),
        server_cpu_s_per_workflow=server.total_cpu_s / completed,
        cpu_s_by_process={**server.cpu_s, **worker.cpu_s, "bench client": client_cpu},
        peak_rss_mib=server.peak_rss_mib,
        pss_mib_by_process=server.pss_mib(),
        **asdict(summary),
    )


def measure(target: Target, load: Load, work_dir: Path, progress: Progress) -> RunResult:
    """Run `load` against `target` with a fresh task queue and worker; the worker is stopped whatever happens."""
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    load = replace(load, id_prefix=f"{load.id_prefix}-{task_queue}")
    log = work_dir / f"worker-{task_queue}.log"
    with start_worker(target.address, target.namespace, task_queue, log) as worker:
        result = asyncio.run(_measure(target, load, task_queue, worker.pid, progress))
    if result.failed:
        result.failures.append(f"the worker's log: {log}")
    return result
