"""Drive N workflows of one shape at a concurrency (closed loop) or a start rate (open loop) and time each
from its start request to its result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from temporal_dsql_deploy.load.shapes import Shape

WORKFLOW_TIMEOUT_S = 300  # a workflow still open after this counts as failed, not waited on for ever
Progress = Callable[[int, int], None]  # (closed so far, total)


@dataclass(frozen=True)
class Outcome:
    """One workflow as the client saw it; times are seconds since the load began."""

    workflow_id: str
    index: int
    started_s: float
    closed_s: float
    result: str | None
    error: str | None

    @property
    def latency_s(self) -> float:
        return self.closed_s - self.started_s


@dataclass(frozen=True)
class Load:
    shape: Shape
    workflows: int
    concurrency: int
    rate: float = 0.0  # starts per second; 0: as fast as the concurrency allows
    id_prefix: str = "bench"


async def drive(client: Client, task_queue: str, load: Load, progress: Progress) -> list[Outcome]:
    """Run the load to the end; every workflow yields an outcome, failures included."""
    gate = asyncio.Semaphore(load.concurrency)
    began = time.perf_counter()
    outcomes: list[Outcome] = []

    async def one(index: int) -> None:
        if load.rate > 0:
            await asyncio.sleep(max(0.0, began + index / load.rate - time.perf_counter()))
        async with gate:
            workflow_id = f"{load.id_prefix}-{index}"
            started = time.perf_counter() - began
            result: str | None = None
            error: str | None = None
            try:
                handle = await client.start_workflow(
                    load.shape.workflow, load.shape.argument(index), id=workflow_id, task_queue=task_queue,
                    start_signal=load.shape.start_signal, start_signal_args=load.shape.signal_args(),
                )  # fmt: skip
                result = await asyncio.wait_for(handle.result(), WORKFLOW_TIMEOUT_S)
            except (WorkflowFailureError, RPCError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            outcomes.append(Outcome(workflow_id, index, started, time.perf_counter() - began, result, error))
            progress(len(outcomes), load.workflows)

    await asyncio.gather(*(one(index) for index in range(load.workflows)))
    return sorted(outcomes, key=lambda outcome: outcome.index)
