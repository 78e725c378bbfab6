"""DSQL's size limits end to end: with the dsql plugin storing values over DSQL's 1 MiB column limit in pieces,
Temporal's own default limits hold on DSQL (2 MiB payloads, 4 MiB batches of history events), and one byte past
them gets Temporal's own error at once, never a write DSQL refuses (a workflow stuck retrying it)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.integration.workflows import (
    LargeBatchWorkflow,
    LargeHeartbeatWorkflow,
    LargePayloadWorkflow,
    SignalCountWorkflow,
    echo_bytes,
    heartbeat_large_then_fail,
)

pytestmark = pytest.mark.integration
CONFIG = PROJECT_ROOT / "src" / "temporal_dsql_deploy" / "templates" / "dynamicconfig.yaml"
# Temporal's defaults, which the stack keeps (the test below holds the configuration to that).
BLOB_LIMIT = 2 * 1024 * 1024  # limit.blobSize.error: one payload
BATCH_LIMIT = 4 * 1024 * 1024  # system.transactionSizeLimit: one batch of history events
COLUMN_LIMIT = 1024 * 1024  # DSQL's largest value of one column
# What a bytes payload carries besides its data (its encoding in the metadata), with room to spare.
ENVELOPE = 1024
LARGEST = BLOB_LIMIT - ENVELOPE


def test_the_stack_keeps_temporals_default_size_limits() -> None:
    configured = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    for key in ("limit.blobSize.error", "system.transactionSizeLimit", "history.maximumBufferedEventsSizeInBytes"):
        assert key not in configured, f"{key} is set: the tests below measure Temporal's default"


async def _with_worker(settings: Settings, run: Callable[[Client, str], Awaitable[Any]]) -> Any:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    queue = f"payloads-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, activities=[echo_bytes, heartbeat_large_then_fail],
                      workflows=[LargePayloadWorkflow, LargeBatchWorkflow, LargeHeartbeatWorkflow,
                                 SignalCountWorkflow]):  # fmt: skip
        return await asyncio.wait_for(run(client, queue), timeout=180)


def test_the_largest_payload_completes_as_input_signal_and_activity_result(
    local_stack: LocalStack, settings: Settings
) -> None:
    async def run(client: Client, queue: str) -> int:
        handle = await client.start_workflow(LargePayloadWorkflow.run, os.urandom(LARGEST), id=f"large-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip
        await handle.signal(LargePayloadWorkflow.deliver, os.urandom(LARGEST))
        return await handle.result()

    assert asyncio.run(_with_worker(settings, run)) == 2 * LARGEST
    print(f"payloads of {LARGEST} bytes as input, signal and activity result: completed")


def test_several_large_events_in_one_batch_complete(local_stack: LocalStack, settings: Settings) -> None:
    count, size = 3, COLUMN_LIMIT  # three 1 MiB activity inputs scheduled in one workflow task: a 3 MiB batch

    async def run(client: Client, queue: str) -> int:
        return await client.execute_workflow(LargeBatchWorkflow.run, args=[count, size], id=f"batch-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip

    assert asyncio.run(_with_worker(settings, run)) == count * size
    print(f"{count} activities of {size} bytes in one batch, and their results: completed")


def test_large_heartbeat_details_come_back_to_the_retry(local_stack: LocalStack, settings: Settings) -> None:
    async def run(client: Client, queue: str) -> int:
        return await client.execute_workflow(LargeHeartbeatWorkflow.run, LARGEST, id=f"heartbeat-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip

    assert asyncio.run(_with_worker(settings, run)) == LARGEST
    print(f"heartbeat details of {LARGEST} bytes kept in the activity's info: returned to its retry")


def test_a_long_history_after_a_large_event_reads_back_whole(local_stack: LocalStack, settings: Settings) -> None:
    data, signals = os.urandom(LARGEST), 300

    async def run(client: Client, queue: str) -> tuple[int, int, bytes]:
        handle = await client.start_workflow(SignalCountWorkflow.run, data, id=f"long-{uuid.uuid4()}", task_queue=queue)
        for index in range(signals):
            await handle.signal(SignalCountWorkflow.tick, index == signals - 1)
        counted = await handle.result()
        history = await handle.fetch_history()  # read from the store, page by page
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0].data
        return counted, len(history.events), started

    counted, events, started = asyncio.run(_with_worker(settings, run))
    assert counted == signals
    assert events > signals
    assert started == data
    print(f"a history of {events} events after a {LARGEST}-byte input: read back whole")


async def _start(settings: Settings, size: int) -> None:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    await client.start_workflow(LargePayloadWorkflow.run, os.urandom(size), id=f"too-large-{uuid.uuid4()}",
                                task_queue=f"never-polled-{uuid.uuid4().hex[:8]}")  # fmt: skip


def test_a_payload_past_the_limit_is_refused_at_the_api(local_stack: LocalStack, settings: Settings) -> None:
    with pytest.raises(RPCError) as refused:
        asyncio.run(asyncio.wait_for(_start(settings, BLOB_LIMIT + 1), timeout=60))
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT, refused.value.message
    print(f"a {BLOB_LIMIT + 1}-byte input: {refused.value.status.name}: {refused.value.message}")


def test_a_batch_past_the_limit_terminates_the_workflow_with_temporals_reason(
    local_stack: LocalStack, settings: Settings
) -> None:
    """Five 1 MiB activity inputs scheduled in one workflow task would make a 5 MiB batch. The worker's completion
    carrying them is past gRPC's 4 MiB message limit, so Temporal terminates the run with its own reason before
    any write: the batch limit (4 MiB) is never reached from a single completion, and nothing reaches DSQL."""
    count, size = 5, COLUMN_LIMIT
    assert count * size > BATCH_LIMIT

    async def run(client: Client, queue: str) -> tuple[str, str]:
        handle = await client.start_workflow(LargeBatchWorkflow.run, args=[count, size], id=f"batch-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        description = await handle.describe()
        history = await handle.fetch_history()
        terminated = history.events[-1].workflow_execution_terminated_event_attributes
        return description.status.name if description.status else "", terminated.reason

    status, reason = asyncio.run(_with_worker(settings, run))
    assert status == "TERMINATED"
    assert reason == "GrpcMessageTooLarge"
    print(f"a batch of {count} x {size} bytes: the run {status}: {reason}")
