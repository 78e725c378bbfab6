"""Render the service model to a process-compose configuration for hosts without Docker."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.model import GrpcProbe, HealthCheck, HttpProbe, PostgresProbe, Runtime, Service, Stack
from temporal_dsql_deploy.runtime.tracking import STACK_VARIABLE
from temporal_dsql_deploy.runtime.units import unit_of
from temporal_dsql_deploy.runtime.units.base import LOCALHOST, Host, Native
from temporal_dsql_deploy.service_account import SERVICE_HOME, as_service_user, drops_privileges
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, render_environment
from temporal_dsql_deploy.settings.layout import Layout

_CONDITIONS = {
    "service_started": "process_started",
    "service_healthy": "process_healthy",
    "service_completed_successfully": "process_completed_successfully",
}


def environment(service: Service, launch: Native, layout: Layout) -> dict[str, str]:
    """The service's variables as rendered: hosts are loopback, secrets `${NAME}` from the secrets file, and the
    stack's marker, by which its processes are found even without the supervisor."""
    extra: dict[str, EnvValue] = {STACK_VARIABLE: str(layout.root), **launch.environment}
    rendered = render_environment(
        {**service.environment, **extra}, lambda _host: LOCALHOST, lambda secret: "${" + secret.name + "}"
    )
    return dict(sorted(rendered.items()))


# process-compose has no start-up probe: it checks after the initial delay and then once a period, so a service a
# moment too slow for the first check waited a whole period, and each service waiting on it as well. An exec check
# therefore retries within its timeout, every _RETRY_STEP_S, from the moment the service starts, and passes as soon as
# the service answers; a healthy service passes on the first try, at the same cost as before.
_RETRY_STEP_S = 0.2


def _retrying(argv: list[str], check: HealthCheck) -> str:
    """`argv` again until it passes or a second before the check's timeout (bash's SECONDS), so the check ends by
    itself, never killed by the supervisor."""
    budget_s = max(1, check.timeout_s - 1)
    return (
        f"end=$((SECONDS + {budget_s})); until {shlex.join(argv)}; do "
        f"[ $SECONDS -ge $end ] && exit 1; sleep {_RETRY_STEP_S}; done"
    )


def _probe(check: HealthCheck, settings: Settings, paths: Paths) -> dict[str, Any]:
    probe = check.probe
    initial_delay_s = 0
    if isinstance(probe, HttpProbe):
        path, _, query = probe.path.partition("?")
        target: dict[str, Any] = {"http_get": {"host": LOCALHOST, "port": probe.port, "path": path, "scheme": "http"}}
        if not query:
            initial_delay_s = 1  # checked by the supervisor itself, once a period: the first check a second in
        else:  # process-compose's http_get takes no query string: the check in Python, retried in the one
            url = f"http://{LOCALHOST}:{probe.port}{probe.path}"  # interpreter within its timeout
            budget_s = max(1, check.timeout_s - 1)
            fetch = (f"import http.client, time, urllib.request\nend = time.monotonic() + {budget_s}\n"
                     f"while True:\n    try:\n        urllib.request.urlopen({url!r}, timeout={budget_s})\n"
                     f"        break\n    except (OSError, http.client.HTTPException):\n"
                     f"        if time.monotonic() > end:\n            raise\n"
                     f"        time.sleep({_RETRY_STEP_S})")  # fmt: skip
            target = {"exec": {"command": shlex.join([sys.executable, "-c", fetch])}}
    elif isinstance(probe, GrpcProbe):
        # One connect attempt a try (its default blocks a whole second on a port nothing listens on yet).
        argv = [str(paths.grpc_health_probe), f"-addr={LOCALHOST}:{probe.port}", "-connect-timeout=300ms"]
        if probe.service:
            argv.append(f"-service={probe.service}")
        target = {"exec": {"command": _retrying(argv, check)}}
    elif isinstance(probe, PostgresProbe):
        # As the stack's own user against the always-present `postgres` database: the server logs nothing for
        # a client that leaves at the password prompt, so a healthy database keeps a quiet log.
        argv = [str(paths.postgres_bin / "pg_isready"), "-h", LOCALHOST, "-p", str(probe.port), "-q",
                "-U", settings.temporal_sql_user, "-d", "postgres"]  # fmt: skip
        target = {"exec": {"command": _retrying(argv, check)}}
    return {
        **target,
        "initial_delay_seconds": initial_delay_s,
        "period_seconds": check.interval_s,
        "timeout_seconds": check.timeout_s,
        "success_threshold": 1,
        "failure_threshold": check.retries,
    }


# Each line reaches the file as it is written (`invoke logs` shows what just happened), and a restart appends to
# the file instead of starting it afresh (the supervisor's plain file writer truncates); rotated at 50 MB, 2 kept.
LOG_CONFIGURATION = {"flush_each_line": True, "rotation": {"max_size_mb": 50, "max_backups": 2}}


def render_process(
    service: Service, settings: Settings, paths: Paths, layout: Layout, project_root: Path
) -> dict[str, Any]:
    unit = unit_of(service)
    launch = unit.native(service, Host(settings, paths, layout))
    variables = environment(service, launch, layout)
    argv = launch.argv
    # Started by root, a long-running service drops to its account, with a HOME of its own (libpq, for one, looks
    # there for certificates); the one-shot jobs are this package's own commands, run as `invoke` is.
    if drops_privileges() and not service.one_shot:
        argv = argv if launch.switches_user else as_service_user(argv)
        variables["HOME"] = SERVICE_HOME
    process: dict[str, Any] = {
        "command": shlex.join(argv),
        "working_dir": str(project_root),
        "environment": [f"{name}={value}" for name, value in variables.items()],
        # Only the variables above (and the baseline the supervisor itself runs with) reach the service.
        "is_dotenv_disabled": True,
        "log_location": str(layout.log(service.name)),
        "log_configuration": LOG_CONFIGURATION,
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
        process["shutdown"] = {"signal": int(unit.stop_signal), "timeout_seconds": 30}
    return process


def render_supervisor(stack: Stack, settings: Settings, paths: Paths, layout: Layout, project_root: Path) -> str:
    stack = stack.in_runtime(Runtime.LOCAL)
    document = {
        "version": "0.5",
        "log_location": str(layout.log("process-compose")),
        "log_level": "info",
        "processes": {
            service.name: render_process(service, settings, paths, layout, project_root) for service in stack
        },
    }
    return yaml.safe_dump(document, sort_keys=False, width=200)
