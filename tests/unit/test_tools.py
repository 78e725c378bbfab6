"""One runner for every external program: a hanging or missing tool is an `error:`/`fix:`, never a traceback."""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context
from moto import mock_aws

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.owned_paths import MARKER
from temporal_dsql_deploy.runtime.components import PROCESS_COMPOSE_VERSION
from tests.conftest import PROJECT_ROOT, load_tasks

PACKAGE = PROJECT_ROOT / "src" / "temporal_dsql_deploy"


def test_only_the_runner_imports_subprocess() -> None:
    importers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        if "subprocess" in names | modules:
            importers.append(path.name)
    assert importers == ["process.py"]


class _Hang:
    """A program that starts and never answers."""

    def __init__(self, argv: list[str], **_kwargs: Any) -> None:
        self.args = argv

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        raise subprocess.TimeoutExpired(self.args, timeout or 0)

    def kill(self) -> None:
        return

    def wait(self) -> int:
        return -9


def _missing(argv: list[str], **_kwargs: Any) -> None:
    raise FileNotFoundError(2, "No such file or directory", argv[0])


@pytest.fixture
def world(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """Every tool appears installed (so each task reaches its first external program); AWS under moto."""
    nowhere = str(tmp_path / "none")
    variables = {"CACHE_DIR": str(tmp_path / "cache"), "STACK_DIR": str(tmp_path / "stack"), "PROJECT_NAME": "demo",
                 "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere}  # fmt: skip
    for name, value in variables.items():
        clean_env.setenv(name, value)
    clean_env.setattr("shutil.which", lambda name, *_a, **_k: f"/usr/bin/{name}")
    # A supervisor that is installed and a socket that exists: down/status must ask the supervisor.
    installed = tmp_path / "cache" / "components" / "process-compose" / PROCESS_COMPOSE_VERSION
    installed.mkdir(parents=True)
    (installed / "process-compose").write_bytes(b"")
    (installed / "process-compose").chmod(0o755)  # an installed supervisor is an executable file
    (installed / ".complete").write_text("ok\n", encoding="utf-8")
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / MARKER).touch()  # made by an earlier `up`
    (tmp_path / "stack" / "process-compose.sock").write_text("", encoding="utf-8")
    with mock_aws():
        yield clean_env


TASKS: list[tuple[str, dict[str, Any], Callable[[pytest.MonkeyPatch], None]]] = [
    ("build", {}, lambda _env: None),
    ("up", {}, lambda _env: None),
    ("down", {}, lambda _env: None),
    ("status", {}, lambda _env: None),
    ("restart", {}, lambda _env: None),
    ("test", {}, lambda _env: None),
    ("es.setup", {}, lambda _env: None),
    ("schema.translate", {}, lambda _env: None),
    ("schema.setup", {"version": "1.19"}, lambda env: env.setenv("TEMPORAL_SQL_PLUGIN", "dsql")),  # dsql-lint
    ("deploy", {"yes": True}, lambda _env: None),
    ("cleanup", {"destroy_infra": True, "yes": True}, lambda _env: None),
]


@pytest.mark.parametrize("failure", [_Hang, _missing], ids=["hanging", "missing"])
@pytest.mark.parametrize(("name", "arguments", "prepare"), TASKS, ids=[t[0] for t in TASKS])
def test_task_with_a_hanging_or_missing_tool(
    world: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failure: Callable[..., object], name: str,
    arguments: dict[str, Any], prepare: Callable[[pytest.MonkeyPatch], None],
) -> None:  # fmt: skip
    prepare(world)
    world.setattr("subprocess.Popen", failure)
    if name == "deploy":  # terraform is the tool under test here; the AWS prerequisites are met under moto
        world.setattr("temporal_dsql_deploy.cloud.aws.credential_problem", lambda *_a: None)
    task = load_tasks()[name]
    with pytest.raises(cli.TaskFailed):
        task(Context(), **arguments)
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert any(line.startswith("error:") for line in lines), stderr
    assert any(line.startswith("fix:") for line in lines), stderr
    expected = "gave no answer within" if failure is _Hang else "is not installed"
    assert expected in stderr
