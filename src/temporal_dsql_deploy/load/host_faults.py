"""Faults of Temporal's history hosts where it runs on several (the Docker runtime, TEMPORAL_HISTORY_HOSTS > 1): a host
killed, a host cut off the network, hosts added and taken away, every host restarted in turn. Throughout, the shards'
owners are watched from each host's own `numshards_gauge` (what its shard controller owns), and a fault that leaves
a shard unowned longer than UNOWNED_LIMIT_S is a problem in the report."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load.faults import RECOVERY_WAIT_S, Fault, FaultContext, Injected
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, container_pid
from temporal_dsql_deploy.runtime.model import Runtime

HISTORY = "temporal-history"
UNOWNED_LIMIT_S = 60.0
POLL_S = 1.0


class OwnershipWatch:
    """Samples the owners every POLL_S in the background; the longest stretch with fewer than all shards owned."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self.runtime = runtime
        self.shards = runtime.settings.temporal_num_history_shards
        self.longest_gap_s = 0.0
        self.samples = 0  # reads of the owners that answered: a watch with none saw nothing, not no gap
        self.longest_unread_s = 0.0  # the longest stretch without an answered read: a gap there is not seen
        self._gap_began: float | None = None
        self._unread_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="shard-owners", daemon=True)

    def __enter__(self) -> OwnershipWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                owned = sum(self.runtime.owned_shards(HISTORY).values())
            except DeployError:  # a host removed as Compose listed it ("No such container"): the next sample has it
                self._unread_since = self._unread_since if self._unread_since is not None else now
                self.longest_unread_s = max(self.longest_unread_s, now - self._unread_since)
                self._stop.wait(POLL_S)
                continue
            self.samples += 1
            self._unread_since = None
            if owned < self.shards:
                self._gap_began = self._gap_began if self._gap_began is not None else now
                self.longest_gap_s = max(self.longest_gap_s, now - self._gap_began)
            else:
                self._gap_began = None
            self._stop.wait(POLL_S)

    def problems(self) -> list[str]:
        if self.samples == 0:
            return ["the shards' owners were never read while the fault ran (every sample failed)"]
        if self.longest_unread_s > UNOWNED_LIMIT_S:
            return [f"the shards' owners went unread for {self.longest_unread_s:.0f}s (limit {UNOWNED_LIMIT_S:g}s), "
                    "so a gap in their ownership then was not seen"]  # fmt: skip
        if self.longest_gap_s > UNOWNED_LIMIT_S:
            return [f"shards were left unowned for {self.longest_gap_s:.0f}s (limit {UNOWNED_LIMIT_S:g}s)"]
        return []


def _every_shard_owned(runtime: DockerRuntime, hosts: int) -> float:
    """Seconds until `hosts` history hosts run and own every shard between them, each at least one."""
    began = time.monotonic()
    shards = runtime.settings.temporal_num_history_shards

    def settled() -> bool:
        owned = runtime.owned_shards(HISTORY)
        return len(owned) == hosts and sum(owned.values()) == shards and min(owned.values()) > 0

    waiting = Retrying(stop=stop_after_delay(RECOVERY_WAIT_S), wait=wait_fixed(POLL_S),
                       retry=retry_if_result(lambda done: not done))  # fmt: skip
    try:
        waiting(settled)
    except RetryError:
        raise TimeoutError(f"{hosts} history hosts did not own all {shards} shards within {RECOVERY_WAIT_S}s: "
                           f"{runtime.owned_shards(HISTORY)}") from None  # fmt: skip
    return time.monotonic() - began


def _docker(*argv: str) -> None:
    run_tool(["docker", *argv], what=f"docker {argv[0]}", fix="check `docker ps`", timeout_s=120)


Action = Callable[[DockerRuntime, FaultContext, Injected], None]


def _watched(action: Action) -> Callable[[FaultContext], Injected]:
    """Run `action` on the Docker runtime with the owners watched; a wait that runs out is a problem, not a crash."""

    def inject(context: FaultContext) -> Injected:
        runtime = context.stack
        if not isinstance(runtime, DockerRuntime):
            return Injected(problems=["host faults need the Docker runtime"])
        injected = Injected()
        with OwnershipWatch(runtime) as watch:
            try:
                action(runtime, context, injected)
            except TimeoutError as late:
                injected.problems.append(str(late))
        injected.notes.append(f"longest time with a shard unowned {watch.longest_gap_s:.1f}s")
        injected.problems.extend(watch.problems())
        return injected

    return inject


def _kill_one(runtime: DockerRuntime, _context: FaultContext, injected: Injected) -> None:
    """A crash: SIGKILL to the host's server process from outside (`docker kill` would count as a stop by hand,
    which the restart policy leaves stopped)."""
    hosts = runtime.settings.hosts("history")
    victim = runtime.containers(HISTORY)[0]
    os.kill(container_pid(victim, f"history host {victim[:12]}"), signal.SIGKILL)
    moved = _every_shard_owned(runtime, hosts)  # the restart policy brings it back; the shards spread again
    injected.notes.append(f"host {victim[:12]} killed; {hosts} hosts owned every shard again after {moved:.1f}s")


def _scale_out_and_in(runtime: DockerRuntime, _context: FaultContext, injected: Injected) -> None:
    hosts = runtime.settings.hosts("history")
    for count in (hosts + 2, hosts):
        began = time.monotonic()
        runtime.scale(HISTORY, count)
        moved = _every_shard_owned(runtime, count)
        injected.notes.append(f"{count} hosts: every shard owned {time.monotonic() - began:.1f}s after the "
                              f"change ({moved:.1f}s after the hosts were up)")  # fmt: skip


def _rolling_restart(runtime: DockerRuntime, _context: FaultContext, injected: Injected) -> None:
    hosts = runtime.settings.hosts("history")
    times = []
    for container in runtime.containers(HISTORY):
        began = time.monotonic()
        _docker("restart", "--time", "20", container)  # SIGTERM: the host hands its shards over as it stops
        _every_shard_owned(runtime, hosts)
        times.append(time.monotonic() - began)
    injected.notes.append("each host restarted in turn; every shard owned again after "
                          + ", ".join(f"{seconds:.1f}s" for seconds in times))  # fmt: skip


def _cut_off(runtime: DockerRuntime, context: FaultContext, injected: Injected) -> None:
    """The host's network link down for the plan's hold time (it keeps running, cut off from its peers and from
    DSQL), then up again with its routes: the others take its shards meanwhile, and it must give up what it held."""
    hosts = runtime.settings.hosts("history")
    victim = runtime.containers(HISTORY)[0]
    pid = str(container_pid(victim, f"history host {victim[:12]}"))

    def in_its_network(*argv: str) -> str:
        return run_tool(["nsenter", "--target", pid, "--net", *argv], what=f"{' '.join(argv[:3])} in {victim[:12]}",
                        fix="run as root, with iproute2 installed", timeout_s=30)  # fmt: skip

    links = [link["ifname"] for link in json.loads(in_its_network("ip", "-json", "link", "show"))
             if link["ifname"] != "lo"]  # fmt: skip
    routes = [route for route in json.loads(in_its_network("ip", "-json", "route", "show")) if "gateway" in route]
    for link in links:
        in_its_network("ip", "link", "set", link, "down")
    try:
        time.sleep(context.plan.hold_s)
    finally:
        for link in links:
            in_its_network("ip", "link", "set", link, "up")
        for route in routes:  # a link taken down loses the routes through it
            in_its_network("ip", "route", "replace", route["dst"], "via", route["gateway"], "dev", route["dev"])
    moved = _every_shard_owned(runtime, hosts)
    injected.notes.append(f"host {victim[:12]} cut off for {context.plan.hold_s:g}s; {hosts} hosts owned every "
                          f"shard again {moved:.1f}s after it was back")  # fmt: skip


DOCKER_ONLY = frozenset({Runtime.DOCKER})
HOST_FAULTS = [
    Fault("kill -9 one history host", _watched(_kill_one), runtimes=DOCKER_ONLY),
    Fault("one history host cut off the network", _watched(_cut_off), runtimes=DOCKER_ONLY),
    Fault("history hosts N -> N+2 -> N", _watched(_scale_out_and_in), runtimes=DOCKER_ONLY),
    Fault("rolling restart of the history hosts", _watched(_rolling_restart), runtimes=DOCKER_ONLY),
]
