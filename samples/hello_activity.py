"""Hello activity: a workflow that calls one activity, run against an existing Temporal server.

    python samples/hello_activity.py [--address 127.0.0.1:7233] [--namespace default] [--name World]

Prints one JSON line: the workflow id and its result. Exits non-zero if anything fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@dataclass
class ComposeGreetingInput:
    greeting: str
    name: str


@activity.defn
async def compose_greeting(params: ComposeGreetingInput) -> str:
    return f"{params.greeting}, {params.name}!"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
        )


async def run_sample(address: str, namespace: str, name: str) -> dict[str, str]:
    client = await Client.connect(address, namespace=namespace)
    task_queue = f"hello-activity-{uuid.uuid4()}"
    workflow_id = f"hello-activity-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[compose_greeting]):
        result = await client.execute_workflow(
            GreetingWorkflow.run, name, id=workflow_id, task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )  # fmt: skip
    return {"workflow_id": workflow_id, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:7233", help="Temporal frontend host:port")
    parser.add_argument("--namespace", default="default", help="Temporal namespace")
    parser.add_argument("--name", default="World", help="who to greet")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run_sample(args.address, args.namespace, args.name))), flush=True)
    # The SDK's Rust threads can abort interpreter teardown ("PyGILState_Release ... finalizing",
    # temporalio/sdk-python#300); the work is done and reported, so skip the teardown.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
