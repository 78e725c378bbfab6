"""The local runtime: the service model under process-compose, with bounded waits and clear failures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.database.endpoint import dsql_local_dir
from temporal_dsql_deploy.database.local_postgres import (
    POSTGRES_USER,
    check_data_dir,
    init_data_dir,
    with_local_secrets,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.dashboards import write_vmui_dashboards
from temporal_dsql_deploy.owned_paths import (
    MARKER,
    adopt_stack_dir,
    check_claimable,
    is_legacy_stack_dir,
    make_owned_dir,
    remove_owned,
)
from temporal_dsql_deploy.private_files import owner_only_files, restrict_tree, state_writes, write_private
from temporal_dsql_deploy.process import Completed, run_program
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime import tracking
from temporal_dsql_deploy.runtime.components import install_all, installed_process_compose
from temporal_dsql_deploy.runtime.control_keys import ControlKeys, ensure_control_keys, service_secrets
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.model import Component, Runtime, Stack
from temporal_dsql_deploy.runtime.preflight import (
    check_disk_space,
    check_local_state,
    check_one_host_per_role,
    check_search_engine_port,
    record_history_shards,
)
from temporal_dsql_deploy.runtime.render_scrape import scrape_config
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.base import LOCALHOST
from temporal_dsql_deploy.runtime.units.metrics_store import store_scrape_auth
from temporal_dsql_deploy.service_account import (
    check_reachable,
    drops_privileges,
    ensure_service_user,
    service_group,
    share_with_services,
)
from temporal_dsql_deploy.settings.config import FRONTEND_HTTP_PORT, Settings
from temporal_dsql_deploy.settings.environment import service_baseline
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.temporal.dynamic_config import dynamic_config
from temporal_dsql_deploy.temporal.upgrade import check_start, mark_moving, record_release

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


@dataclass(frozen=True)
class Stopped:
    """What `down` stopped: the supervisor (with its services) and any process of the stack left without it."""

    supervisor: bool
    leftovers: list[tracking.StackProcess]

    @property
    def anything(self) -> bool:
        return self.supervisor or bool(self.leftovers)


class LocalStack:
    """One project's local stack: its layout, its model and the supervisor that runs it.

    Control needs only process-compose; `up` alone installs and locates the rest.
    """

    def __init__(self, settings: Settings, project_root: Path) -> None:
        self.layout = Layout(settings.stack_dir, settings.search_engine)
        self.settings = with_local_secrets(settings, create=False)
        self.project_root = project_root
        self.model: Stack = build_stack(self.settings).in_runtime(Runtime.LOCAL)

    # --- supervisor control ---------------------------------------------------------------
    def _control(self, process_compose: Path, *args: str, timeout: float = CONTROL_TIMEOUT_S) -> Completed:
        argv = [str(process_compose), *args, "-U", "-u", str(self.layout.socket)]
        return run_program(argv, what=f"process-compose {args[0]}", timeout_s=timeout,
                           fix=f"see {self.layout.log('process-compose-server')}")  # fmt: skip

    def running(self, process_compose: Path) -> bool:
        if not self.layout.socket.exists():
            return False
        return self._control(process_compose, "process", "list", "-o", "json").returncode == 0

    def running_engine(self) -> str | None:
        """The search engine of the stack last started from this directory."""
        marker = self.layout.engine_marker
        return marker.read_text(encoding="utf-8").strip() if marker.exists() else None

    def states(self, process_compose: Path) -> list[ServiceState]:
        result = self._control(process_compose, "process", "list", "-o", "json")
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

    # --- what runs where ----------------------------------------------------------------------
    def ports(self) -> dict[str, list[int]]:
        return {service.name: [port.number for port in service.ports] for service in self.model if service.ports}

    def check_runs_from_here(self) -> None:
        """Fail if this project's stack runs from another STACK_DIR than the settings name."""
        tracking.check_same_stack_dir(self.settings.cache_dir, self.project_root, self.layout.root)

    def check_runs_as_configured(self, process_compose: Path | None) -> None:
        """Fail if the stack runs without its supervisor, or with other ports than the settings name."""
        self.check_runs_from_here()
        if process_compose is None or not self.running(process_compose):
            if silent := self._silent_supervisor():
                raise silent
            orphans = tracking.stack_processes(self.layout.root)
            if not orphans:
                return
            record = tracking.StackRecord.read(self.layout.state)
            supervisor = f" (pid {record.supervisor_pid})" if record is not None and record.supervisor_pid else ""
            raise DeployError(
                f"the supervisor{supervisor} of the local stack in {self.layout.root} is gone but {len(orphans)} "
                f"processes of this stack still run: {', '.join(p.describe() for p in orphans)}",
                "stop them with `invoke down`, then start the stack again with `invoke up`",
            )
        record = tracking.StackRecord.read(self.layout.state)
        if record is not None and (changed := tracking.changed_ports(record, self.ports())):
            raise DeployError(
                f"the stack runs with other ports than the settings now say: {'; '.join(changed)}",
                "run `invoke up` to restart it with the new ports, or set the ports back in .env",
            )

    def _silent_supervisor(self) -> DeployError | None:
        """The error for a stack whose supervisor still runs but does not answer (or cannot be asked: process-compose
        is not installed), or None."""
        supervisor = tracking.live_supervisor(self.layout.root, self.layout.state)
        if supervisor is None:
            return None
        return DeployError(
            f"the supervisor (pid {supervisor.pid}) of the local stack in {self.layout.root} runs but does not answer "
            f"on {self.layout.socket}",
            f"see {self.layout.log('process-compose-server')}; `invoke down` stops the stack, or wait and try again",
        )

    def _check_claimable(self) -> None:
        """Refuse, writing nothing, a STACK_DIR (or data directory) `_claim_stack_dir` would refuse."""
        check_claimable(self.layout.root, project_root=self.project_root)
        if not is_legacy_stack_dir(self.layout.root, project_root=self.project_root):  # else adopted with it
            check_claimable(self.layout.all_data, project_root=self.project_root)

    def _claim_stack_dir(self, report: Reporter) -> None:
        """Make STACK_DIR and its data directory the product's (so they may be deleted), or refuse a directory
        that holds anything else. An earlier version's STACK_DIR (see owned_paths) is adopted with its data."""
        if adopt_stack_dir(self.layout.root, project_root=self.project_root):
            report(f"marked {self.layout.root} as this product's stack directory (made by an earlier version)")
            if self.layout.all_data.is_dir() and not self.layout.all_data.is_symlink():
                (self.layout.all_data / MARKER).touch()
        make_owned_dir(self.layout.root, project_root=self.project_root)
        make_owned_dir(self.layout.all_data, project_root=self.project_root)

    def _restrict_stack_dir(self) -> None:
        """STACK_DIR and everything in it owner-only, an earlier version's too; when root runs the stack, what its
        services (service_account.py) and PostgreSQL may reach is theirs or shared with their group."""
        if not drops_privileges():
            restrict_tree(self.layout.root)
            return
        restrict_tree(self.layout.root, service_group())
        passages = [self.layout.root, self.layout.all_data, self.layout.data, self.layout.config, self.layout.roles]
        for directory in passages:
            directory.mkdir(exist_ok=True)
        share_with_services(passages, [], [])

    def _share_with_services(self) -> None:
        """Once the configuration is written: what the services read, and the directories they write."""
        if not drops_privileges():
            return
        config = self.layout.config
        readable = [config / "temporal.yaml", config / "dynamicconfig.yaml", config / "ui", self.layout.scrape_config,
                    self.layout.dashboards]  # fmt: skip
        owned = [dsql_local_dir(self.settings), self.layout.data / "search-engine", self.layout.metrics_data]
        share_with_services([], readable, owned)

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self, report: Reporter, timeout_s: float = UP_TIMEOUT_S) -> list[ServiceState]:
        # Before installing anything: a disk too full or a damaged database would only fail later, half-started.
        check_disk_space(self.layout.root)
        check_search_engine_port(self.settings)
        check_one_host_per_role(self.settings)
        # Nothing (a stale generated secret included) is deleted in a STACK_DIR the product may not claim; the
        # claim itself writes, so it waits until a damaged database has been refused.
        self._check_claimable()
        if moving := check_start(self.layout, self.settings.temporal_version):
            report(moving)
        check_local_state(self.layout, self.settings, report)
        self.check_runs_from_here()
        self._stop_orphans(report)
        if self.settings.sql_is_local:
            check_data_dir(self.layout.data / "postgresql", self.settings.postgres_version)
        if drops_privileges():
            ensure_service_user(report)
        with owner_only_files():
            self._claim_stack_dir(report)
            self._restrict_stack_dir()
            keys = ensure_control_keys(self.layout.root)
        paths = install_all(self.settings, self.project_root, report)
        if drops_privileges():  # before a running stack is restarted: a refusal leaves it as it was
            check_reachable({"the checkout": self.project_root, "CACHE_DIR": self.settings.cache_dir,
                             "STACK_DIR": self.layout.root})  # fmt: skip
        if self.running(paths.process_compose):
            states = self.states(paths.process_compose)
            if self._runs_this_configuration(paths, keys) and all(state.ok for state in states):
                report("the stack is already running and healthy")
                record_release(self.layout, self.settings.temporal_version)  # an unfinished move's too, now done
                return states
            # A half-started stack (interrupted or failed `up`), or one started with other settings or
            # components (another search engine, a rebuilt program): stop it, keep its data, start again.
            report("the stack is partly up or was started with another configuration; restarting it (data is kept)")
            record = tracking.StackRecord.read(self.layout.state)
            for change in tracking.changed_ports(record, self.ports()) if record is not None else []:
                report(f"ports changed in the settings since it started: {change}")
            self.down(paths.process_compose, volumes=False)
        self.layout.socket.unlink(missing_ok=True)  # a stale socket from an interrupted run blocks the start
        check_ports_free(self.model)
        mark_moving(self.layout, self.settings.temporal_version)
        # A disk that fills up meanwhile is named, not a traceback.
        with owner_only_files(), state_writes("STACK_DIR", self.layout.root):
            self._prepare_database(paths, report)
            self._write_configs(paths, keys)
            self._share_with_services()
        # Ctrl-C (not a DeployError) is let through: the next `up` finishes what an interrupted one started.
        try:
            with owner_only_files():  # the supervisor and every service it starts inherit the umask
                self._start_supervisor(paths.process_compose)
            states = self.wait_healthy(paths.process_compose, report, timeout_s)
        except DeployError as failure:
            raise self._stop_after_failure(paths.process_compose, failure) from None
        record_history_shards(self.layout, self.settings, report)
        record_release(self.layout, self.settings.temporal_version)
        return states

    def _stop_orphans(self, report: Reporter) -> None:
        """Stop what a killed supervisor left running (they hold the stack's ports, but are its own)."""
        process_compose = installed_process_compose(self.settings)
        if process_compose is not None and self.running(process_compose):
            return
        if silent := self._silent_supervisor():  # a live stack, not orphans: never killed from `up`
            raise silent
        if orphans := tracking.stack_processes(self.layout.root):
            report(f"stopping {len(orphans)} processes this stack left running when its supervisor ended: "
                   + ", ".join(p.describe() for p in orphans))  # fmt: skip
            self.down(None, volumes=False)

    def _stop_after_failure(self, process_compose: Path, failure: DeployError) -> DeployError:
        """A failed `up` leaves nothing running: stop what this run started, keep the data, and say so."""
        started = [p.name for p in tracking.stack_processes(self.layout.root)]
        with contextlib.suppress(DeployError):  # the supervisor may not answer: what it started is named below
            started = [s.name for s in self.states(process_compose) if s.pid > 0]
        try:
            self.down(process_compose, volumes=False)
        except DeployError as stopping:
            return DeployError(f"{failure.problem}\nstopping what this run started failed: {stopping.problem}",
                               stopping.fix)  # fmt: skip
        return DeployError(
            f"{failure.problem}\nstopped the {len(started)} services this run started ({', '.join(started) or '-'}); "
            "data kept",
            failure.fix,
        )

    def _runs_this_configuration(self, paths: Paths, keys: ControlKeys) -> bool:
        """True if the running supervisor was started from what these settings and components render now, with these
        secrets (control keys made anew, say, for a damaged file)."""
        config, secrets = self.layout.supervisor_config, self.layout.secrets
        if self.running_engine() != self.settings.search_engine or not config.exists() or not secrets.exists():
            return False
        rendered = render_supervisor(self.model, self.settings, paths, self.layout, self.project_root)
        return (config.read_text(encoding="utf-8") == rendered and self._roles_run(paths.temporal_server.parent)
                and secrets.read_text(encoding="utf-8") == render_secrets(self.model, self.settings, keys))  # fmt: skip

    def _roles(self) -> list[str]:
        return [service.name for service in self.model if service.component is Component.TEMPORAL_SERVER]

    def _roles_run(self, build: Path) -> bool:
        """Every Temporal role's link leads to `build` (a build of the settings' release and source)."""
        return all(self.layout.role_build(name).resolve() == build.resolve() for name in self._roles())

    def link_role(self, service: str, build: Path) -> None:
        """Point the role's link at `build`, replacing the old link in one step (a start never sees none)."""
        link = self.layout.role_build(service)
        link.parent.mkdir(exist_ok=True)  # shared with the services' group by `up` (_restrict_stack_dir)
        staged = link.with_name(f".{service}.new")
        staged.unlink(missing_ok=True)
        staged.symlink_to(build, target_is_directory=True)
        staged.replace(link)

    def check_roles_linked(self) -> None:
        """Fail unless the running supervisor starts each role through its link (a stack started by an earlier
        version of the product runs the server by its path, which moving a link would not change)."""
        config = self.layout.supervisor_config
        text = config.read_text(encoding="utf-8") if config.exists() else ""
        unlinked = [name for name in self._roles() if f"{self.layout.role_build(name)}/" not in text]
        if unlinked:
            raise DeployError(f"the running stack starts {', '.join(unlinked)} without the link an upgrade moves (it "
                              "was started by an earlier version of this product)",
                              "run `invoke up` once (it restarts the stack with the links), then upgrade")  # fmt: skip

    def move_role(self, process_compose: Path, service: str, build: Path, timeout_s: float = UP_TIMEOUT_S) -> None:
        """Run one Temporal role from `build` (another release's): relink, restart it alone, wait for the stack, and
        check the role's process is that build's."""
        self.link_role(service, build)
        self.control(process_compose, "restart", service)
        self.wait_healthy(process_compose, lambda _message: None, timeout_s)
        pid = next((state.pid for state in self.states(process_compose) if state.name == service), 0)
        if not tracking.runs_program_in(pid, build):
            raise DeployError(f"{service} restarted, but its process (pid {pid}) does not run the build in {build}",
                              f"see `invoke logs {service}`; `invoke up` restarts the stack as configured")  # fmt: skip

    def write_supervisor_config(self, settings: Settings, paths: Paths) -> None:
        """The supervisor's config as `settings` render it (`up`; after an upgrade the one-shots' TEMPORAL_VERSION is
        the new release's: they ran already, and the next start runs them at it), so `up` sees the stack as
        configured."""
        model = build_stack(settings).in_runtime(Runtime.LOCAL)
        with owner_only_files(), state_writes("STACK_DIR", self.layout.root):
            self.layout.supervisor_config.write_text(
                render_supervisor(model, settings, paths, self.layout, self.project_root), encoding="utf-8"
            )

    def _prepare_database(self, paths: Paths, report: Reporter) -> None:
        if not self.settings.sql_is_local:
            return
        data_dir = self.layout.data / "postgresql"
        if (data_dir / "PG_VERSION").exists() and self.settings.temporal_sql_password is None:
            raise DeployError(
                f"the local PostgreSQL in {data_dir} was set up with a password kept in {self.layout.sql_password}, "
                "which is missing",
                "restore that file, set TEMPORAL_SQL_PASSWORD to the password, or delete the local data with "
                "`invoke down --volumes`",
            )
        self.settings = with_local_secrets(self.settings, create=True)
        self.model = build_stack(self.settings).in_runtime(Runtime.LOCAL)
        if init_data_dir(
            data_dir, paths.postgres_bin, self.settings, project_root=self.project_root, owner=self.layout.all_data
        ):
            report("created the local PostgreSQL data directory (password authentication)")

    def _write_configs(self, paths: Paths, keys: ControlKeys) -> None:
        for directory in (self.layout.config / "ui" / "config", self.layout.logs, self.layout.data):
            directory.mkdir(parents=True, exist_ok=True)
        self.layout.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL runs as `postgres` and puts its socket here
            shutil.chown(self.layout.runtime_dir, POSTGRES_USER)
        templates = resources.files("temporal_dsql_deploy") / "templates"
        (self.layout.config / "temporal.yaml").write_text((templates / "temporal.yaml").read_text(), encoding="utf-8")
        (self.layout.config / "dynamicconfig.yaml").write_text(dynamic_config(FRONTEND_HTTP_PORT), encoding="utf-8")
        (self.layout.config / "ui" / "config" / "local.yaml").write_text(
            (templates / "ui.yaml").read_text(), encoding="utf-8"
        )
        self.layout.scrape_config.write_text(
            scrape_config(
                self.model, lambda _service: LOCALHOST, self.settings.metrics_scrape_interval, store_scrape_auth()
            ),
            encoding="utf-8",
        )
        write_vmui_dashboards(self.layout.dashboards, project_root=self.project_root, owner=self.layout.root)
        self.write_supervisor_config(self.settings, paths)
        for role in self._roles():
            self.link_role(role, paths.temporal_server.parent)
        write_private(self.layout.secrets, render_secrets(self.model, self.settings, keys))
        self.layout.engine_marker.write_text(self.settings.search_engine + "\n", encoding="utf-8")

    def _start_supervisor(self, process_compose: Path) -> None:
        # The supervisor runs with the baseline environment only (its services inherit it), and reads the
        # secrets it substitutes into the config from a 0600 file, never from the project's .env.
        argv = [
            str(process_compose), "up", "-f", str(self.layout.supervisor_config), "--detached",
            "-e", str(self.layout.secrets), "--ordered-shutdown", "-U", "-u", str(self.layout.socket),
            "-L", str(self.layout.log("process-compose-server")),
        ]  # fmt: skip
        # The marker reaches the supervisor and, inherited, every process it starts (see tracking.py).
        env = {**service_baseline(), tracking.STACK_VARIABLE: str(self.layout.root)}
        result = run_program(argv, what="starting process-compose", fix="see the message above",
                             timeout_s=CONTROL_TIMEOUT_S, cwd=self.project_root, env=env,
                             replace_env=True)  # fmt: skip
        if result.returncode != 0:
            raise DeployError(f"process-compose did not start: {result.tail()}", "see the message above")
        waiting = Retrying(stop=stop_after_delay(CONTROL_TIMEOUT_S), wait=wait_fixed(0.5),
                           retry=retry_if_result(lambda up: not up))  # fmt: skip
        try:
            waiting(self.running, process_compose)
        except RetryError:
            raise DeployError(
                f"process-compose did not open {self.layout.socket} within {CONTROL_TIMEOUT_S}s",
                f"see {self.layout.log('process-compose-server')}",
            ) from None
        self._record(process_compose)

    def _record(self, process_compose: Path) -> None:
        """Write down the supervisor's pid and the ports, in STACK_DIR and in the project's registry entry."""
        supervisors = [p for p in tracking.stack_processes(self.layout.root) if p.name == process_compose.name]
        record = tracking.StackRecord(str(self.layout.root), supervisors[0].pid if supervisors else 0, self.ports())
        with state_writes("STACK_DIR", self.layout.root):
            record.write(self.layout.state)
        # The registry entry is only a hint (where this project's stack runs, for `up` from another checkout): a
        # full or read-only cache must not fail, or half-start, a stack that runs.
        with contextlib.suppress(OSError):
            record.write(tracking.registry_entry(self.settings.cache_dir, self.project_root))

    def wait_healthy(self, process_compose: Path, report: Reporter, timeout_s: float) -> list[ServiceState]:
        """Poll until every service is ok; a failure that lasts (or a one-shot's) ends the wait at once."""
        announced: set[str] = set()
        failing_since: dict[str, float] = {}

        def check() -> list[ServiceState]:
            states = self.states(process_compose)
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
            return states

        # Twice a second: a poll is one call of the supervisor's client, and every second waited here is `up`'s.
        waiting = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.5),
                           retry=retry_if_result(lambda states: not all(s.ok for s in states)))  # fmt: skip
        try:
            return waiting(check)
        except RetryError as exc:
            states = exc.last_attempt.result()
            slow = [s for s in states if not s.ok]
            raise self._failure(slow[0], f"was not healthy after {int(timeout_s)}s (status {slow[0].status})") from None

    def _failure(self, state: ServiceState, what: str) -> DeployError:
        log = self.layout.log(state.name)
        return DeployError(
            f"{state.name} {what} (exit code {state.exit_code}). Last lines of {log}:\n{tail(log, LOG_TAIL_LINES)}",
            f"fix the cause above, then run `invoke up` again (`invoke logs {state.name}` shows the whole log)",
        )

    def restart(self, process_compose: Path, targets: list[str], report: Reporter) -> list[str]:
        """Restart `targets` once what they depend on is healthy, in start-up order; return when every service
        is healthy again."""
        states = {state.name: state for state in self.states(process_compose)}
        needed = {dep for name in targets for dep in self.model.get(name).depends_on} - set(targets)
        unhealthy = sorted(dep for dep in needed if not states[dep].ok)
        if unhealthy:
            raise DeployError(f"cannot restart {', '.join(targets)}: {', '.join(unhealthy)} is not healthy",
                              f"see `invoke logs {unhealthy[0]}`; `invoke up` restarts what is down")  # fmt: skip
        ordered = [name for name in self.model.startup_order() if name in targets]
        for name in ordered:
            self.control(process_compose, "restart", name)
            # The next one may depend on this one: process-compose skips a service whose dependency is not
            # healthy, so each restart waits for the whole stack to be healthy again.
            self.wait_healthy(process_compose, lambda _message: None, UP_TIMEOUT_S)
            report(f"{name}: restarted and healthy")
        return ordered

    def control(self, process_compose: Path, action: str, name: str) -> None:
        """process-compose's `process stop|start|restart NAME`, without waiting for health."""
        result = self._control(process_compose, "process", action, name, timeout=120)
        if result.returncode != 0:
            raise DeployError(
                f"process-compose could not {action} {name}: {result.tail()}", f"see `invoke logs {name}`"
            )

    def down(self, process_compose: Path | None, *, volumes: bool) -> Stopped:
        """Stop the stack: through its supervisor if it runs, then any process of the stack left without it
        (found by its marker). Data survives unless `volumes`.

        `process_compose` None: it is not installed (or not to be asked), so only leftovers are stopped.
        """
        was_running = process_compose is not None and self.running(process_compose)
        if was_running and process_compose is not None:
            result = self._control(process_compose, "down", timeout=120)
            # The supervisor may exit before it has answered the request to stop it (EOF): what counts is
            # whether it still runs.
            if result.returncode != 0 and self.running(process_compose):
                raise DeployError(f"process-compose down failed: {result.tail()}", "run it again")
            gone = Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.5),
                            retry=retry_if_result(lambda exists: exists))  # fmt: skip
            with contextlib.suppress(RetryError):  # a socket left behind is removed below
                gone(self.layout.socket.exists)
        stopped, running = tracking.stop_stack_processes(self.layout.root)
        if running:
            raise tracking.still_running_error(f"could not stop every process of the stack in {self.layout.root}",
                                               running)  # fmt: skip
        self.layout.socket.unlink(missing_ok=True)
        self.layout.state.unlink(missing_ok=True)
        entry = tracking.registry_entry(self.settings.cache_dir, self.project_root)
        record = tracking.StackRecord.read(entry)
        if record is not None and record.stack_dir == str(self.layout.root):
            with contextlib.suppress(OSError):  # a hint: one left on a read-only cache names a stopped stack
                entry.unlink(missing_ok=True)
        if volumes:
            remove_owned(self.layout.all_data, project_root=self.project_root, owner=self.layout.root)
        return Stopped(was_running, stopped)


def render_secrets(stack: Stack, settings: Settings, keys: ControlKeys) -> str:
    """The dotenv text the supervisor reads the services' secrets from (single-quoted: taken literally)."""
    values = service_secrets(settings, (service.environment for service in stack), keys)
    for name, value in values.items():
        if "'" in value or "\n" in value:
            raise DeployError(f"{name} contains a single quote or a line break, which the local supervisor "
                              "cannot pass on", f"choose a {name} without them")  # fmt: skip
    return "".join(f"{name}='{value}'\n" for name, value in values.items())


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _holder(port: int) -> str:
    """Who holds a TCP port, from `ss` (best effort: the port number alone is still reported)."""
    if shutil.which("ss") is None:
        return "another process"
    try:
        result = run_program(["ss", "-Hltnp", f"sport = :{port}"], what="ss", fix="", timeout_s=10)
    except DeployError:
        return "another process"
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
