"""Faults under load, one at a time, against the running local stack, and the proof that nothing was lost.

Workflows are started at a steady rate before, during and after each fault. A start that fails is tried again
with the same id (a running or closed workflow of that id is never started twice), so every workflow the
load meant to start is started exactly once. Afterwards each one's result is checked by id, the runs of each
id are counted in visibility, and the time until a new workflow ran end to end again is the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_before_delay,
    wait_fixed,
)

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load.bench import connect, start_worker
from temporal_dsql_deploy.load.shapes import SHAPES, Shape
from temporal_dsql_deploy.load.stand_in import admin_client
from temporal_dsql_deploy.runtime.interface import StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.settings.config import Settings

START_RETRY_S = 180  # a start is tried again for this long before the workflow counts as never started
RESULT_WAIT_S = 300
RECOVERY_WAIT_S = 180
VISIBILITY_WAIT_S = 60
CANARY_TIMEOUT_S = 10


@dataclass(frozen=True)
class FaultPlan:
    rate: float = 4.0  # workflows started per second throughout
    before_s: float = 2.0  # load before the fault
    after_s: float = 3.0  # load after the fault is over (the canary meanwhile finds when it recovered)
    hold_s: float = 60.0  # how long a lasting fault lasts (search engine down, short tokens, conflicts)
    shape: str = "transitions"


@dataclass
class FaultContext:
    stack: StackRuntime
    plan: FaultPlan


@dataclass
class Injected:
    """What a fault's injection saw: facts for the table, and anything that shows the fault did not happen as meant."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[FaultContext], Injected]  # returns when the fault is over
    # Settings the stack must run with during the fault (and is restarted with, then back).
    settings: dict[str, Any] = field(default_factory=dict)
    dsql_only: bool = False
    runtimes: frozenset[Runtime] = frozenset(Runtime)  # where it can be injected


@dataclass
class FaultResult:
    fault: str
    started: int
    completed: int
    lost: int
    duplicated: int
    wrong_results: int
    fault_s: float  # how long the fault lasted, a supervisor's restart included
    recovery_s: float  # from the fault's end until a new workflow ran end to end
    visibility_s: float | None  # None: visibility did not converge within VISIBILITY_WAIT_S
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _kill_hard(*services: str) -> Callable[[FaultContext], Injected]:
    """A crash: SIGKILL to each service's process tree (a container's, under Docker), all at once; its supervisor
    (process-compose, or the container's restart policy) must bring each back."""

    def inject(context: FaultContext) -> Injected:
        before = {service: context.stack.main_pid(service) for service in services}
        if absent := [service for service, pid in before.items() if pid <= 0]:
            return Injected(
                problems=[f"{service} was not running when the fault was to be injected" for service in absent]
            )
        for pid in before.values():
            # A process that ended since it was looked up is gone already, as the fault means; its restart is awaited.
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                root = psutil.Process(pid)
                for process in [*root.children(recursive=True), root]:  # the supervisor may have a shell in between
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGKILL)
        waiting = Retrying(stop=stop_after_delay(RECOVERY_WAIT_S), wait=wait_fixed(0.2), retry=retry_if_result(bool))
        try:
            waiting(_not_restarted, context.stack, before)
        except RetryError:
            late = ", ".join(_not_restarted(context.stack, before))
            return Injected(problems=[f"the supervisor did not restart {late} within {RECOVERY_WAIT_S}s of kill -9"])
        after = {service: context.stack.main_pid(service) for service in services}
        return Injected(notes=[f"{service}: pid {before[service]} killed; the supervisor restarted it as pid "
                               f"{after[service]}" for service in services])  # fmt: skip

    return inject


def _not_restarted(stack: StackRuntime, before: dict[str, int]) -> list[str]:
    """The services whose main process is still the one killed, or none yet."""
    return [service for service, pid in before.items() if stack.main_pid(service) in (pid, 0)]


def _restart(service: str) -> Callable[[FaultContext], Injected]:
    def inject(context: FaultContext) -> Injected:
        context.stack.restart([service], lambda _message: None)
        return Injected(notes=[f"{service} restarted, then every service healthy again (the load went on throughout)"])

    return inject


def _stop_for_a_while(service: str) -> Callable[[FaultContext], Injected]:
    def inject(context: FaultContext) -> Injected:
        context.stack.stop_service(service)
        time.sleep(context.plan.hold_s)
        context.stack.start_service(service)
        return Injected(notes=[f"{service} down for {context.plan.hold_s:g}s"])

    return inject


def _short_tokens(context: FaultContext) -> Injected:
    """The connections Temporal renews while tokens live 30 s must each be let in with a fresh token. Held at least
    a token's lifetime, so the tokens minted as the fault began have run out before it ends."""
    hold_s = max(context.plan.hold_s, context.stack.settings.temporal_sql_token_lifetime.total_seconds())
    with admin_client(context.stack.settings) as admin:
        before = admin.get("/stats").raise_for_status().json()
        time.sleep(hold_s)
        after = admin.get("/stats").raise_for_status().json()
    accepted = after["authenticated"] - before["authenticated"]
    refused = after["refused_at_authentication"] - before["refused_at_authentication"]
    injected = Injected(notes=[f"{accepted} connections made with fresh tokens, {refused} refused, in {hold_s:g}s"])
    if refused:
        injected.problems.append(f"dsql-local refused {refused} connections at authentication (an expired token?)")
    if not accepted:
        injected.problems.append("no connection was renewed during the fault: the short tokens were never used")
    return injected


def _conflicts(context: FaultContext) -> Injected:
    with admin_client(context.stack.settings) as admin:
        admin.post("/faults", data={"conflict_rate": "0.1", "seed": "11"}).raise_for_status()
        try:
            time.sleep(context.plan.hold_s)
            fired = int(admin.get("/faults").raise_for_status().json()["injected"])  # counted since the POST above
        finally:
            admin.post("/faults", data={"conflict_rate": "0", "seed": "1"}).raise_for_status()
    injected = Injected(notes=[f"{fired} commits failed with OC000"])
    if not fired:
        injected.problems.append("no conflict was injected")
    return injected


ROLE_SERVICES = tuple(f"temporal-{role}" for role in ("history", "matching", "frontend", "worker"))
ROLE_KILLS = [Fault(f"kill -9 {service}", _kill_hard(service)) for service in ROLE_SERVICES]
# The containers' pass: what proves a container's restart policy once for every role (each role alone: the local
# pass), in one fault where four took a minute.
KILL_EVERY_ROLE = Fault("kill -9 every Temporal role at once", _kill_hard(*ROLE_SERVICES),
                        runtimes=frozenset({Runtime.DOCKER}))  # fmt: skip
FAULTS = [
    *ROLE_KILLS,
    Fault("restart postgresql", _restart("postgresql")),
    Fault("stop the search engine", _stop_for_a_while("elasticsearch")),
    Fault("restart dsql-local", _restart("dsql-local")),
    # dsql-local's admin API is on the host only natively (under Docker it is not published).
    Fault("IAM tokens live 30 s", _short_tokens, {"temporal_sql_token_lifetime": timedelta(seconds=30),
                                         "temporal_sql_max_conn_lifetime": timedelta(seconds=20)}, dsql_only=True,
          runtimes=frozenset({Runtime.LOCAL})),
    Fault("10% commit conflicts", _conflicts, dsql_only=True, runtimes=frozenset({Runtime.LOCAL})),
]  # fmt: skip


async def start_once(client: Callable[[], Client], shape: Shape, workflow_id: str, index: int,
                     task_queue: str) -> bool:  # fmt: skip
    """Start it, trying again with the same id until it is running or has run; False if it never started within
    START_RETRY_S (the caller counts those). `client` gives the client each try goes through (the serving one)."""

    async def start() -> None:
        # WorkflowAlreadyStartedError: an earlier try got through and the workflow has already closed.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client().start_workflow(
                shape.workflow, shape.argument(index), id=workflow_id, task_queue=task_queue,
                start_signal=shape.start_signal, start_signal_args=shape.signal_args(),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, rpc_timeout=timedelta(seconds=10),
            )  # fmt: skip

    retrying = AsyncRetrying(stop=stop_after_delay(START_RETRY_S), wait=wait_fixed(1),
                             retry=retry_if_exception_type(RPCError))  # fmt: skip
    try:
        await retrying(start)
    except RetryError:
        return False
    return True


async def result_of(client: Callable[[], Client], workflow_id: str) -> str | None:
    """The workflow's result; None if it failed, or gave none within RESULT_WAIT_S (the caller counts it lost)."""

    async def result() -> str | None:
        try:
            return str(await asyncio.wait_for(client().get_workflow_handle(workflow_id).result(), RESULT_WAIT_S))
        except WorkflowFailureError:
            return None

    retrying = AsyncRetrying(stop=stop_before_delay(RESULT_WAIT_S), wait=wait_fixed(1),
                             retry=retry_if_exception_type((RPCError, TimeoutError)))  # fmt: skip
    try:
        got: str | None = await retrying(result)
    except RetryError:
        return None
    return got


async def canary(client: Client, task_queue: str) -> float:
    """Seconds until a new workflow runs end to end."""
    began = time.monotonic()
    shape = SHAPES["hello"]

    async def canary() -> None:
        await asyncio.wait_for(
            client.execute_workflow(shape.workflow, "canary", id=f"canary-{uuid.uuid4().hex}", task_queue=task_queue,
                                    rpc_timeout=timedelta(seconds=5)),
            CANARY_TIMEOUT_S,
        )  # fmt: skip

    retrying = AsyncRetrying(stop=stop_before_delay(RECOVERY_WAIT_S), wait=wait_fixed(0.5),
                             retry=retry_if_exception_type((RPCError, TimeoutError, WorkflowFailureError)))  # fmt: skip
    try:
        await retrying(canary)
    except RetryError:
        raise DeployError(f"no workflow completed within {RECOVERY_WAIT_S}s of the fault's end",
                          "see `invoke status` and the services' logs") from None  # fmt: skip
    return time.monotonic() - began


async def visibility(client: Client, shape: Shape, prefix: str, expected: int) -> tuple[float | None, int]:
    """Seconds until visibility shows every workflow completed, and the number of runs it shows in all."""
    began = time.monotonic()
    query = f"WorkflowType = '{shape.workflow}' AND WorkflowId STARTS_WITH '{prefix}'"
    runs = 0  # the last count visibility gave

    async def converged() -> bool:
        nonlocal runs
        try:
            completed = (await client.count_workflows(f"{query} AND ExecutionStatus = 'Completed'")).count
            runs = (await client.count_workflows(query)).count
        except RPCError:
            return False
        return completed == expected and runs == expected

    retrying = AsyncRetrying(stop=stop_before_delay(VISIBILITY_WAIT_S), wait=wait_fixed(1),
                             retry=retry_if_result(lambda done: not done))  # fmt: skip
    try:
        await retrying(converged)
    except RetryError:
        return None, runs  # the caller reports it as visibility that did not converge within VISIBILITY_WAIT_S
    return time.monotonic() - began, runs


async def _under_load(context: FaultContext, fault: Fault, address: str, namespace: str, task_queue: str
                      ) -> FaultResult:  # fmt: skip
    client = await connect(address, namespace)
    plan = context.plan
    shape = SHAPES[plan.shape]
    prefix = f"fault-{uuid.uuid4().hex[:8]}"
    starts: list[asyncio.Task[bool]] = []
    fault_over = asyncio.Event()

    async def generate() -> None:
        index, began = 0, time.monotonic()
        stop_at: float | None = None
        while stop_at is None or time.monotonic() < stop_at:
            await asyncio.sleep(max(0.0, began + index / plan.rate - time.monotonic()))
            starts.append(
                asyncio.create_task(start_once(lambda: client, shape, f"{prefix}-{index}", index, task_queue))
            )
            index += 1
            if stop_at is None and fault_over.is_set():
                stop_at = time.monotonic() + plan.after_s

    generator = asyncio.create_task(generate())
    await asyncio.sleep(plan.before_s)
    began = time.monotonic()
    injected = await asyncio.to_thread(fault.inject, context)
    fault_s = time.monotonic() - began
    fault_over.set()
    recovery = await canary(client, task_queue)
    await generator
    started = [index for index, task in enumerate(starts) if await task]
    results = await asyncio.gather(*(result_of(lambda: client, f"{prefix}-{index}") for index in started))
    wrong = sum(1 for index, result in zip(started, results, strict=True)
                if result is not None and result != shape.expected(index))  # fmt: skip
    completed = sum(1 for result in results if result is not None)
    visibility_s, runs = await visibility(client, shape, prefix, len(started))
    if len(starts) != len(started):
        injected.problems.append(f"{len(starts) - len(started)} starts were never accepted in {START_RETRY_S}s")
    return FaultResult(
        fault=fault.name, started=len(started), completed=completed, lost=len(started) - completed,
        duplicated=max(0, runs - len(started)), wrong_results=wrong, fault_s=fault_s, recovery_s=recovery,
        visibility_s=visibility_s, notes=injected.notes, problems=injected.problems,
    )  # fmt: skip


def run_fault(stack: StackRuntime, fault: Fault, plan: FaultPlan, work_dir: Path,
              report: Callable[[str], None]) -> FaultResult:  # fmt: skip
    """One fault under load; the stack is started with the fault's settings first and healthy again after."""
    if stack.kind not in fault.runtimes:
        raise DeployError(f"the fault {fault.name!r} cannot be injected under the {stack.kind} runtime",
                          f"run it with {' or '.join(sorted(fault.runtimes))}")  # fmt: skip
    settings: Settings = stack.settings
    faulty = type(stack)(settings.model_copy(update=fault.settings), stack.project_root) if fault.settings else stack
    if fault.settings:
        report(f"{fault.name}: restarting the stack with {', '.join(fault.settings)}")
        faulty.up(lambda _message: None)
    try:
        task_queue = f"faults-{uuid.uuid4().hex[:8]}"
        log = work_dir / f"worker-{task_queue}.log"
        context = FaultContext(faulty, plan)
        with start_worker(settings.frontend_address, settings.temporal_namespace, task_queue, log):
            result = asyncio.run(_under_load(context, fault, settings.frontend_address,
                                             settings.temporal_namespace, task_queue))  # fmt: skip
        faulty.wait_healthy(RECOVERY_WAIT_S)
    finally:
        if fault.settings:
            stack.up(lambda _message: None)
    return result
