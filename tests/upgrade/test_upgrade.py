"""Temporal upgraded release by release while it serves (the DSQL profile): workflows opened on the oldest release
finish on the newest with the right results, the steady load started meanwhile loses nothing, and every history
replays with the SDK's replayer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.worker import Replayer, Worker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from temporal_dsql_deploy.settings.releases import RELEASES
from temporal_dsql_deploy.temporal.upgrade import ReleaseRecord, read_record
from tests.conftest import PROJECT_ROOT
from tests.upgrade.conftest import RESULTS, UpgradedStack
from tests.upgrade.workflows import (
    ACTIVITIES,
    FAILING_ATTEMPTS,
    WORKFLOWS,
    ContinueAsNewWorkflow,
    DurableTimerWorkflow,
    HelloWorkflow,
    RetryingActivityWorkflow,
    SignalThenChildWorkflow,
)

pytestmark = pytest.mark.upgrade


@dataclass(frozen=True)
class Spans:
    """How long the workflows stay open: the timers are set on the oldest release and fire on the newest, the chain
    of continue-as-new runs (15 s each) spans both hops; both hops take well under the timer on each runtime (local
    about 50 s, containers about 95 s, builds done before)."""

    timer_s: int
    chain_runs: int


SPANS = {"local": Spans(80, 6), "docker": Spans(150, 8)}
EACH_KIND = 6
LOAD_INTERVAL_S = 0.5
RESULT_TIMEOUT_S = 600
UPGRADE_TIMEOUT_S = 1200  # a cold cache builds each release first


@dataclass
class Load:
    """Short workflows started at a steady rate while the roles are replaced: each one's time to its result."""

    latencies: dict[str, float] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    pending: set[asyncio.Task[None]] = field(default_factory=set)


async def _start(starting: Callable[[], Awaitable[WorkflowHandle[Any, Any]]], client: Client,
                 workflow_id: str) -> WorkflowHandle[Any, Any]:  # fmt: skip
    """Start a workflow, again on an unavailable frontend (one being replaced): the same id, so a start that went
    through before its answer was lost is found instead of made twice."""
    retrying = AsyncRetrying(stop=stop_after_delay(60), wait=wait_fixed(0.5), reraise=True,
                             retry=retry_if_exception_type(RPCError))  # fmt: skip
    async for attempt in retrying:
        with attempt:
            try:
                return await starting()
            except WorkflowAlreadyStartedError:
                return client.get_workflow_handle(workflow_id)
    raise AssertionError("unreachable: tenacity reraises")


async def _hello(client: Client, queue: str, load: Load, number: int) -> None:
    workflow_id = f"hello-{number}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    handle = await _start(lambda: client.start_workflow(HelloWorkflow.run, str(number), id=workflow_id,
                                                        task_queue=queue), client, workflow_id)  # fmt: skip
    result = await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT_S)
    load.latencies[workflow_id] = time.monotonic() - started
    if result != f"hello {number}":
        load.wrong.append(f"{workflow_id}: {result!r}")


async def _steady_load(client: Client, queue: str, load: Load, stop: asyncio.Event) -> None:
    number = 0
    while not stop.is_set():
        task = asyncio.create_task(_hello(client, queue, load, number))
        load.pending.add(task)
        number += 1
        await asyncio.sleep(LOAD_INTERVAL_S)


def _invoke_upgrade(runtime: str, version: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`invoke upgrade --to VERSION --runtime RUNTIME`, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "invoke", "upgrade", "--to", version, "--runtime", runtime],
                          cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=timeout_s,
                          check=False)  # fmt: skip


def _upgrade(runtime: str, version: str) -> tuple[float, str]:
    """Upgrade the stack; the time it took and what it printed."""
    started = time.monotonic()
    done = _invoke_upgrade(runtime, version, UPGRADE_TIMEOUT_S)
    assert done.returncode == 0, f"upgrade to {version} failed:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started, done.stdout


async def _in_flight(client: Client, queue: str, spans: Spans) -> dict[str, list[WorkflowHandle[Any, Any]]]:
    """The long-running workflows, started on the oldest release."""
    run = uuid.uuid4().hex[:8]
    kinds: dict[str, list[WorkflowHandle[Any, Any]]] = {"durable timer": [], "signal, then a child": [],
                                                        "activity retries": [], "continue-as-new": []}  # fmt: skip
    for i in range(EACH_KIND):
        kinds["durable timer"].append(await client.start_workflow(
            DurableTimerWorkflow.run, spans.timer_s, id=f"timer-{run}-{i}", task_queue=queue))  # fmt: skip
        kinds["signal, then a child"].append(await client.start_workflow(
            SignalThenChildWorkflow.run, id=f"signal-{run}-{i}", task_queue=queue))  # fmt: skip
        kinds["activity retries"].append(await client.start_workflow(
            RetryingActivityWorkflow.run, f"retry-{i}", id=f"retry-{run}-{i}", task_queue=queue))  # fmt: skip
        kinds["continue-as-new"].append(await client.start_workflow(
            ContinueAsNewWorkflow.run, args=[spans.chain_runs], id=f"chain-{run}-{i}", task_queue=queue))  # fmt: skip
    return kinds


def _expected(kind: str, index: int, spans: Spans) -> object:
    return {"durable timer": f"woke after {spans.timer_s}s", "signal, then a child": index * 2,
            "activity retries": f"retry-{index} succeeded on attempt {FAILING_ATTEMPTS + 1}",
            "continue-as-new": spans.chain_runs}[kind]  # fmt: skip


async def _server_version(client: Client) -> str:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    return str(info.server_version)


async def _upgrade_under_load(stack: UpgradedStack) -> None:
    client = await Client.connect(stack.settings.frontend_address, namespace=stack.settings.temporal_namespace)
    assert await _server_version(client) == RELEASES[0].version
    queue = f"upgrade-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        spans = SPANS[stack.runtime]
        kinds = await _in_flight(client, queue, spans)
        load, stop = Load(), asyncio.Event()
        loader = asyncio.create_task(_steady_load(client, queue, load, stop))
        hops = []
        for target in RELEASES[1:]:
            took, printed = await asyncio.to_thread(_upgrade, stack.runtime, target.version)
            steps = [line for line in printed.splitlines() if "healthy again after" in line or "in all" in line]
            hops.append(f"{stack.runtime}: to {target.version} in {took:.1f}s: " + "; ".join(steps))
        stop.set()
        await loader
        # The premise: the timers were set on the oldest release and fire on the newest.
        statuses = [(await handle.describe()).status for handle in kinds["durable timer"]]
        assert statuses == [WorkflowExecutionStatus.RUNNING] * EACH_KIND, (
            f"timers fired before the last hop ended ({hops}): raise SPANS[{stack.runtime!r}]"
        )
        assert await _server_version(client) == RELEASES[-1].version
        for index, handle in enumerate(kinds["signal, then a child"]):
            await handle.signal(SignalThenChildWorkflow.release, index)
        await asyncio.wait_for(asyncio.gather(*load.pending), timeout=RESULT_TIMEOUT_S)
        wrong = list(load.wrong)
        for kind, handles in kinds.items():
            for index, handle in enumerate(handles):
                result = await asyncio.wait_for(handle.result(), timeout=RESULT_TIMEOUT_S)
                if result != _expected(kind, index, spans):
                    wrong.append(f"{handle.id} ({kind}): {result!r}, not {_expected(kind, index, spans)!r}")
        histories = [await handle.fetch_history() for handles in kinds.values() for handle in handles]
        histories += [await client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
                      .fetch_history() for handle in kinds["continue-as-new"]]  # fmt: skip
    replayer = Replayer(workflows=WORKFLOWS)
    failures = []
    for history in histories:
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if replayed.replay_failure is not None:
            failures.append(f"{history.workflow_id}: {replayed.replay_failure}")
    in_flight = sum(len(handles) for handles in kinds.values())
    RESULTS.extend([
        *hops,
        f"in flight across both hops: {in_flight} workflows ("
        + ", ".join(f"{len(handles)} {kind}" for kind, handles in kinds.items()) + f"), {in_flight} completed right",
        f"steady load meanwhile: {len(load.latencies)} started and completed, 0 lost; longest a workflow waited "
        f"{max(load.latencies.values()):.2f}s, median {sorted(load.latencies.values())[len(load.latencies) // 2]:.2f}s",
        f"replayed {len(histories)} histories with the SDK's replayer: {len(failures)} failures",
    ])  # fmt: skip
    assert not wrong, wrong
    assert not failures, failures


def test_upgrades_release_by_release_with_workflows_in_flight(oldest_stack: UpgradedStack) -> None:
    asyncio.run(_upgrade_under_load(oldest_stack))
    assert read_record(oldest_stack.layout) == ReleaseRecord(RELEASES[-1].version)


def test_back_one_minor_release_on_the_same_schema_but_not_past_a_schema_step(oldest_stack: UpgradedStack) -> None:
    """After both hops: back to the oldest release (past the 1.19 step) is refused before anything changes; back to
    the release before (the same schema) replaces the roles in the reverse order, and workflows run on it."""
    refused = _invoke_upgrade(oldest_stack.runtime, RELEASES[0].version, 120)
    assert refused.returncode == 1
    assert "goes back more than one minor release" in refused.stderr
    assert read_record(oldest_stack.layout) == ReleaseRecord(RELEASES[-1].version)
    back = RELEASES[-2]
    took, printed = _upgrade(oldest_stack.runtime, back.version)
    assert f"Temporal {RELEASES[-1].version} → {back.version} (rollback)" in printed
    assert printed.index("temporal-worker: on") < printed.index("temporal-history: on")
    assert read_record(oldest_stack.layout) == ReleaseRecord(back.version)
    RESULTS.append(f"{oldest_stack.runtime}: back to {back.version} in {took:.1f}s")
    asyncio.run(_after_rollback(oldest_stack, back.version))


async def _after_rollback(stack: UpgradedStack, version: str) -> None:
    client = await Client.connect(stack.settings.frontend_address, namespace=stack.settings.temporal_namespace)
    assert await _server_version(client) == version
    queue = f"rollback-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        result = await client.execute_workflow(HelloWorkflow.run, "after", id=f"after-{queue}", task_queue=queue)
    assert result == "hello after"
