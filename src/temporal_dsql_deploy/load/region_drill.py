"""The Region drill: steady load on the serving Region, that Region cut off in the middle of it, failover to the other
Region, the load carried on against the other Region's frontend, then the first Region back and a fail-back.

Two scenarios. `cut`: the whole Region is gone, its Temporal hosts off the network and its DSQL endpoint cut off
from its peer and the witness. `isolated`: only its endpoint is cut off, its hosts keep running and try to write,
which the endpoint must refuse (no split brain) until failover stops them.

Every workflow the load meant to start is started with the same id until a frontend acknowledges it, through
whichever Region serves then. Afterwards each acknowledged workflow's result is checked by id through the serving
Region, runs are counted in visibility, and every completion seen during the drill is looked up again: the RPO is
what was acknowledged (a start or a completion) and is missing afterwards, and must be 0. The RTO of each move is
the time from the cut (or the start of the fail-back) until a workflow started after it completes in the new Region.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from temporal_dsql_deploy.load.bench import connect, start_worker
from temporal_dsql_deploy.load.faults import canary, result_of, start_once, visibility
from temporal_dsql_deploy.load.shapes import SHAPES
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.runtime import regions
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, compose_file
from temporal_dsql_deploy.runtime.render_compose import write_compose
from temporal_dsql_deploy.settings.config import Settings, host_architecture

SCENARIOS = ("cut", "isolated")


@dataclass(frozen=True)
class DrillPlan:
    scenario: str  # one of SCENARIOS
    rate: float = 2.0  # workflows started per second throughout
    before_s: float = 10.0  # load on the first Region before the cut
    isolated_s: float = 10.0  # `isolated`: how long its live hosts are left to try to write before failover
    on_other_s: float = 15.0  # load on the other Region before the first comes back
    after_s: float = 10.0  # load after the fail-back
    shape: str = "hello"


@dataclass
class DrillResult:
    scenario: str
    started: int  # acknowledged starts
    completed: int
    lost: int
    duplicated: int
    wrong_results: int
    rpo: int  # acknowledged starts or completions missing afterwards
    rto_s: float  # from the cut until a workflow started after it completed in the other Region
    failback_rto_s: float  # from the start of the fail-back until a workflow started after it completed
    steps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Drill:
    """The drill's moving parts: the client every call goes through now, and what was seen on the way."""

    plan: DrillPlan
    current: Client
    prefix: str = field(default_factory=lambda: f"drill-{uuid.uuid4().hex[:8]}")
    completions: dict[str, tuple[str | None, float]] = field(default_factory=dict)  # id: (result, when)
    steps: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    # What the drill changed, for putting it back however it ends: the stack as it serves now, the Region cut off,
    # the hosts taken off the network (until the failover removes them).
    stack: DockerRuntime | None = None
    isolated: str | None = None
    disconnected: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.steps.append(f"{time.monotonic() - self.began:6.1f}s  {what}")

    def serving(self) -> Client:
        return self.current


def _network(settings: Settings) -> str:
    return f"{settings.project_name}_default"


def _cut_off(runtime: DockerRuntime, region: str, hosts_too: bool, drill: _Drill) -> None:
    """`region`'s endpoint cut off from its peer and the witness; with `hosts_too`, its Temporal hosts off the net."""
    runtime.stand_in_admin("/isolation", {"region": region, "isolated": "true"})
    drill.isolated = region
    drill.note(f"{region}'s DSQL endpoint cut off from its peer and the witness")
    if not hosts_too:
        return
    settings = runtime.settings
    for role in regions.ROLES:
        for container in runtime.containers(regions.role_service(settings, region, role)):
            _network_link(settings, "disconnect", container)
            drill.disconnected.append(container)
    drill.note(f"{region}'s {len(drill.disconnected)} Temporal hosts off the network")


def _network_link(settings: Settings, action: str, container: str) -> None:
    run_tool(["docker", "network", action, _network(settings), container], what=f"docker network {action}",
             fix="check `docker network ls`", timeout_s=60)  # fmt: skip


def _move(runtime: DockerRuntime, to: str, drill: _Drill, grace_s: int) -> DockerRuntime:
    """`invoke failover --to`'s steps, noted in the drill's log; the runtime of the stack with `to` serving."""

    def record(serving: Settings) -> None:
        write_compose(serving, host_architecture(), compose_file(runtime.project_root))
        drill.stack, drill.disconnected = runtime.with_settings(serving), []  # the fence removed them

    def note(step: regions.Step) -> None:
        drill.note(f"failover: {step.what} ({step.seconds:.1f}s)")

    return regions.failover(runtime, to, record, note, grace_s)


def _reconnect(runtime: DockerRuntime, region: str, drill: _Drill) -> None:
    runtime.stand_in_admin("/isolation", {"region": region, "isolated": "false"})
    drill.isolated = None
    drill.note(f"{region}'s endpoint reaches its peer and the witness again")


async def _drive(runtime: DockerRuntime, drill: _Drill, task_queue: str, work_dir: Path) -> DrillResult:
    plan, settings = drill.plan, runtime.settings
    first = settings.serving
    other = regions.other_region(settings)
    shape = SHAPES[plan.shape]
    starts: list[asyncio.Task[bool]] = []
    watchers: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def watch(workflow_id: str) -> None:
        drill.completions[workflow_id] = (await result_of(drill.serving, workflow_id), time.monotonic())

    async def start(index: int) -> bool:
        workflow_id = f"{drill.prefix}-{index}"
        acknowledged = await start_once(drill.serving, shape, workflow_id, index, task_queue)
        if acknowledged:
            watchers.append(asyncio.create_task(watch(workflow_id)))
        return acknowledged

    async def generate() -> None:
        index, began = 0, time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(max(0.0, began + index / plan.rate - time.monotonic()))
            starts.append(asyncio.create_task(start(index)))
            index += 1

    generator = asyncio.create_task(generate())
    await asyncio.sleep(plan.before_s)
    problems: list[str] = []
    cut = time.monotonic()
    await asyncio.to_thread(_cut_off, runtime, first, plan.scenario == "cut", drill)
    if plan.scenario == "isolated":
        problems += await _hosts_cannot_write(runtime, drill, first, cut)
    # Hosts off the network reach nobody as they stop: killed at once (`--grace 0`). Live ones, even refused every
    # write, still leave the ring as they stop, which spares the new Region's hosts waiting for the ring to notice.
    grace_s = 0 if plan.scenario == "cut" else regions.STOP_GRACE_S
    moved = await asyncio.to_thread(_move, runtime, other, drill, grace_s)
    # Started off the event loop (it waits until the worker polls), so that the load goes on meanwhile.
    worker = await asyncio.to_thread(start_worker, moved.settings.frontend_address, settings.temporal_namespace,
                                     task_queue, work_dir / f"worker-{other}-{task_queue}.log")  # fmt: skip
    with worker:
        drill.current = await connect(moved.settings.frontend_address, settings.temporal_namespace)
        drill.note(f"the load goes to {other}'s frontend at {moved.settings.frontend_address}")
        await canary(drill.current, task_queue)
        rto = time.monotonic() - cut
        drill.note(f"a new workflow completed in {other}: RTO {rto:.1f}s")
        await asyncio.sleep(plan.on_other_s)
        await asyncio.to_thread(_reconnect, moved, first, drill)
        failback = time.monotonic()
        back = await asyncio.to_thread(_move, moved, first, drill, regions.STOP_GRACE_S)
        drill.current = await connect(back.settings.frontend_address, settings.temporal_namespace)
        await canary(drill.current, task_queue)
        failback_rto = time.monotonic() - failback
        drill.note(f"a new workflow completed in {first} after the fail-back: RTO {failback_rto:.1f}s")
        await asyncio.sleep(plan.after_s)
        stop.set()
        await generator
        acknowledged = [index for index, task in enumerate(starts) if await task]
        await asyncio.gather(*watchers)
    return await _account(drill, acknowledged, len(starts), rto, failback_rto, problems)


async def _hosts_cannot_write(runtime: DockerRuntime, drill: _Drill, region: str, cut: float) -> list[str]:
    """With its endpoint cut off, the Region's live hosts must not write: every writing commit they try is refused,
    and no workflow completes meanwhile."""
    before = await asyncio.to_thread(runtime.stand_in_admin, "/stats")
    await asyncio.sleep(drill.plan.isolated_s)
    after = await asyncio.to_thread(runtime.stand_in_admin, "/stats")
    refused = after["endpoints"][region]["refused_writes"] - before["endpoints"][region]["refused_writes"]
    completed = sum(1 for _result, when in drill.completions.values() if when > cut + 1)
    drill.note(f"{region}'s hosts, alive, tried {refused} writing commits in {drill.plan.isolated_s:g}s: all refused; "
               f"{completed} workflows completed meanwhile")  # fmt: skip
    problems = []
    if refused == 0:
        problems.append(f"{region}'s live hosts tried no write while cut off: the isolation was not exercised")
    if completed:
        problems.append(f"{completed} workflows completed while {region}'s endpoint was cut off: a split brain")
    return problems


async def _account(drill: _Drill, acknowledged: list[int], meant: int, rto: float, failback_rto: float,
                   problems: list[str]) -> DrillResult:  # fmt: skip
    shape = SHAPES[drill.plan.shape]
    client = drill.current
    results = {index: drill.completions.get(f"{drill.prefix}-{index}", (None, 0.0))[0] for index in acknowledged}
    wrong = sum(1 for index, result in results.items() if result is not None and result != shape.expected(index))
    completed = sum(1 for result in results.values() if result is not None)
    missing = 0  # an acknowledged start that is not there, or a completion seen that is not a completion any more
    for index, result in results.items():
        try:
            status = (await client.get_workflow_handle(f"{drill.prefix}-{index}").describe()).status
        except RPCError:
            missing += 1
            continue
        if result is not None and status is not WorkflowExecutionStatus.COMPLETED:
            missing += 1
    _seconds, runs = await visibility(client, shape, drill.prefix, len(acknowledged))
    if meant != len(acknowledged):
        problems.append(f"{meant - len(acknowledged)} starts were never acknowledged")
    return DrillResult(scenario=drill.plan.scenario, started=len(acknowledged), completed=completed,
                       lost=len(acknowledged) - completed, duplicated=max(0, runs - len(acknowledged)),
                       wrong_results=wrong, rpo=missing, rto_s=rto, failback_rto_s=failback_rto,
                       steps=drill.steps, problems=problems)  # fmt: skip


def run_drill(runtime: DockerRuntime, plan: DrillPlan, work_dir: Path, report: Callable[[str], None]) -> DrillResult:
    """One scenario, from the stack serving from its primary Region to the same again; the workers stopped after, and
    whatever the drill changed put back however it ends (so the next test finds the stack as it was)."""
    settings = runtime.settings
    regions.check_failover(settings, regions.other_region(settings))
    task_queue = f"drill-{uuid.uuid4().hex[:8]}"
    drill: _Drill | None = None
    try:
        with start_worker(settings.frontend_address, settings.temporal_namespace, task_queue,
                          work_dir / f"worker-{settings.serving}-{task_queue}.log"):  # fmt: skip

            async def run() -> DrillResult:
                nonlocal drill
                drill = _Drill(plan, await connect(settings.frontend_address, settings.temporal_namespace))
                drill.stack = runtime
                return await _drive(runtime, drill, task_queue, work_dir)

            result = asyncio.run(run())
    finally:
        if drill is not None:
            _put_back(runtime, drill, report)
    for step in result.steps:
        report(step)
    return result


def _put_back(runtime: DockerRuntime, drill: _Drill, report: Callable[[str], None]) -> None:
    """After a drill that stopped half-way: the Region reconnected, its hosts back on the network or serving again."""
    first = runtime.settings.serving
    stack = drill.stack or runtime
    if drill.isolated:
        _reconnect(stack, drill.isolated, drill)
    for container in drill.disconnected:
        _network_link(runtime.settings, "connect", container)
    if stack.settings.serving != first:
        _move(stack, first, drill, regions.STOP_GRACE_S)
        report(f"put back: {first} serves again")
