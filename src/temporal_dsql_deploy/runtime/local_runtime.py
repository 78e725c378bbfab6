"""The stack interface for the local runtime: native processes under process-compose (runtime/stack.py)."""

from __future__ import annotations

from pathlib import Path

from temporal_dsql_deploy.database.migration import migrate_to_release
from temporal_dsql_deploy.database.schema import Applier, SchemaSource, default_schema_name
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.owned_paths import check_owned
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.components import install_all, installed_process_compose
from temporal_dsql_deploy.runtime.control_keys import METRICS_STORE_USER, keys_file, read_control_keys
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.interface import ServiceRow, StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.stack import LocalStack, ServiceState, tail
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import TemporalServer
from temporal_dsql_deploy.temporal.visibility import setup_visibility


def _row(state: ServiceState) -> ServiceRow:
    health = "-" if state.healthy is None else ("healthy" if state.healthy else "unhealthy")
    if state.one_shot:
        health = "done" if state.ok else (f"exit {state.exit_code}" if state.status == "Completed" else "-")
    return ServiceRow(state.name, state.status, health, ", ".join(map(str, state.ports)) or "-", state.ok)


class LocalRuntime(StackRuntime):
    kind = Runtime.LOCAL
    starting = "starting the local stack"

    def __init__(self, settings: Settings, project_root: Path) -> None:
        super().__init__(settings, project_root)
        self.stack = LocalStack(settings, project_root)

    def _supervisor(self) -> Path:
        process_compose = installed_process_compose(self.settings)
        if process_compose is None:
            raise DeployError("the local stack is not running (it was never started here)",
                              "start it with `invoke up`")  # fmt: skip
        return process_compose

    def up(self, report: Reporter) -> list[ServiceRow]:
        return [_row(state) for state in self.stack.up(report)]

    def deletable_data(self) -> str:
        self.stack.check_runs_from_here()
        layout = self.stack.layout
        check_owned(layout.all_data, project_root=self.project_root, owner=layout.root)
        return f"the local stack's data in {layout.all_data} (databases, indexes)"

    def down(self, *, volumes: bool) -> list[str]:
        self.stack.check_runs_from_here()
        stopped = self.stack.down(installed_process_compose(self.settings), volumes=volumes)
        said = []
        if stopped.leftovers:
            said.append(f"stopped {len(stopped.leftovers)} processes of the stack that ran without their supervisor: "
                        + ", ".join(p.describe() for p in stopped.leftovers))  # fmt: skip
        said.append("stopped the local stack" if stopped.anything else "the local stack was not running")
        if volumes:
            said.append(f"deleted its data in {self.stack.layout.all_data}")
        return said

    def status(self) -> list[ServiceRow]:
        self.stack.check_runs_as_configured(installed_process_compose(self.settings))
        return [_row(state) for state in self.stack.states(self._supervisor())]

    def restart(self, targets: list[str], report: Reporter) -> list[str]:
        return self.stack.restart(self._supervisor(), targets, report)

    def wait_healthy(self, timeout_s: float) -> None:
        self.stack.wait_healthy(self._supervisor(), lambda _message: None, timeout_s)

    def main_pid(self, service: str) -> int:
        return next((state.pid for state in self.stack.states(self._supervisor()) if state.name == service), 0)

    def stop_service(self, service: str) -> None:
        self.stack.control(self._supervisor(), "stop", service)

    def start_service(self, service: str) -> None:
        self.stack.control(self._supervisor(), "start", service)

    def check_replaceable(self) -> None:
        self.stack.check_roles_linked()

    def prepare_release(self, release_settings: Settings, report: Reporter) -> None:
        install_all(release_settings, self.project_root, report)

    def schema_version(self) -> str | None:
        installer = Installer(lambda _message: None, build=False)  # located only: a dry run builds nothing
        try:
            source = SchemaSource.resolve(lambda: TemporalServer(install_temporal_server(self.settings, installer)),
                                          "", "", default_schema_name(self.settings))  # fmt: skip
        except DeployError:  # the release's schema files are not installed (yet): the recorded release's stands
            return None
        applier = Applier(self.settings, source, lambda _message: None)
        try:
            return applier.current_version()
        finally:
            applier.close()

    def migrate(self, release_settings: Settings, report: Reporter) -> list[str]:
        installer = Installer(report, project_root=self.project_root)
        tools = TemporalServer(install_temporal_server(release_settings, installer))
        return [migrate_to_release(release_settings, lambda: tools, report),
                setup_visibility(release_settings, tools.es_tool).describe()]  # fmt: skip

    def replace_release(self, service: str, release_settings: Settings) -> None:
        paths = install_all(release_settings, self.project_root, lambda _message: None)  # built: located only
        self.stack.move_role(self._supervisor(), service, paths.temporal_server.parent)

    def finish_release(self, release_settings: Settings) -> None:
        paths = install_all(release_settings, self.project_root, lambda _message: None)
        self.stack.write_supervisor_config(release_settings, paths)

    def logs(self, service: str, lines: int) -> str:
        names = [service] if service else list(self.stack.model.names)
        return "\n".join(f"==> {self.stack.layout.log(name)} <==\n{tail(self.stack.layout.log(name), lines)}"
                         for name in names)  # fmt: skip

    def metrics_store(self) -> MetricsStore:
        # VictoriaMetrics answers only with the stack's key.
        url = f"http://127.0.0.1:{self.settings.metrics_port}"
        keys = read_control_keys(self.settings.stack_dir, f"the metrics store at {url}")
        return MetricsStore(url, auth=keys.metrics_auth)

    def dashboards(self) -> list[str]:
        store = f"http://127.0.0.1:{self.settings.metrics_port}"
        login = f"user {METRICS_STORE_USER}, password: `metrics_store` in {keys_file(self.settings.stack_dir)}"
        return [f"dashboards         {store}/vmui/#/dashboards   (or `invoke top`)", f"                   {login}"]
