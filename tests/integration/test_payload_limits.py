"""DSQL's size limits end to end: the largest payload Temporal is configured to take completes, and one past it
gets Temporal's own error at once, never a write DSQL refuses (a workflow stuck retrying it)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.integration.workflows import LargePayloadWorkflow, echo_bytes

pytestmark = pytest.mark.integration
CONFIG = PROJECT_ROOT / "src" / "temporal_dsql_deploy" / "templates" / "dynamicconfig.yaml"
# What a bytes payload carries besides its data (its encoding in the metadata), with room to spare.
ENVELOPE = 1024


def _limit(key: str) -> int:
    return int(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))[key][0]["value"])


async def _round_trip(settings: Settings, size: int) -> int:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    queue = f"payloads-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[LargePayloadWorkflow], activities=[echo_bytes]):
        handle = await client.start_workflow(LargePayloadWorkflow.run, os.urandom(size), id=f"large-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip
        await handle.signal(LargePayloadWorkflow.deliver, os.urandom(size))
        return await asyncio.wait_for(handle.result(), timeout=120)


def test_the_largest_payload_completes_as_input_signal_and_activity_result(
    local_stack: LocalStack, settings: Settings
) -> None:
    size = _limit("limit.blobSize.error") - ENVELOPE
    assert asyncio.run(_round_trip(settings, size)) == 2 * size
    print(f"payloads of {size} bytes as input, signal and activity result: completed")


async def _start(settings: Settings, size: int) -> None:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    await client.start_workflow(LargePayloadWorkflow.run, os.urandom(size), id=f"too-large-{uuid.uuid4()}",
                                task_queue=f"never-polled-{uuid.uuid4().hex[:8]}")  # fmt: skip


def test_a_payload_past_the_limit_is_refused_at_the_api(local_stack: LocalStack, settings: Settings) -> None:
    size = _limit("limit.blobSize.error") + 1
    with pytest.raises(RPCError) as refused:
        asyncio.run(asyncio.wait_for(_start(settings, size), timeout=60))
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT, refused.value.message
    print(f"a {size}-byte input: {refused.value.status.name}: {refused.value.message}")


async def _signal_with_start(settings: Settings, size: int) -> None:
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    await client.start_workflow(LargePayloadWorkflow.run, os.urandom(size), id=f"too-large-{uuid.uuid4()}",
                                task_queue=f"never-polled-{uuid.uuid4().hex[:8]}", start_signal="deliver",
                                start_signal_args=[os.urandom(size)])  # fmt: skip


def test_one_history_batch_past_the_backstop_is_refused_at_the_api(local_stack: LocalStack, settings: Settings) -> None:
    """Signal-with-start writes the input and the signal in one batch of events, one history_node.data value: two
    payloads that each pass make a batch past 1,000,000 bytes, which Temporal refuses itself, before DSQL would."""
    size = _limit("limit.blobSize.error") - ENVELOPE
    assert 2 * size > _limit("system.transactionSizeLimit")
    assert _limit("system.transactionSizeLimit") < 1024 * 1024  # DSQL's largest value of one column
    with pytest.raises(RPCError) as refused:
        asyncio.run(asyncio.wait_for(_signal_with_start(settings, size), timeout=60))
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT, refused.value.message
    print(f"signal-with-start of 2 x {size} bytes: {refused.value.status.name}: {refused.value.message}")
