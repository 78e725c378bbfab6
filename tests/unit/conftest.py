"""Running the project's tasks as a user does: in a project directory of their own, with only its `.env`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.unit.task_runs import run_invoke


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "tasks.py", root / "tasks.py")
    return root


def run_task(
    project: Path, *args: str, env_file: str | bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    if env_file is not None:
        data = env_file.encode() if isinstance(env_file, str) else env_file
        (project / ".env").write_bytes(data)
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields and not k.startswith("AWS_")}
    variables = {**clean, "CACHE_DIR": str(project.parent / "cache"), "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_CONFIG_FILE": str(project / "no-aws-config"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(project / "no-aws-credentials"), **env}  # fmt: skip
    return run_invoke(["-r", str(project), *args], env=variables, cwd=project, timeout_s=120)


def assert_clear_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert any(line.startswith("fix:") for line in result.stderr.splitlines()), result.stderr
    for text in named:
        assert text in result.stderr, f"{text!r} not named in:\n{result.stderr}"
