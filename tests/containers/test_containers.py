"""The stack in containers, for real: built here, started by `invoke up --runtime docker`, driven from this host
through its published loopback ports only, with the same checks as the local stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from temporal_dsql_deploy.observability.dashboards import load_dashboards
from temporal_dsql_deploy.runtime.build import build, elf_machine
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, secrets_dir
from temporal_dsql_deploy.runtime.units.base import runtime_image
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import temporal_cli
from temporal_dsql_deploy.temporal.smoke import run_smoke
from tests.conftest import PROJECT_ROOT
from tests.integration.stack_checks import (
    every_service_is_scraped,
    search_attribute_query,
    smoke_runs_end_to_end,
    timer_signal_child,
    ui_lists_a_finished_workflow,
)
from tests.integration.test_metrics import WAIT_S, expected_series

pytestmark = pytest.mark.containers
CONTAINER_UID = "1000"


def _inspect(docker_stack: DockerRuntime) -> list[dict[str, Any]]:
    ids = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter",
                          f"label=com.docker.compose.project={docker_stack.settings.project_name}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()  # fmt: skip
    assert ids, "no container of the stack"
    found: list[dict[str, Any]] = json.loads(
        subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True, timeout=60).stdout
    )
    return found


def test_every_service_runs_healthy_in_its_container(docker_stack: DockerRuntime) -> None:
    rows = docker_stack.status()
    assert [row.name for row in rows if not row.ok] == []
    # Grafana is the one service left out of the local run (its image cannot be built here: profile `dashboards`).
    assert {row.name for row in rows} == set(docker_stack.model.names) - {"grafana"}


def test_every_container_runs_with_least_privilege(docker_stack: DockerRuntime) -> None:
    secrets = [path.read_text(encoding="utf-8") for path in secrets_dir(docker_stack.settings).iterdir()]
    assert len(secrets) >= 4, "the stack's secrets were not written as files"
    for container in _inspect(docker_stack):
        name, host = container["Name"], container["HostConfig"]
        assert container["Config"]["User"] == CONTAINER_UID, f"{name} does not run as uid {CONTAINER_UID}"
        assert host["ReadonlyRootfs"] is True, f"{name}: root filesystem writable"
        assert host["CapDrop"] == ["ALL"], f"{name}: capabilities kept"
        assert "no-new-privileges:true" in host["SecurityOpt"], f"{name}: may gain privileges"
        assert host["Memory"] > 0, f"{name}: no memory limit"
        environment = "\n".join(container["Config"]["Env"])
        assert [secret for secret in secrets if secret in environment] == [], f"{name}: a secret in its environment"
        command = " ".join([*(container["Config"]["Cmd"] or []), *container["Args"]])
        assert [secret for secret in secrets if secret in command] == [], f"{name}: a secret on its command line"
        for bindings in (host["PortBindings"] or {}).values():
            assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}, f"{name}: published beyond loopback"


def test_smoke(docker_stack: DockerRuntime, settings: Settings) -> None:
    smoke_runs_end_to_end(settings)


def test_timer_signal_and_child_workflow(docker_stack: DockerRuntime, settings: Settings) -> None:
    assert asyncio.run(timer_signal_child(settings)) == 42


def test_custom_search_attribute_query(docker_stack: DockerRuntime, settings: Settings) -> None:
    found = asyncio.run(search_attribute_query(settings, temporal_cli()))
    assert len(found) == 1
    assert found[0].startswith("tagged-")


def test_ui_shows_the_finished_workflow_in_chromium(docker_stack: DockerRuntime, settings: Settings, chromium: str,
                                                     tmp_path: Path) -> None:  # fmt: skip
    ui_lists_a_finished_workflow(settings, chromium, tmp_path)


def test_every_service_is_scraped_and_has_its_series(docker_stack: DockerRuntime, settings: Settings) -> None:
    run_smoke(settings, PROJECT_ROOT)
    every_service_is_scraped(docker_stack.metrics_store(), docker_stack.model, expected_series(settings), WAIT_S)


def test_every_dashboard_expression_runs_on_the_store(docker_stack: DockerRuntime) -> None:
    store = docker_stack.metrics_store()
    expressions = [expr for dashboard in load_dashboards() for expr in dashboard.expressions]
    assert expressions
    for expr in expressions:
        store.query(expr)  # raises, naming the expression, if the store refuses it


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, "set TEMPORAL_SERVICES"), ({"TEMPORAL_SERVICES": "history"}, "missing required environment variables:")],
)
def test_the_image_names_what_its_configuration_lacks(docker_stack: DockerRuntime, environment: dict[str, str],
                                                      expected: str) -> None:  # fmt: skip
    flags = [item for name, value in environment.items() for item in ("--env", f"{name}={value}")]
    ran = subprocess.run(["docker", "run", "--rm", "--network", "none", *flags,
                          runtime_image(docker_stack.settings)], capture_output=True, text=True, check=False,
                         timeout=120)  # fmt: skip
    assert ran.returncode == 64, ran.stderr
    assert expected in ran.stderr
    if environment:  # every variable the configuration requires is named, the shard count among them
        assert "TEMPORAL_NUM_HISTORY_SHARDS" in ran.stderr


def test_an_arm64_image_is_built_and_runs_under_emulation(docker_stack: DockerRuntime) -> None:
    """`invoke build --arch arm64` on this amd64 machine: the runtime image for arm64, run under qemu where binfmt
    can be registered (root on Debian); elsewhere its binaries' machine types are the check, and the note says so."""
    settings = docker_stack.settings
    result = build(settings, PROJECT_ROOT, "arm64", None, print)
    assert {elf_machine(binary) for binary in result.binaries} == {"arm64"}
    if os.geteuid() != 0:
        assert any("no arm64 image was built" in note for note in result.notes), result.notes
        return
    assert result.images == [f"{runtime_image(settings)}-arm64"]
    assert any(f"ran under emulation: temporal-server version {settings.temporal_version}" in note
               for note in result.notes), result.notes  # fmt: skip
    inspected = subprocess.run(["docker", "image", "inspect", "--format", "{{.Architecture}}", result.images[0]],
                               capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    assert inspected.stdout.strip() == "arm64"
