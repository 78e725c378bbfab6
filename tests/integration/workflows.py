"""Workflows the integration tests run: a timer, a signal and a child workflow; large payloads."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


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
