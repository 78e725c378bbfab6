"""How the local stack knows its own processes without its supervisor, and where each project's stack runs from.

Every process the supervisor starts carries `STACK_VARIABLE=<STACK_DIR>` in its environment, which children
inherit (the search engine's JVM, PostgreSQL's postmaster and its backends): after a `kill -9` of the supervisor
its services are still found, and stopped, by that variable. `up` also writes a state file under STACK_DIR
(supervisor pid, the services' ports) and a registry entry per project root under CACHE_DIR, so a STACK_DIR or a
port changed in the settings while the stack runs is named instead of being mistaken for "not running".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError

STACK_VARIABLE = "TEMPORAL_DSQL_STACK"
SUPERVISOR = "process-compose"  # the supervisor's process name
STOP_TIMEOUT_S = 30.0  # as the supervisor's own shutdown timeout for a service
KILL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StackRecord:
    """What `up` records about a running stack: in STACK_DIR and in the project's registry entry."""

    stack_dir: str
    supervisor_pid: int
    ports: dict[str, list[int]] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> StackRecord | None:
        """The record in `path`; None if missing or unreadable (a record is a hint, never a reason to fail)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["stack_dir"]), int(data["supervisor_pid"]),
                       {str(k): [int(p) for p in v] for k, v in data.get("ports", {}).items()})  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def registry_entry(cache_dir: Path, project_root: Path) -> Path:
    """The registry file of one project: which STACK_DIR its running stack uses."""
    digest = hashlib.sha256(str(project_root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "stacks" / f"{digest}.json"


@dataclass(frozen=True)
class StackProcess:
    pid: int
    name: str
    ports: tuple[int, ...]

    def describe(self) -> str:
        listening = f" on port {', '.join(map(str, self.ports))}" if self.ports else ""
        return f"{self.name} (pid {self.pid}){listening}"


def _marked(stack_dir: Path) -> list[psutil.Process]:
    """Every live process (but this one) whose environment carries this stack's marker."""
    wanted = str(stack_dir)
    found = []
    for process in psutil.process_iter(["environ"], ad_value=None):
        environ = process.info["environ"]
        if process.pid != os.getpid() and environ is not None and environ.get(STACK_VARIABLE) == wanted:
            found.append(process)
    return found


def _listening(process: psutil.Process) -> tuple[int, ...]:
    with contextlib.suppress(psutil.Error):
        return tuple(sorted({c.laddr.port for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN}))
    return ()


def stack_processes(stack_dir: Path) -> list[StackProcess]:
    """The processes of the stack in `stack_dir` that still run, with the ports they listen on."""
    described = []
    for process in _marked(stack_dir):
        with contextlib.suppress(psutil.Error):
            described.append(StackProcess(process.pid, process.name(), _listening(process)))
    return sorted(described, key=lambda p: p.pid)


def live_supervisor(stack_dir: Path, state: Path) -> StackProcess | None:
    """The stack's supervisor if the pid recorded in `state` is alive, is process-compose and carries the stack's
    marker (a pid reused by another program is neither); None otherwise."""
    record = StackRecord.read(state)
    if record is None or not record.supervisor_pid:
        return None
    return next((p for p in stack_processes(stack_dir) if p.pid == record.supervisor_pid and p.name == SUPERVISOR),
                None)  # fmt: skip


def _is_postmaster_child(process: psutil.Process) -> bool:
    # PostgreSQL's backends and helpers go with their postmaster; a signal of their own would disturb it.
    parent = process.parent()
    return parent is not None and parent.name() == "postgres" and process.name() == "postgres"


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process has ended; return those that have not. Not psutil.wait_procs: it waits on the
    zombie of an orphan until its new parent reaps it, which some init processes never do."""
    waiting = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.2), retry=retry_if_result(bool))
    try:
        return waiting(_alive, processes)
    except RetryError as exc:
        left: list[psutil.Process] = exc.last_attempt.result()
        return left


def stop_stack_processes(
    stack_dir: Path, timeout_s: float = STOP_TIMEOUT_S
) -> tuple[list[StackProcess], list[StackProcess]]:
    """Stop every process of the stack: SIGTERM (PostgreSQL's postmaster SIGINT, its fast shutdown, so the data is
    safe), a bounded wait, then SIGKILL. Return what was stopped and what still runs."""
    processes = _marked(stack_dir)
    described = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            described[process.pid] = StackProcess(process.pid, process.name(), _listening(process))
            if not _is_postmaster_child(process):
                process.send_signal(signal.SIGINT if process.name() == "postgres" else signal.SIGTERM)
    alive = _wait_gone(processes, timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    running = {p.pid for p in _wait_gone(alive, KILL_TIMEOUT_S)}
    return (sorted((d for pid, d in described.items() if pid not in running), key=lambda d: d.pid),
            sorted((d for pid, d in described.items() if pid in running), key=lambda d: d.pid))  # fmt: skip


def still_running_error(what: str, running: list[StackProcess]) -> DeployError:
    return DeployError(f"{what}; still running: {', '.join(p.describe() for p in running)}",
                       f"stop them with `kill -9 {' '.join(str(p.pid) for p in running)}` (as root if they run as "
                       "another user)")  # fmt: skip


def check_same_stack_dir(cache_dir: Path, project_root: Path, stack_dir: Path) -> None:
    """Fail if this project's stack runs from another STACK_DIR than the settings now name."""
    entry = registry_entry(cache_dir, project_root)
    record = StackRecord.read(entry)
    if record is None or Path(record.stack_dir) == stack_dir:
        return
    if not _marked(Path(record.stack_dir)):  # its supervisor carries the marker too
        entry.unlink(missing_ok=True)  # a stack that ended without `down` (a reboot): nothing to say
        return
    raise DeployError(
        f"a stack of this project runs from STACK_DIR={record.stack_dir}; the settings now say STACK_DIR={stack_dir}",
        f"stop it first with `STACK_DIR={record.stack_dir} invoke down`, or set STACK_DIR back to {record.stack_dir}",
    )


def changed_ports(record: StackRecord, ports: dict[str, list[int]]) -> list[str]:
    """The services whose ports in the settings differ from those the running stack was started with."""
    return [
        f"{name}: runs on {', '.join(map(str, old))}, the settings now say {', '.join(map(str, ports[name]))}"
        for name, old in record.ports.items()
        if name in ports and ports[name] != old
    ]


def runs_program_in(pid: int, directory: Path) -> bool:
    """Whether process `pid`, or a process it started (a wrapper that switches user, say), runs a program from
    `directory` (as its executable resolves: a role's link names the release's build)."""
    wanted = directory.resolve()
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return False
    for member in family:
        with contextlib.suppress(psutil.Error, OSError):
            if wanted in Path(member.exe()).resolve().parents:
                return True
    return False
