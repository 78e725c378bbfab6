"""The stack knows its own processes without its supervisor: real processes carrying the stack's marker stand in
for the services, and a real process killed with SIGKILL for the supervisor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.tracking import (
    STACK_VARIABLE,
    StackRecord,
    changed_ports,
    registry_entry,
    stack_processes,
    stop_stack_processes,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import STATE_FILE
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]
SLEEP = "import time; time.sleep(600)"
# A service that listens on a port and says so on its stdout once it does.
LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen();"
    "print('listening', flush=True); time.sleep(600)"
)
# A supervisor: starts its services (which inherit its environment, marker included), names their pids, waits.
SUPERVISOR = (
    "import subprocess, sys, time; children = [subprocess.Popen([sys.executable, '-c', code, *sys.argv[2:]]) "
    "for code in sys.argv[1].split('|')]; print(' '.join(str(c.pid) for c in children), flush=True); time.sleep(600)"
)
# A process named like PostgreSQL's postmaster that records the signal it was stopped with.
RECORDS_SIGNAL = (
    "import signal, sys, time\n"
    "def stop(number, _frame):\n"
    "    open(sys.argv[1], 'w').write(signal.Signals(number).name); sys.exit(0)\n"
    "signal.signal(signal.SIGINT, stop); signal.signal(signal.SIGTERM, stop)\n"
    "print('ready', flush=True); time.sleep(600)\n"
)
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Spawner:
    """Starts marked processes and, at the end of the test, ends every one of them (orphans included)."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[str]] = []
        self.orphan_pids: list[int] = []

    def start(self, stack_dir: Path, *argv: str, executable: str = sys.executable) -> subprocess.Popen[str]:
        env = {**os.environ, STACK_VARIABLE: str(stack_dir)}
        process = subprocess.Popen([executable, *argv], env=env, stdout=subprocess.PIPE, text=True)
        self.popens.append(process)
        return process

    def orphaned(self, stack_dir: Path, *codes: str, args: tuple[str, ...] = ()) -> list[int]:
        """Services left running by a supervisor killed with SIGKILL; their pids."""
        supervisor = self.start(stack_dir, "-c", SUPERVISOR, "|".join(codes), *args)
        assert supervisor.stdout is not None
        pids = [int(pid) for pid in supervisor.stdout.readline().split()]
        self.orphan_pids.extend(pids)
        for _ in range(sum("listening" in code for code in codes)):  # ready: each listener said so
            assert supervisor.stdout.readline().strip() == "listening"
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        return pids

    def close(self) -> None:
        for process in self.popens:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for pid in self.orphan_pids:
            try:
                orphan = psutil.Process(pid)
                if orphan.environ().get(STACK_VARIABLE):  # still ours, not a reused pid
                    orphan.kill()
            except psutil.Error:
                pass


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CACHE_DIR outside the project (one inside the checkout is refused)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    started = Spawner()
    yield started
    started.close()


def _cache(project: Path) -> dict[str, str]:
    """A CACHE_DIR outside the project (one inside the checkout is refused)."""
    return {"CACHE_DIR": str(project.parent / "cache")}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_orphans_of_a_killed_supervisor_are_found_with_their_ports(spawner: Spawner, tmp_path: Path) -> None:
    stack_dir = tmp_path / ".stack"
    port = _free_port()
    pids = spawner.orphaned(stack_dir, SLEEP, LISTEN, args=(str(port),))
    spawner.start(tmp_path / "other-stack", "-c", SLEEP)  # another stack's process is not this one's
    found = stack_processes(stack_dir)
    assert sorted(p.pid for p in found) == sorted(pids)
    assert [p.ports for p in found if p.ports] == [(port,)]


def test_stopping_ends_every_orphan_and_says_which(spawner: Spawner, tmp_path: Path) -> None:
    stack_dir = tmp_path / ".stack"
    pids = spawner.orphaned(stack_dir, SLEEP, SLEEP)
    stopped, running = stop_stack_processes(stack_dir)
    assert sorted(p.pid for p in stopped) == sorted(pids)
    assert running == []
    assert not any(_running(pid) for pid in pids)
    assert stack_processes(stack_dir) == []


def test_a_process_deaf_to_sigterm_is_killed_after_the_wait(spawner: Spawner, tmp_path: Path) -> None:
    stack_dir = tmp_path / ".stack"
    deaf = spawner.start(stack_dir, "-c", IGNORES_SIGTERM)
    assert deaf.stdout is not None
    assert deaf.stdout.readline().strip() == "ready"
    stopped, running = stop_stack_processes(stack_dir, timeout_s=0.5)
    assert [p.pid for p in stopped] == [deaf.pid]
    assert running == []
    assert deaf.wait() == -signal.SIGKILL


def test_the_postmaster_gets_a_fast_shutdown_and_other_services_sigterm(spawner: Spawner, tmp_path: Path) -> None:
    stack_dir = tmp_path / ".stack"
    postgres = tmp_path / "bin" / "postgres"  # named as PostgreSQL's server, so it is stopped as one
    postgres.parent.mkdir()
    postgres.symlink_to(sys.executable)
    records = {"postgres": tmp_path / "postgres.signal", "other": tmp_path / "other.signal"}
    started = [spawner.start(stack_dir, "-c", RECORDS_SIGNAL, str(records["postgres"]), executable=str(postgres)),
               spawner.start(stack_dir, "-c", RECORDS_SIGNAL, str(records["other"]))]  # fmt: skip
    for process in started:  # its handlers are set
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    stop_stack_processes(stack_dir)
    assert records["postgres"].read_text() == "SIGINT"
    assert records["other"].read_text() == "SIGTERM"


def test_status_names_orphans_and_down_stops_them(spawner: Spawner, project: Path) -> None:
    stack_dir = (project / ".stack").resolve()
    pids = spawner.orphaned(stack_dir, SLEEP, SLEEP)
    StackRecord(str(stack_dir), 4242, {}).write(stack_dir / STATE_FILE)  # as `up` recorded it
    status = run_task(project, "status", **_cache(project))
    assert_clear_error(status, "the supervisor (pid 4242) of the local stack", "is gone", "2 processes", str(pids[0]),
                       "invoke down")  # fmt: skip
    down = run_task(project, "down", **_cache(project))
    assert down.returncode == 0, down.stderr
    assert "stopped 2 processes of the stack that ran without their supervisor" in down.stdout
    assert not any(_running(pid) for pid in pids)
    assert "not running" in run_task(project, "status", **_cache(project)).stderr


def test_up_stops_its_own_orphans_first_and_says_so(
    spawner: Spawner, make_settings: MakeSettings, tmp_path: Path, cache_dir: Path
) -> None:
    stack_dir = tmp_path / ".stack"
    settings = make_settings(STACK_DIR=str(stack_dir), CACHE_DIR=str(cache_dir))
    pids = spawner.orphaned(stack_dir, SLEEP)
    # A damaged database stops `up` right after the orphans are handled, before anything is installed.
    version = stack_dir / "data" / settings.search_engine / "postgresql" / "PG_VERSION"
    version.parent.mkdir(parents=True)
    version.write_text("1\n")
    said: list[str] = []
    with pytest.raises(DeployError, match="PostgreSQL '1'"):
        LocalStack(settings, tmp_path).up(said.append)
    assert any("stopping 1 processes this stack left running" in line and str(pids[0]) in line for line in said)
    assert not _running(pids[0])


def test_a_failed_up_stops_what_it_started_and_keeps_the_data(spawner: Spawner, make_settings: MakeSettings,
                                                                tmp_path: Path, cache_dir: Path) -> None:  # fmt: skip
    stack_dir = tmp_path / ".stack"
    settings = make_settings(STACK_DIR=str(stack_dir), CACHE_DIR=str(cache_dir))
    stack = LocalStack(settings, tmp_path)
    data = stack_dir / "data" / "kept"
    data.mkdir(parents=True)
    pids = spawner.orphaned(stack_dir, SLEEP, SLEEP)  # what the run started, its supervisor no longer answering
    failure = DeployError("temporal-history failed (exit code 1). Last lines of history.log:\npanic", "fix it")
    error = stack._stop_after_failure(tmp_path / "no-process-compose", failure)
    assert error.problem.startswith(failure.problem)
    assert "stopped the 2 services this run started" in error.problem
    assert "data kept" in error.problem
    assert error.fix == failure.fix
    assert not any(_running(pid) for pid in pids)
    assert data.is_dir()


def test_another_stack_dir_of_the_running_stack_is_named(spawner: Spawner, project: Path) -> None:
    old = (project / ".stack").resolve()
    spawner.orphaned(old, SLEEP)
    StackRecord(str(old), 0, {}).write(registry_entry(project.parent / "cache", project))
    result = run_task(project, "status", STACK_DIR=str(project / "elsewhere"), **_cache(project))
    assert_clear_error(result, f"runs from STACK_DIR={old}", f"now say STACK_DIR={project / 'elsewhere'}",
                       f"STACK_DIR={old} invoke down")  # fmt: skip


def test_a_registry_entry_of_a_stack_that_ended_is_dropped(
    make_settings: MakeSettings, tmp_path: Path, cache_dir: Path
) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "new"), CACHE_DIR=str(cache_dir))
    entry = registry_entry(cache_dir, tmp_path)
    StackRecord(str(tmp_path / "old"), 2**22 + 1, {}).write(entry)  # above Linux's default pid_max: never running
    LocalStack(settings, tmp_path).check_runs_from_here()
    assert not entry.exists()


def test_changed_ports_name_the_service_and_both_ports() -> None:
    record = StackRecord("/s", 1, {"temporal-ui": [8080], "postgresql": [5432]})
    assert changed_ports(record, {"temporal-ui": [8081], "postgresql": [5432]}) == [
        "temporal-ui: runs on 8080, the settings now say 8081"
    ]
    assert changed_ports(record, {"temporal-ui": [8080], "postgresql": [5432]}) == []


def _silent_supervisor(spawner: Spawner, stack_dir: Path, tmp_path: Path) -> int:
    """A live process named process-compose carrying the stack's marker, recorded as its supervisor; its pid."""
    named = tmp_path / "bin" / "process-compose"
    named.parent.mkdir()
    named.symlink_to(sys.executable)
    supervisor = spawner.start(stack_dir, "-c", SLEEP, executable=str(named))
    StackRecord(str(stack_dir), supervisor.pid, {}).write(stack_dir / STATE_FILE)
    return supervisor.pid


def test_a_live_supervisor_that_does_not_answer_is_named_and_never_killed_by_up(
    spawner: Spawner, make_settings: MakeSettings, tmp_path: Path, cache_dir: Path
) -> None:
    stack_dir = tmp_path / ".stack"
    settings = make_settings(STACK_DIR=str(stack_dir), CACHE_DIR=str(cache_dir))  # process-compose not installed
    pid = _silent_supervisor(spawner, stack_dir, tmp_path)
    stack = LocalStack(settings, tmp_path)
    with pytest.raises(DeployError, match=rf"the supervisor \(pid {pid}\) .* does not answer") as status:
        stack.check_runs_as_configured(None)
    assert "is gone" not in status.value.problem
    with pytest.raises(DeployError, match="does not answer"):
        stack.up(lambda _line: None)
    assert _running(pid)


def test_status_names_a_supervisor_that_does_not_answer(spawner: Spawner, project: Path, tmp_path: Path) -> None:
    stack_dir = (project / ".stack").resolve()
    pid = _silent_supervisor(spawner, stack_dir, tmp_path)
    status = run_task(project, "status", **_cache(project))
    assert_clear_error(status, f"the supervisor (pid {pid})", "does not answer")
    assert _running(pid)


def test_a_cache_that_takes_no_writes_does_not_fail_a_started_stack(
    make_settings: MakeSettings, tmp_path: Path, cache_dir: Path
) -> None:
    stack_dir = tmp_path / ".stack"
    stack_dir.mkdir()
    unwritable = cache_dir / "a-file"  # the registry's directory cannot be made under a file
    unwritable.write_text("x")
    settings = make_settings(STACK_DIR=str(stack_dir), CACHE_DIR=str(cache_dir)).model_copy(
        update={"cache_dir": unwritable}
    )
    LocalStack(settings, tmp_path)._record(tmp_path / "process-compose")
    assert StackRecord.read(stack_dir / STATE_FILE) is not None
