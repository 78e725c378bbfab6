"""The component catalogue: every program the local stack runs, installed by its unit (runtime/units/), plus the
local runtime's own tools (process-compose, grpc-health-probe); where each program is, and that it can run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.installer import Installer, Paths, build_step, component_dir, go_env, go_install
from temporal_dsql_deploy.runtime.units.dsql_local import install_dsql_local
from temporal_dsql_deploy.runtime.units.exporters import install_exporters
from temporal_dsql_deploy.runtime.units.metrics_store import install_victoria_metrics
from temporal_dsql_deploy.runtime.units.postgresql import install_postgresql
from temporal_dsql_deploy.runtime.units.search_engine import install_search_engine, search_engine_artifact
from temporal_dsql_deploy.runtime.units.temporal_server import install_product_server, install_temporal_server
from temporal_dsql_deploy.runtime.units.temporal_ui import install_ui_server
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import TemporalServer, temporal_cli

PROCESS_COMPOSE_VERSION = "v1.85.0"
GRPC_HEALTH_PROBE_VERSION = "v0.4.61"


def install_process_compose(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        # Built through the pinned wrapper module in components/ (see its go.mod for why).
        if installer.project_root is None:
            raise DeployError("process-compose is not installed", "run `invoke up` from the project, which builds it")
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "process-compose"),
                "github.com/f1bonacc1/process-compose"]  # fmt: skip
        build_step(argv, f"building process-compose {PROCESS_COMPOSE_VERSION}", env=go_env(staging),
                    cwd=installer.project_root / "components" / "process-compose")  # fmt: skip

    target = component_dir(settings, "process-compose", PROCESS_COMPOSE_VERSION)
    return installer.once(target, f"process-compose {PROCESS_COMPOSE_VERSION}", build, ("process-compose",))


def install_grpc_health_probe(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        go_install(
            [f"github.com/grpc-ecosystem/grpc-health-probe@{GRPC_HEALTH_PROBE_VERSION}"],
            staging,
            "grpc-health-probe",
        )

    target = component_dir(settings, "grpc-health-probe", GRPC_HEALTH_PROBE_VERSION)
    return installer.once(target, f"grpc-health-probe {GRPC_HEALTH_PROBE_VERSION}", build, ("grpc-health-probe",))


def install_all(settings: Settings, project_root: Path, report: Reporter) -> Paths:
    """Make sure every component of the local stack is present; return where each program is."""
    paths = _locate(settings, Installer(report, project_root=project_root))
    check_programs(paths)
    return paths


def check_programs(paths: Paths) -> None:
    """Every program the stack will exec can be executed, else one error naming it: the cached ones were rebuilt if
    damaged, but a noexec mount or the system's own (PostgreSQL's, java, the temporal CLI) fail only here."""
    if shutil.which("java") is None:
        raise DeployError("java is not on PATH, and the search engine runs on it",
                          "install a Java runtime (Debian: default-jre-headless), then run `invoke up`")  # fmt: skip
    programs = [paths.temporal_server, paths.temporal_es_tool, paths.ui_server, paths.process_compose,
                paths.grpc_health_probe, paths.postgres_bin / "postgres", paths.postgres_bin / "initdb",
                paths.temporal_cli, paths.dsql_local, paths.victoria_metrics, paths.postgres_exporter,
                paths.search_engine_exporter]  # fmt: skip
    for program in programs:
        if not program.is_file():
            raise DeployError(f"{program} is missing", "run `invoke up`, which installs it (PostgreSQL's: reinstall "
                              "Debian's postgresql package)")  # fmt: skip
        if not os.access(program, os.X_OK):
            raise DeployError(f"{program} is not executable",
                              f"make it executable (`chmod +x {program}`); if its filesystem is mounted noexec, "
                              "set CACHE_DIR to a directory on one that is not")  # fmt: skip


def installed_temporal_server(settings: Settings) -> TemporalServer:
    """The installed Temporal server and tools alone (all the one-shot commands need), without building."""
    return TemporalServer(install_temporal_server(settings, Installer(lambda _message: None, build=False)))


def installed_paths(settings: Settings) -> Paths:
    """Where the installed components are, without building anything."""
    return _locate(settings, Installer(lambda _message: None, build=False))


def installed_process_compose(settings: Settings) -> Path | None:
    """The installed supervisor, or None if it never was (then no local stack can be running)."""
    try:
        return install_process_compose(settings, Installer(lambda _message: None, build=False)) / "process-compose"
    except DeployError:
        return None


def _locate(settings: Settings, installer: Installer) -> Paths:
    server = TemporalServer(install_temporal_server(settings, installer))
    engine = install_search_engine(settings, installer)
    exporters = install_exporters(settings, installer)
    return Paths(
        temporal_server=install_product_server(settings, installer) / "temporal-server",
        temporal_es_tool=server.es_tool,
        ui_server=install_ui_server(settings, installer) / "server",
        process_compose=install_process_compose(settings, installer) / "process-compose",
        grpc_health_probe=install_grpc_health_probe(settings, installer) / "grpc-health-probe",
        search_engine_lib=engine / "lib",
        search_engine_main_class=search_engine_artifact(settings)[3],
        postgres_bin=install_postgresql(settings, installer),
        temporal_cli=temporal_cli(),
        dsql_local=install_dsql_local(settings, installer) / "dsql-local",
        victoria_metrics=install_victoria_metrics(settings, installer) / "victoria-metrics",
        postgres_exporter=exporters / "postgres_exporter",
        search_engine_exporter=exporters / "elasticsearch_exporter",
    )
