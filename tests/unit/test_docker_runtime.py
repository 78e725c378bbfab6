"""`--runtime docker` against a stand-in `docker` executable (no engine runs here: render, validate, record)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT

FAKE_DOCKER = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["info"]:
    sys.exit(0 if os.environ.get("FAKE_DOCKER_ENGINE") == "1" else 1)
if args[:2] == ["image", "inspect"]:
    sys.exit(0 if os.environ.get("FAKE_DOCKER_IMAGE") == "1" else 1)
if "ps" in args:
    print(os.environ.get("FAKE_DOCKER_PS", ""))
sys.exit(0)
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER, encoding="utf-8")
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return {**clean, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(tmp_path / "calls.jsonl")}


def _invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=120)  # fmt: skip


def _calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_DOCKER_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_no_engine_is_a_clear_error_and_nothing_runs(fake_docker: dict[str, str]) -> None:
    result = _invoke(fake_docker, "up", "--runtime", "docker")
    assert result.returncode != 0
    assert "none answers" in result.stderr
    assert _calls(fake_docker) == [["info"]]


def test_missing_runtime_image_points_at_invoke_build(fake_docker: dict[str, str]) -> None:
    result = _invoke({**fake_docker, "FAKE_DOCKER_ENGINE": "1"}, "up", "--runtime", "docker")
    assert result.returncode != 0
    assert "temporal-dsql-runtime:" in result.stderr
    assert "invoke build" in result.stderr
    assert not any("compose" in call for call in _calls(fake_docker))


def test_up_renders_compose_and_waits_for_health(fake_docker: dict[str, str]) -> None:
    env = {**fake_docker, "FAKE_DOCKER_ENGINE": "1", "FAKE_DOCKER_IMAGE": "1", "DOCKER_ARCH": "arm64"}
    result = _invoke(env, "up", "--runtime", "docker")
    assert result.returncode == 0, result.stderr
    compose_file = str(PROJECT_ROOT / "compose" / "docker-compose.yml")
    up_call = next(call for call in _calls(env) if "up" in call)
    assert up_call[:4] == ["compose", "-f", compose_file, "up"]
    assert "--wait" in up_call
    assert "linux/arm64" in Path(compose_file).read_text(encoding="utf-8")


def test_status_fails_on_an_unhealthy_container(fake_docker: dict[str, str]) -> None:
    rows = [
        {"Service": "elasticsearch", "State": "running", "Health": "healthy", "Publishers": [{"PublishedPort": 9200}]},
        {"Service": "es-setup", "State": "exited", "Health": "", "ExitCode": 0},
        {"Service": "temporal-history", "State": "running", "Health": "unhealthy"},
    ]
    env = {**fake_docker, "FAKE_DOCKER_ENGINE": "1", "FAKE_DOCKER_PS": "\n".join(json.dumps(r) for r in rows)}
    result = _invoke(env, "status", "--runtime", "docker")
    assert result.returncode != 0
    assert "not healthy: temporal-history" in result.stderr
    assert "9200" in result.stdout


def test_down_with_volumes(fake_docker: dict[str, str]) -> None:
    env = {**fake_docker, "FAKE_DOCKER_ENGINE": "1"}
    result = _invoke(env, "down", "--runtime", "docker", "--volumes", "--yes")  # deleting data asks first
    assert result.returncode == 0, result.stderr
    down_call = next(call for call in _calls(env) if "down" in call)
    assert down_call[-2:] == ["down", "--volumes"]


def test_unknown_runtime_is_refused(fake_docker: dict[str, str]) -> None:
    result = _invoke(fake_docker, "up", "--runtime", "podman")
    assert result.returncode != 0
    assert "--runtime 'podman'" in result.stderr
