"""The benchmark's worker, in a process of its own so its CPU is not the client's:

    python -m temporal_dsql_deploy.load.worker --address 127.0.0.1:7233 --namespace default --task-queue Q

Polls until SIGTERM; prints `ready` once the worker runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal_dsql_deploy.load.shapes import ACTIVITIES, WORKFLOWS

# Enough pollers and slots that the worker is never what limits a benchmark at the concurrencies it runs.
MAX_CONCURRENT = 200


async def serve(address: str, namespace: str, task_queue: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for each in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(each, stopping.set)
    # The shapes are deterministic by construction; the sandbox re-imports modules for every workflow run and
    # would make the worker, not the server under test, the bottleneck (~25 ms of CPU per workflow here).
    worker = Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES,
                    workflow_runner=UnsandboxedWorkflowRunner(),
                    max_concurrent_workflow_tasks=MAX_CONCURRENT, max_concurrent_activities=MAX_CONCURRENT,
                    max_concurrent_workflow_task_polls=8, max_concurrent_activity_task_polls=8)  # fmt: skip
    async with worker:
        print("ready", flush=True)
        await stopping.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.address, args.namespace, args.task_queue))
    except RuntimeError as exc:  # the SDK's connection errors
        print(f"error: the benchmark worker cannot reach Temporal at {args.address}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
