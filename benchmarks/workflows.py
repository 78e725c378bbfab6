"""Temporal on the dsql plugin against Temporal on PostgreSQL: hello-activity workflows on this machine.

    nox -s bench_workflows        (or: python benchmarks/workflows.py [--workflows 300] [--concurrency 20])

Three runs of the same workload (N workflows, C at a time, client and worker in this process): the DSQL
profile (the plugin through dsql-local), the same with 10% of commits failing with OC000 (injected), and
the PostgreSQL profile. Prints workflows/s, p50/p99 start-to-result latency, and per 1,000 workflows the
conflicts the plugin met, its replays and their outcomes, and history shard (re)loads (Temporal's own
sharditem_created_count beyond the first load), read from the history service's metrics. Leaves the
stack as it found it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

from hello_activity import GreetingWorkflow, compose_greeting  # noqa: E402

from temporal_dsql_deploy.cli import settings_for  # noqa: E402
from temporal_dsql_deploy.components import install_all  # noqa: E402
from temporal_dsql_deploy.config import Settings  # noqa: E402
from temporal_dsql_deploy.model import temporal_roles  # noqa: E402
from temporal_dsql_deploy.stack import LocalStack  # noqa: E402

COUNTERS = {"conflicts": r"dsql_conflicts", "replayed": r'dsql_transaction_replays\{[^}]*outcome="replayed"',
            "not_replayed": r'dsql_transaction_replays\{[^}]*outcome="changed_or_failed"',
            "shard_loads": r"sharditem_created_count"}  # fmt: skip


@dataclass
class Result:
    label: str
    throughput: float
    p50_ms: float
    p99_ms: float
    failed: int
    counters: dict[str, float]


def _history_metrics(settings: Settings) -> dict[str, float]:
    port = next(role.metrics_port for role in temporal_roles(settings) if role.role == "history")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    totals = dict.fromkeys(COUNTERS, 0.0)
    for line in text.splitlines():
        for name, pattern in COUNTERS.items():
            if not line.startswith("#") and re.match(pattern, line):
                totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


async def _workload(settings: Settings, workflows: int, concurrency: int) -> tuple[float, list[float], int]:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    queue = f"bench-{uuid.uuid4()}"
    latencies: list[float] = []
    failed = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        nonlocal failed
        async with gate:
            started = time.perf_counter()
            try:
                await client.execute_workflow(GreetingWorkflow.run, f"bench-{index}", id=f"{queue}-{index}",
                                              task_queue=queue)  # fmt: skip
                latencies.append((time.perf_counter() - started) * 1000)
            except Exception:
                failed += 1

    async with Worker(client, task_queue=queue, workflows=[GreetingWorkflow], activities=[compose_greeting]):
        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(workflows)))
        elapsed = time.perf_counter() - began
    return elapsed, latencies, failed


def _run(label: str, settings: Settings, workflows: int, concurrency: int, conflict_rate: float) -> Result:
    stack = LocalStack(settings, ROOT)
    stack.up(lambda _message: None)
    settings = stack.settings
    faults = f"http://127.0.0.1:{settings.dsql_local_admin_port}/faults"
    httpx.post(faults, data={"conflict_rate": str(conflict_rate), "seed": "5"}, timeout=10).raise_for_status()
    try:
        before = _history_metrics(settings)
        elapsed, latencies, failed = asyncio.run(_workload(settings, workflows, concurrency))
        after = _history_metrics(settings)
    finally:
        httpx.post(faults, data={"conflict_rate": "0", "seed": "1"}, timeout=10).raise_for_status()
    per_thousand = {name: (after[name] - before[name]) * 1000 / workflows for name in COUNTERS}
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Result(label, len(latencies) / elapsed, cuts[49], cuts[98], failed, per_thousand)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    base = settings_for(ROOT)
    process_compose = install_all(base, ROOT, lambda message: print(f"  {message}")).process_compose
    original = LocalStack(base, ROOT)
    was_running = original.running(process_compose)
    runs = [
        ("DSQL profile", "dsql", 0.0),
        ("DSQL, 10% conflicts", "dsql", 0.1),
        ("PostgreSQL profile", "postgres12_pgx", 0.0),
    ]
    results = [_run(label, base.model_copy(update={"temporal_sql_plugin": plugin}), args.workflows, args.concurrency,
                    rate) for label, plugin, rate in runs]  # fmt: skip
    if was_running:
        original.up(lambda _message: None)  # the user's own configuration again
    else:
        original.down(process_compose, volumes=False)
    print(f"{args.workflows} hello-activity workflows, {args.concurrency} at a time, client and worker in one process")
    print(f"{'':<22} {'wf/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}   per 1,000 workflows: conflicts, "
          "replayed, not replayed, shard loads")  # fmt: skip
    for r in results:
        c = r.counters
        counts = f"{c['conflicts']:7.1f} {c['replayed']:8.1f} {c['not_replayed']:12.1f} {c['shard_loads']:11.1f}"
        print(f"{r.label:<22} {r.throughput:6.1f} {r.p50_ms:7.0f} {r.p99_ms:7.0f} {r.failed:6d}   {counts}")
    print(f"DSQL profile / PostgreSQL profile throughput: {results[0].throughput / results[2].throughput:.2f}")


if __name__ == "__main__":
    main()
