from __future__ import annotations

import http.server
import os
import shlex
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.model import (
    Component,
    GrpcProbe,
    HealthCheck,
    HttpProbe,
    Port,
    Runtime,
    Service,
    Stack,
)
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.stack import check_ports_free
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.service_account import SERVICE_USER
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import Layout
from tests.conftest import fake_paths

MakeSettings = Callable[..., Settings]
CONDITIONS = {
    "service_healthy": "process_healthy",
    "service_completed_successfully": "process_completed_successfully",
    "service_started": "process_started",
}


@pytest.fixture
def rendered(make_settings: MakeSettings, tmp_path: Path) -> tuple[Stack, dict]:  # type: ignore[type-arg]
    settings = make_settings()
    stack = build_stack(settings).in_runtime(Runtime.LOCAL)  # Grafana is Compose's alone
    layout = Layout(tmp_path / ".stack", settings.search_engine)
    text = render_supervisor(stack, settings, fake_paths(tmp_path), layout, tmp_path)
    return stack, yaml.safe_load(text)


def test_same_services_and_dependencies_as_the_model(rendered: tuple[Stack, dict]) -> None:  # type: ignore[type-arg]
    stack, document = rendered
    assert list(document["processes"]) == list(stack.names)
    for service in stack:
        process = document["processes"][service.name]
        expected = {name: {"condition": CONDITIONS[c.value]} for name, c in service.depends_on.items()}
        assert process.get("depends_on", {}) == expected
        assert ("readiness_probe" in process) == (service.healthcheck is not None)
        assert process["availability"]["restart"] == ("no" if service.one_shot else "on_failure")
        assert process["log_location"].endswith(f"{service.name}.log")


def test_hosts_are_loopback_and_temporal_gets_its_dynamic_config(rendered: tuple[Stack, dict]) -> None:  # type: ignore[type-arg]
    _, document = rendered
    env = dict(item.split("=", 1) for item in document["processes"]["temporal-history"]["environment"])
    assert env["TEMPORAL_SQL_HOST"] == "127.0.0.1"
    assert env["TEMPORAL_ELASTICSEARCH_HOST"] == "127.0.0.1"
    assert env["TEMPORAL_DYNAMIC_CONFIG_FILE"].endswith("dynamicconfig.yaml")
    assert "--service history" in document["processes"]["temporal-history"]["command"]


def test_grpc_probes_ask_for_each_role(rendered: tuple[Stack, dict]) -> None:  # type: ignore[type-arg]
    _, document = rendered
    probe = document["processes"]["temporal-history"]["readiness_probe"]["exec"]["command"]
    assert "-addr=127.0.0.1:7234" in probe
    assert "HistoryService" in probe


def _probe_command(make_settings: MakeSettings, tmp_path: Path, service: str, check: HealthCheck) -> str:
    """The rendered check of `service` with `check`'s timing, as the supervisor runs it (bash -c)."""
    settings = make_settings()
    stack = build_stack(settings).in_runtime(Runtime.LOCAL)
    stack = Stack(tuple(replace(s, healthcheck=check) if s.name == service else s for s in stack))
    layout = Layout(tmp_path / ".stack", settings.search_engine)
    document = yaml.safe_load(render_supervisor(stack, settings, fake_paths(tmp_path), layout, tmp_path))
    probe = document["processes"][service]["readiness_probe"]
    assert probe["initial_delay_seconds"] == 0  # checked from the start: the check itself retries
    command: str = probe["exec"]["command"]
    return command


@pytest.mark.parametrize("late", [True, False])
def test_an_exec_check_passes_once_the_service_answers_within_its_timeout(
    make_settings: MakeSettings, tmp_path: Path, late: bool
) -> None:
    """A service that answers a moment after the first try passes that same check; one that never answers fails."""
    answered = tmp_path / "answered"
    # The role's health probe program, standing in: it answers once the service has.
    (tmp_path / "probe").write_text(f"#!/bin/sh\ntest -e {answered}\n", encoding="utf-8")
    (tmp_path / "probe").chmod(0o755)
    command = _probe_command(make_settings, tmp_path, "temporal-history", HealthCheck(GrpcProbe(7234, ""), timeout_s=3))
    answering = threading.Timer(0.5, answered.touch) if late else None
    if answering:
        answering.start()
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=10, check=False)
    assert (result.returncode == 0) is late


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path.endswith("wait_for_status=yellow") else 404)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.parametrize("late", [True, False])
def test_the_search_engine_check_retries_a_refused_connection_within_its_timeout(
    make_settings: MakeSettings, tmp_path: Path, late: bool
) -> None:
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    check = HealthCheck(HttpProbe(port, "/_cluster/health?wait_for_status=yellow"), timeout_s=3)
    command = _probe_command(make_settings, tmp_path, "elasticsearch", check)
    servers: list[http.server.HTTPServer] = []

    def serve() -> None:  # the port is bound only now: the first tries are refused
        servers.append(http.server.HTTPServer(("127.0.0.1", port), _Healthy))
        servers[0].serve_forever()

    serving = threading.Timer(0.5, serve) if late else None
    if serving:
        serving.start()
    try:
        result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=10, check=False)
    finally:
        if serving:
            serving.cancel()  # not started yet: never
        for server in servers:
            server.shutdown()
            server.server_close()
    assert (result.returncode == 0) is late, result.stderr


def test_a_taken_port_is_named_before_anything_starts() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = Stack((Service("web", Component.TEMPORAL_UI, ports=(Port("http", port),)),))
        with pytest.raises(DeployError) as caught:
            check_ports_free(stack)
    assert f"port {port} (for web)" in str(caught.value)
    assert caught.value.fix is not None


def test_free_ports_pass_after_every_port_is_checked() -> None:
    checked: list[int] = []
    stack = Stack((Service("web", Component.TEMPORAL_UI, ports=(Port("http", 1), Port("grpc", 2))),))
    check_ports_free(stack, bind=lambda port: checked.append(port) is None)
    assert checked == [1, 2]


@pytest.mark.parametrize("as_root", [True, False], ids=["root", "a-user"])
def test_started_by_root_every_service_drops_to_an_unprivileged_account(
    make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_root: bool
) -> None:
    """Root's supervisor starts each long-running service as `temporal-dsql` (PostgreSQL as `postgres`, passing
    through to its data with the services' group), never to regain privileges; the one-shot jobs (this package's
    own commands) run as `invoke` does; a user's stack runs as that user."""
    monkeypatch.setattr(os, "geteuid", lambda: 0 if as_root else 1000)
    settings = make_settings()
    stack = build_stack(settings).in_runtime(Runtime.LOCAL)
    layout = Layout(tmp_path / ".stack", settings.search_engine)
    document = yaml.safe_load(render_supervisor(stack, settings, fake_paths(tmp_path), layout, tmp_path))
    assert any(service.one_shot for service in stack)
    for service in stack:
        argv = shlex.split(document["processes"][service.name]["command"])
        account = "postgres" if service.component is Component.POSTGRESQL else SERVICE_USER
        drop = ["setpriv", f"--reuid={account}", f"--regid={account}"]
        drops = as_root and not service.one_shot
        assert (argv[:3] == drop) is drops, (service.name, argv)
        variables = dict(item.split("=", 1) for item in document["processes"][service.name]["environment"])
        assert (variables.get("HOME") == "/nonexistent") is drops, service.name
        if drops:
            assert "--no-new-privs" in argv[: argv.index("--")], service.name
            groups = [arg for arg in argv[: argv.index("--")] if "groups" in arg]
            assert groups == (["--groups=temporal-dsql"] if account == "postgres" else ["--init-groups"])
        else:
            assert "setpriv" not in argv


def test_postgresql_is_stopped_with_its_fast_shutdown(rendered: tuple[Stack, dict]) -> None:  # type: ignore[type-arg]
    """SIGINT, not SIGTERM: a smart shutdown waits for Temporal's pooled connections, which never leave."""
    _, document = rendered
    signals = {name: process["shutdown"]["signal"] for name, process in document["processes"].items()
               if "shutdown" in process}  # fmt: skip
    assert signals.pop("postgresql") == signal.SIGINT
    assert set(signals.values()) == {signal.SIGTERM}, signals
