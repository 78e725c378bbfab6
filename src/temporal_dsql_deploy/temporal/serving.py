"""Whether a Temporal frontend serves a namespace yet: the SDK's client, asked until it answers (bounded)."""

from __future__ import annotations

import asyncio

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError


def wait_serving(address: str, namespace: str, timeout_s: float, fix: str) -> None:
    """Until Temporal at `address` answers for `namespace`; bounded."""

    async def serving() -> bool:
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.service_client.check_health()
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        except (RuntimeError, RPCError):
            return False
        return True

    waiting = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.5), retry=retry_if_result(lambda ok: not ok))
    try:
        waiting(lambda: asyncio.run(serving()))
    except RetryError:
        raise DeployError(
            f"Temporal at {address} did not serve namespace {namespace!r} within {timeout_s:g}s", fix
        ) from None
