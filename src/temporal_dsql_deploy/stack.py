"""The local runtime: the service model under process-compose, with bounded waits and clear failures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from temporal_dsql_deploy.components import Paths, Reporter, install_all
from temporal_dsql_deploy.config import Settings, inherited_environment
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.model import Stack, build_stack
from temporal_dsql_deploy.persistence import init_data_dir
from temporal_dsql_deploy.render_supervisor import LOCALHOST, Layout, render_supervisor

UP_TIMEOUT_S = 600
CONTROL_TIMEOUT_S = 30
LOG_TAIL_LINES = 30
FAILURE_GRACE_S = 10


@dataclass(frozen=True)
class ServiceState:
    name: str
    status: str  # process-compose's: Pending, Running, Completed, Launching, Restarting, ...
    healthy: bool | None  # None: no health check
    exit_code: int
    pid: int
    restarts: int
    ports: tuple[int, ...]
    one_shot: bool

    @property
    def ok(self) -> bool:
        if self.one_shot:
            return self.status == "Completed" and self.exit_code == 0
        return self.status == "Running" and self.healthy is not False

    @property
    def failed(self) -> bool:
        """True when waiting longer cannot help."""
        if self.one_shot:
            return self.status == "Completed" and self.exit_code != 0
        return self.status in {"Completed", "Error", "Skipped"} or (
            self.status == "Terminating" and self.exit_code not in (0, -1)
        )


class LocalStack:
    """One project's local stack: its layout, its model and the supervisor that runs it."""

    def __init__(self, settings: Settings, project_root: Path) -> None:
        self.settings = settings
        self.project_root = project_root
        self.layout = Layout(settings.stack_dir, settings.search_engine)
        self.model: Stack = build_stack(settings)

    # --- supervisor control ---------------------------------------------------------------
    def _control(
        self, paths: Paths, *args: str, timeout: float = CONTROL_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(paths.process_compose), *args, "-U", "-u", str(self.layout.socket)]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)

    def running(self, paths: Paths) -> bool:
        return self.layout.socket.exists() and self._control(paths, "process", "list", "-o", "json").returncode == 0

    def states(self, paths: Paths) -> list[ServiceState]:
        result = self._control(paths, "process", "list", "-o", "json")
        if result.returncode != 0:
            raise DeployError("the local stack is not running", "start it with `invoke up`")
        by_name: dict[str, Any] = {entry["name"]: entry for entry in json.loads(result.stdout)}
        states = []
        for service in self.model:
            entry = by_name.get(service.name, {})
            health = entry.get("is_ready", "-")
            states.append(
                ServiceState(
                    name=service.name,
                    status=str(entry.get("status", "Missing")),
                    healthy=None if service.healthcheck is None else health == "Ready",
                    exit_code=int(entry.get("exit_code", 0)),
                    pid=int(entry.get("pid", 0)),
                    restarts=int(entry.get("restarts", 0)),
                    ports=tuple(p.number for p in service.ports if p.name in {"grpc", "http", "sql"}),
                    one_shot=service.one_shot,
                )
            )
        return states

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self, report: Reporter, timeout_s: float = UP_TIMEOUT_S) -> list[ServiceState]:
        paths = install_all(self.settings, report)
        if self.running(paths):
            states = self.states(paths)
            if all(state.ok for state in states):
                report("the stack is already running and healthy")
                return states
            # A half-started stack (interrupted or failed `up`): stop it, keep its data, start again.
            report("the stack is partly up; restarting it (data is kept)")
            self.down(paths, volumes=False)
        self.layout.socket.unlink(missing_ok=True)  # a stale socket from an interrupted run blocks the start
        check_ports_free(self.model)
        self._write_configs(paths)
        if self.settings.sql_is_local and init_data_dir(
            self.layout.data / "postgresql", paths.postgres_bin, self.settings.temporal_sql_user
        ):
            report("created the local PostgreSQL data directory")
        self._start_supervisor(paths)
        return self.wait_healthy(paths, report, timeout_s)

    def _write_configs(self, paths: Paths) -> None:
        for directory in (
            self.layout.config / "ui" / "config",
            self.layout.logs,
            self.layout.data,
            self.layout.root / "run",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL runs as `postgres` and puts its socket here
            shutil.chown(self.layout.root / "run", "postgres")
        templates = resources.files("temporal_dsql_deploy") / "templates"
        (self.layout.config / "temporal.yaml").write_text((templates / "temporal.yaml").read_text(), encoding="utf-8")
        (self.layout.config / "dynamicconfig.yaml").write_text(
            (templates / "dynamicconfig.yaml").read_text(), encoding="utf-8"
        )
        (self.layout.config / "ui" / "config" / "local.yaml").write_text(
            (templates / "ui.yaml").read_text(), encoding="utf-8"
        )
        self.layout.supervisor_config.write_text(
            render_supervisor(self.model, self.settings, paths, self.layout, self.project_root),
            encoding="utf-8",
        )

    def _start_supervisor(self, paths: Paths) -> None:
        argv = [
            str(paths.process_compose), "up", "-f", str(self.layout.supervisor_config), "--detached",
            "--disable-dotenv", "--ordered-shutdown", "-U", "-u", str(self.layout.socket),
            "-L", str(self.layout.log("process-compose-server")),
        ]  # fmt: skip
        result = subprocess.run(
            argv, cwd=self.project_root, env=inherited_environment(), capture_output=True, text=True,
            check=False, timeout=CONTROL_TIMEOUT_S,
        )  # fmt: skip
        if result.returncode != 0:
            raise DeployError(f"process-compose did not start: {result.stderr.strip()[-500:]}", "see the message")
        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while not self.running(paths):
            if time.monotonic() > deadline:
                raise DeployError(
                    f"process-compose did not open {self.layout.socket} within {CONTROL_TIMEOUT_S}s",
                    f"see {self.layout.log('process-compose-server')}",
                )
            time.sleep(0.5)

    def wait_healthy(self, paths: Paths, report: Reporter, timeout_s: float) -> list[ServiceState]:
        deadline = time.monotonic() + timeout_s
        announced: set[str] = set()
        failing_since: dict[str, float] = {}
        while True:
            states = self.states(paths)
            now = time.monotonic()
            for state in states:
                if state.ok and state.name not in announced:
                    announced.add(state.name)
                    report(f"{state.name}: {'completed' if state.one_shot else 'healthy'}")
                # A restart passes through `Completed` for a moment; only a failure that lasts counts.
                first_seen = failing_since.setdefault(state.name, now) if state.failed else None
                if first_seen is None:
                    failing_since.pop(state.name, None)
                elif state.one_shot or now - first_seen >= FAILURE_GRACE_S:
                    raise self._failure(state, "failed")
            if all(state.ok for state in states):
                return states
            if time.monotonic() > deadline:
                waiting = [s for s in states if not s.ok]
                raise self._failure(waiting[0], f"was not healthy after {int(timeout_s)}s (status {waiting[0].status})")
            time.sleep(1)

    def _failure(self, state: ServiceState, what: str) -> DeployError:
        log = self.layout.log(state.name)
        return DeployError(
            f"{state.name} {what} (exit code {state.exit_code}). Last lines of {log}:\n{tail(log, LOG_TAIL_LINES)}",
            f"fix the cause above, then run `invoke up` again (`invoke logs {state.name}` shows the whole log)",
        )

    def down(self, paths: Paths, *, volumes: bool) -> bool:
        """Stop the stack; True if it was running. Data survives unless `volumes`."""
        was_running = self.running(paths)
        if was_running:
            result = self._control(paths, "down", timeout=120)
            if result.returncode != 0:
                raise DeployError(f"process-compose down failed: {result.stderr.strip()[-300:]}", "run it again")
            deadline = time.monotonic() + 60
            while self.layout.socket.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
        self.layout.socket.unlink(missing_ok=True)
        if volumes:
            shutil.rmtree(self.layout.all_data, ignore_errors=True)
        return was_running


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _holder(port: int) -> str:
    """Who holds a TCP port, from `ss` (best effort: the port number alone is still reported)."""
    if shutil.which("ss") is None:
        return "another process"
    result = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False)
    return result.stdout.strip().split("users:", 1)[-1] if "users:" in result.stdout else "another process"


def check_ports_free(stack: Stack, bind: Callable[[int], bool] | None = None) -> None:
    """Fail before starting anything if a port the stack needs is taken, naming the port and its holder."""
    probe = bind or _port_free
    taken = [(service.name, port.number) for service in stack for port in service.ports if not probe(port.number)]
    if taken:
        detail = "; ".join(f"port {number} (for {name}) is held by {_holder(number)}" for name, number in taken)
        raise DeployError(detail, "stop what holds it, or choose another port in .env (e.g. TEMPORAL_UI_PORT=8081)")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True
