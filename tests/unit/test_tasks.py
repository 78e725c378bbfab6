"""The Invoke surface, exercised the way a user runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT, load_tasks
from tests.unit.task_runs import run_invoke

GUIDE_TASKS = [
    "build",
    "deploy",
    "schema.setup",
    "schema.update",
    "es.setup",
    "compose",
    "up",
    "down",
    "status",
    "logs",
    "test",
    "check-dsql",
    "cleanup",
]


def _invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return run_invoke(list(args), env={**clean, **env}, cwd=PROJECT_ROOT, timeout_s=120)


def test_list_shows_every_guide_task() -> None:
    result = _invoke("--list")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip() and line.startswith("  ")}
    assert set(GUIDE_TASKS) <= listed


def test_every_task_and_argument_has_help() -> None:
    collection = load_tasks()
    for name in collection.task_names:
        task = collection[name]
        assert (task.__doc__ or "").strip(), f"{name} has no help"
        missing = [arg.name for arg in task.get_arguments() if not (arg.help or "").strip()]
        assert not missing, f"{name}: arguments without help: {missing}"


@pytest.mark.parametrize("task", GUIDE_TASKS)
def test_bad_port_fails_every_task_naming_the_variable(task: str) -> None:
    result = _invoke(*{"logs": ["logs", "all"]}.get(task, [task]), TEMPORAL_SQL_PORT="abc")
    assert result.returncode != 0
    assert "TEMPORAL_SQL_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_compose_arm64_writes_a_valid_file(tmp_path: Path) -> None:
    output = tmp_path / "compose.yml"
    result = _invoke("compose", "--arch", "arm64", "--output", str(output))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert {s["platform"] for s in document["services"].values()} == {"linux/arm64"}


def test_compose_rejects_unknown_architecture(tmp_path: Path) -> None:
    result = _invoke("compose", "--arch", "s390x", "--output", str(tmp_path / "x.yml"))
    assert result.returncode != 0
    assert "--arch" in result.stderr
    assert not (tmp_path / "x.yml").exists()
