"""Workflows the integration tests run: a timer, a signal and a child workflow; large payloads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@workflow.defn
class ChildWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        return value * 2


@workflow.defn
class TimerSignalChildWorkflow:
    def __init__(self) -> None:
        self._released: int | None = None

    @workflow.signal
    def release(self, value: int) -> None:
        self._released = value

    @workflow.run
    async def run(self) -> int:
        await workflow.sleep(timedelta(seconds=1))  # a durable timer
        await workflow.wait_condition(lambda: self._released is not None, timeout=timedelta(seconds=60))
        assert self._released is not None
        return await workflow.execute_child_workflow(
            ChildWorkflow.run, self._released, id=f"{workflow.info().workflow_id}-child"
        )


@workflow.defn
class TaggedWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "tagged"


@activity.defn
async def echo_bytes(data: bytes) -> bytes:
    return data


@workflow.defn
class LargePayloadWorkflow:
    """Carries a large payload in each place Temporal stores one: input, signal and activity result."""

    def __init__(self) -> None:
        self._signalled: bytes | None = None

    @workflow.signal
    def deliver(self, data: bytes) -> None:
        self._signalled = data

    @workflow.run
    async def run(self, data: bytes) -> int:
        await workflow.wait_condition(lambda: self._signalled is not None, timeout=timedelta(seconds=60))
        assert self._signalled is not None
        echoed = await workflow.execute_activity(
            echo_bytes, self._signalled, start_to_close_timeout=timedelta(seconds=60)
        )
        return len(data) + len(echoed)


@workflow.defn
class LargeBatchWorkflow:
    """Schedules several activities with large inputs in one workflow task: one batch of history events holding
    them all; their results come back while other results are buffered."""

    @workflow.run
    async def run(self, count: int, size: int) -> int:
        inputs = [workflow.random().randbytes(size) for _ in range(count)]
        results = await asyncio.gather(
            *(
                workflow.execute_activity(echo_bytes, data, start_to_close_timeout=timedelta(seconds=60))
                for data in inputs
            )
        )
        assert list(results) == inputs
        return sum(len(result) for result in results)


@activity.defn
async def heartbeat_large_then_fail(size: int) -> int:
    """Heartbeats large details on its first attempt and fails; the retry gets the details back."""
    if activity.info().attempt == 1:
        activity.heartbeat(bytes(size))
        await asyncio.sleep(2)  # the heartbeat is sent before the failure
        raise RuntimeError("first attempt fails after its heartbeat")
    (details,) = activity.info().heartbeat_details
    return len(details) if isinstance(details, bytes) else -1


@workflow.defn
class LargeHeartbeatWorkflow:
    @workflow.run
    async def run(self, size: int) -> int:
        return await workflow.execute_activity(
            heartbeat_large_then_fail, size, start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
        )  # fmt: skip


@workflow.defn
class SignalCountWorkflow:
    """A long history: its large input first, then one event per signal until told to stop."""

    def __init__(self) -> None:
        self._count = 0
        self._done = False

    @workflow.signal
    def tick(self, last: bool) -> None:
        self._count += 1
        self._done = last

    @workflow.run
    async def run(self, data: bytes) -> int:
        await workflow.wait_condition(lambda: self._done, timeout=timedelta(seconds=120))
        return self._count
