"""The running local stack is locked down: password auth, private files, quiet probes, minimal environments."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.service_account import SERVICE_USER, drops_privileges
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.smoke import run_smoke
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration
# process-compose names the process, and starts commands through a shell, which sets its own three.
SUPERVISOR_VARIABLES = {"PC_PROC_NAME", "PC_REPLICA_NUM", "PWD", "SHLVL", "_"}
BASELINE = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "JAVA_HOME"}


def _pids(local_stack: LocalStack, paths: Paths) -> dict[str, int]:
    return {state.name: state.pid for state in local_stack.states(paths.process_compose) if not state.one_shot}


def test_database_refuses_a_connection_without_its_password(local_stack: LocalStack, settings: Settings) -> None:
    common = {"host": "127.0.0.1", "port": settings.temporal_sql_port, "user": settings.temporal_sql_user,
              "dbname": "postgres", "connect_timeout": 10}  # fmt: skip
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**common, password="not-the-password").close()
    assert settings.temporal_sql_password is not None
    with psycopg.connect(**common, password=settings.temporal_sql_password.get_secret_value()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_secrets_stay_in_private_files(local_stack: LocalStack, settings: Settings) -> None:
    layout = local_stack.layout
    for private in (layout.secrets, layout.sql_password):
        assert private.stat().st_mode & 0o077 == 0, f"{private} is readable by others"
    assert layout.runtime_dir.stat().st_mode & 0o777 == 0o700
    assert settings.temporal_sql_password is not None
    assert settings.temporal_sql_password.get_secret_value() not in layout.supervisor_config.read_text()


@pytest.mark.profile_independent
def test_supervised_postgresql_is_the_postmaster_and_its_probe_is_quiet(local_stack: LocalStack, paths: Paths) -> None:
    pid = _pids(local_stack, paths)["postgresql"]
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "postgres", "the supervisor must watch the server itself"
    log = local_stack.layout.log("postgresql")
    before = log.read_text(encoding="utf-8", errors="replace")
    check = local_stack.model.get("postgresql").healthcheck
    assert check is not None
    time.sleep(check.interval_s * 2 + 1)  # let the readiness probe run at least twice
    added = log.read_text(encoding="utf-8", errors="replace")[len(before) :]
    assert "FATAL" not in added, added


def test_each_service_gets_only_the_environment_it_needs(local_stack: LocalStack, paths: Paths) -> None:
    pids = _pids(local_stack, paths)
    # What the supervisor was told to give each process, as `up` rendered it.
    processes = yaml.safe_load(local_stack.layout.supervisor_config.read_text(encoding="utf-8"))["processes"]
    for service in local_stack.model:
        if service.one_shot:
            continue
        raw = Path(f"/proc/{pids[service.name]}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in raw if entry}
        declared = {entry.split("=", 1)[0] for entry in processes[service.name]["environment"]}
        assert names - declared - BASELINE - SUPERVISOR_VARIABLES == set(), service.name
        assert not any(name.startswith("AWS_") for name in names - declared), service.name


def test_a_restarted_postgresql_stops_with_its_fast_shutdown(
    local_stack: LocalStack, paths: Paths, settings: Settings
) -> None:
    """With Temporal connected, a restart is a clean shutdown (a smart one would wait out the supervisor's grace
    period for clients that never leave, then be killed), and Temporal serves again on the restarted database."""
    local_stack.restart(paths.process_compose, ["postgresql"], lambda _message: None)
    # The log goes on across the restart, each line written as it comes: the request, then what the new server says.
    log, earlier, run, deadline = local_stack.layout.log("postgresql"), "", "", time.monotonic() + 30
    while "ready to accept connections" not in run and time.monotonic() < deadline:
        time.sleep(0.5)
        earlier, _, run = log.read_text(encoding="utf-8").rpartition("starting PostgreSQL")
    assert "received fast shutdown request" in earlier.rpartition("database system is ready")[2], earlier[-3000:]
    assert "database system was shut down at" in run, run[-3000:]
    assert "was interrupted" not in run, run[-3000:]  # crash recovery: it was killed after all
    _await_a_workflow(settings, timeout_s=120)


def test_a_killed_postgresql_is_restarted_by_the_supervisor(
    local_stack: LocalStack, paths: Paths, settings: Settings
) -> None:
    """Restarted, alone, and Temporal serving again: a workflow completes on the restarted database."""
    before = _pids(local_stack, paths)["postgresql"]
    subprocess.run(["kill", "-9", str(before)], check=True, timeout=10)
    # The supervisor notices the death only once the old server's backends have gone too (they hold its output
    # open): until then it still reports the old process, healthy, so wait for a new one before waiting for health.
    deadline = time.monotonic() + 120
    while _pids(local_stack, paths).get("postgresql") in (before, 0, None) and time.monotonic() < deadline:
        time.sleep(0.5)
    states = local_stack.wait_healthy(paths.process_compose, lambda _m: None, timeout_s=120)
    after = next(state.pid for state in states if state.name == "postgresql")
    assert after != before, "the supervisor did not restart PostgreSQL within 120 s of its kill"
    orphans = subprocess.run(["pgrep", "-f", f"postgres -D {local_stack.layout.data / 'postgresql'}"],
                             capture_output=True, text=True, check=False, timeout=10).stdout.split()  # fmt: skip
    assert [int(pid) for pid in orphans] == [after], json.dumps(orphans)
    _await_a_workflow(settings, timeout_s=120)


def _await_a_workflow(settings: Settings, timeout_s: float) -> None:
    """Until each service's pool has replaced the connections the kill broke, Temporal answers some requests with an
    error (its namespace registry reports a failed read as "namespace not found"); the stack has recovered once a
    workflow completes and is found again."""
    waiting = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(2), retry=retry_if_exception_type(DeployError),
                       reraise=True)  # fmt: skip
    try:
        waiting(run_smoke, settings, PROJECT_ROOT)
    except DeployError as exc:
        pytest.fail(f"no workflow completed within {timeout_s:.0f}s of PostgreSQL's restart: {exc}")


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    return {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}


def test_started_by_root_no_service_runs_as_root(local_stack: LocalStack, paths: Paths) -> None:
    """Each long-running service (its main process) runs as the services' account, PostgreSQL as `postgres`,
    with no capabilities and no way to regain any; a user's stack runs as that user."""
    expected_uid = {"postgresql": pwd.getpwnam("postgres").pw_uid} if drops_privileges() else {}
    default_uid = pwd.getpwnam(SERVICE_USER).pw_uid if drops_privileges() else os.geteuid()
    pids = _pids(local_stack, paths)
    assert len(pids) >= 8, pids
    for name, pid in pids.items():
        status = _status(pid)
        uids = {int(uid) for uid in status["Uid"].split()}  # real, effective, saved, filesystem
        assert uids == {expected_uid.get(name, default_uid)}, (name, status["Uid"])
        if drops_privileges():
            assert int(status["CapEff"], 16) == 0, name
            assert status["NoNewPrivs"] == "1", name
