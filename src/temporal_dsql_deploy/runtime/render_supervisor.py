"""Render the service model to a process-compose configuration for hosts without Docker."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from temporal_dsql_deploy.database.endpoint import dsql_local_dir
from temporal_dsql_deploy.runtime.components import Paths
from temporal_dsql_deploy.runtime.control_keys import METRICS_STORE_KEY, METRICS_STORE_USER
from temporal_dsql_deploy.runtime.model import (
    SEARCH_ENGINE_JVM_OPTIONS,
    Component,
    GrpcProbe,
    HealthCheck,
    HttpProbe,
    PostgresProbe,
    Service,
    Stack,
)
from temporal_dsql_deploy.runtime.tracking import STACK_VARIABLE, STATE_FILE
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef, render_environment

LOCALHOST = "127.0.0.1"
_CONDITIONS = {
    "service_started": "process_started",
    "service_healthy": "process_healthy",
    "service_completed_successfully": "process_completed_successfully",
}


@dataclass(frozen=True)
class Layout:
    """Where the local stack keeps its state under STACK_DIR.

    Data is kept per search engine: Temporal's persistence records which search attributes the
    index maps, so a database and an index only make sense together.
    """

    root: Path
    search_engine: str

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def all_data(self) -> Path:
        return self.root / "data"

    @property
    def data(self) -> Path:
        return self.all_data / self.search_engine

    @property
    def scrape_config(self) -> Path:
        return self.config / "prometheus.yml"

    @property
    def dashboards(self) -> Path:
        """The dashboards the metrics store's UI shows (vmui's format)."""
        return self.config / "dashboards"

    @property
    def metrics_data(self) -> Path:
        """Kept with the engine's data, like the workflows the metrics describe."""
        return self.data / "metrics"

    @property
    def supervisor_config(self) -> Path:
        return self.config / "process-compose.yaml"

    @property
    def socket(self) -> Path:
        return self.root / "process-compose.sock"

    @property
    def secrets(self) -> Path:
        """The secrets the supervisor substitutes into the config at start; 0600, never in the config itself."""
        return self.config / "secrets.env"

    @property
    def sql_password(self) -> Path:
        """The local PostgreSQL's generated password (0600), shared by the data of every engine."""
        return self.all_data / "postgresql.password"

    @property
    def engine_marker(self) -> Path:
        """Which search engine the stack last started from this directory runs."""
        return self.config / "search-engine"

    @property
    def state(self) -> Path:
        """What `up` recorded about the running stack: the supervisor's pid and the services' ports."""
        return self.root / STATE_FILE

    @property
    def runtime_dir(self) -> Path:
        """PostgreSQL's socket directory (only its owner may enter)."""
        return self.root / "run"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


POSTGRES_USER = "postgres"  # Debian's package's user, which PostgreSQL runs as when the stack starts as root


def as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: switch to `postgres` with setpriv, which execs the server itself
    (unlike runuser, which forks), so the supervisor's PID is the postmaster and signals reach it."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--init-groups", "--", *argv]


def _command(service: Service, settings: Settings, paths: Paths, layout: Layout) -> list[str]:
    return _OBSERVABILITY_COMMANDS.get(service.component, _stack_command)(service, settings, paths, layout)


def _stack_command(service: Service, settings: Settings, paths: Paths, layout: Layout) -> list[str]:
    if service.component is Component.POSTGRESQL:
        port = str(service.ports[0].number)
        postgres = str(paths.postgres_bin / "postgres")
        data = layout.data / "postgresql"
        argv = [postgres, "-D", str(data), "-p", port, "-k", str(layout.runtime_dir), "-c",
                f"listen_addresses={LOCALHOST}", "-c", "unix_socket_permissions=0700"]  # fmt: skip
        return as_postgres_user(argv)
    if service.component is Component.SEARCH_ENGINE:
        http_port = service.ports[0].number
        return [
            "java", *SEARCH_ENGINE_JVM_OPTIONS, "-cp", f"{paths.search_engine_lib}/*", paths.search_engine_main_class,
            "-basePath", str(layout.data / "search-engine"), "-numOfNode", "1",
            "-baseHttpPort", str(http_port - 1), "-clusterName", settings.project_name,
        ]  # fmt: skip
    if service.component is Component.TEMPORAL_SERVER:
        config = str(layout.config / "temporal.yaml")
        return [str(paths.temporal_server), "--config-file", config, "--allow-no-auth", *service.args]
    if service.component is Component.TEMPORAL_UI:
        return [str(paths.ui_server), "--root", str(layout.config / "ui"), "--env", "local", "start"]
    if service.component is Component.DSQL_LOCAL:
        sql, admin = (port.number for port in service.ports)
        return [str(paths.dsql_local), "--listen", f"{LOCALHOST}:{sql}", "--admin-listen", f"{LOCALHOST}:{admin}",
                "--backend-host", LOCALHOST, "--tls-dir", str(dsql_local_dir(settings)),
                "--endpoint", settings.temporal_sql_host, *service.args]  # fmt: skip
    return [sys.executable, "-m", "temporal_dsql_deploy", *service.args]


# VictoriaMetrics reads the flags below from variables named VM_<flag, dots as underscores> (-envflag.enable), so
# its key is never on a command line. Basic auth locks everything but its health pages (queries, imports, remote
# write, vmui, its own /metrics); each *AuthKey flag locks its path (delete, snapshots, merges, reload, flags,
# profiles, the scrape config) to a request that also names the key as `authKey`.
VICTORIA_METRICS_ENV_PREFIX = "VM_"
VICTORIA_METRICS_KEY_FLAGS = (
    "httpAuth.password", "deleteAuthKey", "snapshotAuthKey", "forceMergeAuthKey", "forceFlushAuthKey", "reloadAuthKey",
    "flagsAuthKey", "pprofAuthKey", "configAuthKey", "search.resetCacheAuthKey", "metricNamesStatsResetAuthKey",
    "logNewSeriesAuthKey",
)  # fmt: skip


def victoria_metrics_variable(flag: str) -> str:
    """The environment variable VictoriaMetrics reads `-flag` from (its envflag rule, with our prefix)."""
    return VICTORIA_METRICS_ENV_PREFIX + flag.replace(".", "_")


def victoria_metrics_environment() -> dict[str, EnvValue]:
    """The store's user name, and its key under every flag that takes it."""
    environment: dict[str, EnvValue] = {victoria_metrics_variable("httpAuth.username"): METRICS_STORE_USER}
    environment.update({victoria_metrics_variable(flag): SecretRef(METRICS_STORE_KEY)
                        for flag in VICTORIA_METRICS_KEY_FLAGS})  # fmt: skip
    return environment


def store_scrape_auth() -> dict[str, str]:
    """The store scraping its own /metrics authenticates like any client; the password is expanded by VictoriaMetrics
    from its environment (`%{...}`), so the rendered scrape config holds no secret."""
    return {"username": METRICS_STORE_USER, "password": "%{" + victoria_metrics_variable("httpAuth.password") + "}"}


def _metrics_store(service: Service, settings: Settings, paths: Paths, layout: Layout) -> list[str]:
    return [
        str(paths.victoria_metrics), f"-httpListenAddr={LOCALHOST}:{service.ports[0].number}",
        "-envflag.enable", f"-envflag.prefix={VICTORIA_METRICS_ENV_PREFIX}",
        f"-storageDataPath={layout.metrics_data}", f"-retentionPeriod={settings.metrics_retention_days}d",
        f"-promscrape.config={layout.scrape_config}", f"-vmui.customDashboardsPath={layout.dashboards}",
    ]  # fmt: skip


def _exporter(service: Service, _settings: Settings, paths: Paths, _layout: Layout) -> list[str]:
    program = (
        paths.postgres_exporter if service.component is Component.POSTGRES_EXPORTER else paths.search_engine_exporter
    )
    return [str(program), f"--web.listen-address={LOCALHOST}:{service.ports[0].number}", *service.args]


_OBSERVABILITY_COMMANDS = {
    Component.METRICS_STORE: _metrics_store,
    Component.POSTGRES_EXPORTER: _exporter,
    Component.SEARCH_ENGINE_EXPORTER: _exporter,
}


def environment(service: Service, layout: Layout) -> dict[str, str]:
    """The service's variables as rendered: hosts are loopback, secrets `${NAME}` from the secrets file, and the
    stack's marker, by which its processes are found even without the supervisor."""
    extra: dict[str, EnvValue] = {STACK_VARIABLE: str(layout.root)}
    if service.component is Component.TEMPORAL_SERVER:
        extra["TEMPORAL_DYNAMIC_CONFIG_FILE"] = str(layout.config / "dynamicconfig.yaml")
    if service.component is Component.METRICS_STORE:
        extra.update(victoria_metrics_environment())
    rendered = render_environment(
        {**service.environment, **extra}, lambda _host: LOCALHOST, lambda secret: "${" + secret.name + "}"
    )
    return dict(sorted(rendered.items()))


def _probe(check: HealthCheck, settings: Settings, paths: Paths) -> dict[str, Any]:
    probe = check.probe
    if isinstance(probe, HttpProbe):
        path, _, query = probe.path.partition("?")
        target: dict[str, Any] = {"http_get": {"host": LOCALHOST, "port": probe.port, "path": path, "scheme": "http"}}
        if query:  # process-compose's http_get takes no query string; keep the check's meaning in Python
            url = f"http://{LOCALHOST}:{probe.port}{probe.path}"
            fetch = f"import urllib.request; urllib.request.urlopen({url!r}, timeout={check.timeout_s})"
            target = {"exec": {"command": shlex.join([sys.executable, "-c", fetch])}}
    elif isinstance(probe, GrpcProbe):
        argv = [str(paths.grpc_health_probe), f"-addr={LOCALHOST}:{probe.port}"]
        if probe.service:
            argv.append(f"-service={probe.service}")
        target = {"exec": {"command": shlex.join(argv)}}
    elif isinstance(probe, PostgresProbe):
        # As the stack's own user against the always-present `postgres` database: the server logs nothing for
        # a client that leaves at the password prompt, so a healthy database keeps a quiet log.
        argv = [str(paths.postgres_bin / "pg_isready"), "-h", LOCALHOST, "-p", str(probe.port), "-q",
                "-U", settings.temporal_sql_user, "-d", "postgres"]  # fmt: skip
        target = {"exec": {"command": shlex.join(argv)}}
    return {
        **target,
        "initial_delay_seconds": 1,
        "period_seconds": check.interval_s,
        "timeout_seconds": check.timeout_s,
        "success_threshold": 1,
        "failure_threshold": check.retries,
    }


def render_process(
    service: Service, settings: Settings, paths: Paths, layout: Layout, project_root: Path
) -> dict[str, Any]:
    process: dict[str, Any] = {
        "command": shlex.join(_command(service, settings, paths, layout)),
        "working_dir": str(project_root),
        "environment": [f"{name}={value}" for name, value in environment(service, layout).items()],
        # Only the variables above (and the baseline the supervisor itself runs with) reach the service.
        "is_dotenv_disabled": True,
        "log_location": str(layout.log(service.name)),
        "description": service.description,
    }
    if service.depends_on:
        process["depends_on"] = {name: {"condition": _CONDITIONS[c.value]} for name, c in service.depends_on.items()}
    if service.healthcheck is not None:
        process["readiness_probe"] = _probe(service.healthcheck, settings, paths)
    if service.one_shot:
        process["availability"] = {"restart": "no"}
    else:
        process["availability"] = {"restart": "on_failure", "backoff_seconds": 2, "max_restarts": 5}
        process["shutdown"] = {"signal": 15, "timeout_seconds": 30}
    return process


def render_supervisor(stack: Stack, settings: Settings, paths: Paths, layout: Layout, project_root: Path) -> str:
    document = {
        "version": "0.5",
        "log_location": str(layout.log("process-compose")),
        "log_level": "info",
        "processes": {
            service.name: render_process(service, settings, paths, layout, project_root) for service in stack
        },
    }
    return yaml.safe_dump(document, sort_keys=False, width=200)
