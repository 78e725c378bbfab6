"""Operator-facing actions on the local stack: what `invoke up/down/status/logs/es.setup` do and print."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from rich.table import Table

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.components import install_all, installed_paths
from temporal_dsql_deploy.config import Settings
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.stack import LocalStack, ServiceState, tail
from temporal_dsql_deploy.visibility import setup_visibility


def _report(message: str) -> None:
    cli.say(f"• {message}")


def _table(states: list[ServiceState]) -> Table:
    table = Table("service", "state", "health", "port")
    for state in states:
        health = "-" if state.healthy is None else ("healthy" if state.healthy else "unhealthy")
        if state.one_shot:
            health = "done" if state.ok else f"exit {state.exit_code}"
        table.add_row(state.name, state.status, health, ", ".join(map(str, state.ports)) or "-")
    return table


def up(settings: Settings, project_root: Path, runtime: str) -> None:
    if runtime == "docker":
        if shutil.which("docker") is None or not _docker_engine_available():
            raise DeployError(
                "--runtime docker needs a running Docker engine, and none answers on this host",
                "use the default `invoke up` (local processes), or start Docker and try again",
            )
        raise DeployError("--runtime docker needs the runtime image from `invoke build`", "see issue: build")
    if runtime != "local":
        raise DeployError(f"--runtime {runtime!r} is not known", "use --runtime local or --runtime docker")
    started = time.monotonic()
    with cli.console.status("starting the local stack"):
        states = LocalStack(settings, project_root).up(_report)
    cli.console.print(_table(states))
    cli.say(f"all {len(states)} services up in {time.monotonic() - started:.1f}s")
    cli.say(f"  Temporal frontend  {settings.frontend_address}   (namespace {settings.temporal_namespace})")
    cli.say(f"  Web UI             http://127.0.0.1:{settings.temporal_ui_port}")
    cli.say(f"  {settings.search_engine:<18} {settings.elasticsearch_url}")


def _docker_engine_available() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20).returncode == 0


def down(settings: Settings, project_root: Path, *, volumes: bool) -> None:
    stack = LocalStack(settings, project_root)
    was_running = stack.down(installed_paths(settings), volumes=volumes)
    cli.say("stopped the local stack" if was_running else "the local stack was not running")
    if volumes:
        cli.say(f"deleted its data in {stack.layout.all_data}")


def status(settings: Settings, project_root: Path) -> None:
    stack = LocalStack(settings, project_root)
    states = stack.states(installed_paths(settings))
    cli.console.print(_table(states))
    bad = [s.name for s in states if not s.ok]
    if bad:
        raise DeployError(f"not healthy: {', '.join(bad)}", "see `invoke logs SERVICE`; `invoke up` restarts them")


def logs(settings: Settings, project_root: Path, service: str, lines: int) -> None:
    stack = LocalStack(settings, project_root)
    names = [service] if service else list(stack.model.names)
    if service and service not in stack.model.names:
        raise DeployError(f"no service {service!r}", f"use one of: {', '.join(stack.model.names)}")
    for name in names:
        cli.say(f"==> {stack.layout.log(name)} <==")
        cli.say(tail(stack.layout.log(name), lines))


def es_setup(settings: Settings, *, cluster_settings: bool) -> None:
    paths = install_all(settings, _report)
    report = setup_visibility(settings, paths.temporal_es_tool, cluster_settings=cluster_settings)
    state = "created" if report.created else "already present"
    cli.say(f"index {report.index} {state}; {report.fields_verified} mapped fields match Temporal's template")
