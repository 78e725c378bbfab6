"""`--runtime docker` against stand-ins: a `docker` client whose `info` answers as told, a compose client installed
in a scratch CACHE_DIR, and `dockerd`, `apt-get` and `mmdebstrap` that only record a call (there must be none).

Everything runs in a scratch project with its own STACK_DIR and CACHE_DIR and DOCKER_ENGINE=user, so no test can
reach a real engine, a real compose client, apt-get, or a dockerd the project started for someone else."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_dsql_deploy.database.local_postgres import with_local_secrets
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime import docker_engine, docker_runtime
from temporal_dsql_deploy.runtime.control_keys import ensure_control_keys
from temporal_dsql_deploy.runtime.docker_engine import COMPOSE_VERSION
from temporal_dsql_deploy.runtime.installer import Installer, component_dir
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import compose_secrets, write_compose
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings, host_architecture
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]

FAKE_DOCKER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"program": "docker", "argv": sys.argv[1:]}}) + "\\n")
if sys.argv[1:2] == ["info"]:
    sys.exit(0 if os.environ.get("FAKE_DOCKER_ENGINE") == "1" else 1)
sys.exit(3)  # nothing else is expected of the client
"""
FAKE_COMPOSE = """#!{python}
import json, os, sys
args = sys.argv[1:]
secrets = os.environ.get("SECRETS_DIR")
listing = sorted(os.listdir(secrets)) if secrets and os.path.isdir(secrets) else None
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    call = {{"program": "compose", "argv": args, "SECRETS_DIR": secrets, "secret_files": listing}}
    log.write(json.dumps(call) + "\\n")
if "ps" in args:
    print(os.environ.get("FAKE_COMPOSE_PS", ""))
"""
RECORDER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"program": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}}) + "\\n")
sys.exit(1)
"""
# Known values for every secret the settings can hold.
SECRETS = {
    "TEMPORAL_SQL_PASSWORD": "sql-Pa55-3c1d",
    "DSQL_LOCAL_BACKEND_PASSWORD": "backend-Pa55-77ab",
    "GRAFANA_ADMIN_PASSWORD": "grafana-Pa55-09ef",
}


@dataclass
class StandIns:
    bin: Path
    log: Path

    def calls(self, program: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]
        return [call for call in calls if program is None or call["program"] == program]

    def compose(self) -> list[list[str]]:
        """The compose calls' arguments after `-f FILE`."""
        return [call["argv"][2:] for call in self.calls("compose")]


def _script(path: Path, text: str) -> None:
    path.write_text(text.format(python=sys.executable), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def stand_ins(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    root = tmp_path_factory.mktemp("stand-ins")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "docker", FAKE_DOCKER)
    for name in ("dockerd", "apt-get", "mmdebstrap"):
        _script(bin_dir / name, RECORDER)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(root / "calls.jsonl"))
    monkeypatch.delenv("FAKE_DOCKER_ENGINE", raising=False)
    monkeypatch.delenv("FAKE_COMPOSE_PS", raising=False)
    return StandIns(bin_dir, root / "calls.jsonl")


@pytest.fixture
def settings(make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory, stand_ins: StandIns) -> Settings:
    """This project's settings (root: tmp_path) with a scratch CACHE_DIR, on this machine's architecture, using only
    an engine that answers; the compose client in that CACHE_DIR is the stand-in."""
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")), DOCKER_ENGINE="user",
                             DOCKER_ARCH=host_architecture(), **SECRETS)  # fmt: skip
    target = component_dir(settings, "docker-compose", COMPOSE_VERSION)
    Installer(lambda _message: None).once(target, "the compose stand-in",
                                          lambda staging: _script(staging / "docker-compose", FAKE_COMPOSE),
                                          ("docker-compose",))  # fmt: skip
    assert docker_engine.installed_compose(settings) == target / "docker-compose"
    return settings


def _nothing_was_installed_or_started(stand_ins: StandIns) -> None:
    assert [call["program"] for call in stand_ins.calls() if call["program"] in {"dockerd", "apt-get",
                                                                                   "mmdebstrap"}] == []  # fmt: skip


# --- the engine ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("client", [True, False], ids=["engine-does-not-answer", "no-docker-client"])
def test_user_engine_that_does_not_answer_is_an_error_naming_docker_engine(
    settings: Settings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch, client: bool
) -> None:
    if not client:
        (stand_ins.bin / "docker").unlink()
        python_only = stand_ins.bin.parent / "python-only"
        python_only.mkdir()
        monkeypatch.setenv("PATH", f"{stand_ins.bin}:{python_only}")
    with pytest.raises(DeployError) as refused:
        docker_engine.ensure_engine(settings, lambda _message: None)
    assert "none answers" in refused.value.problem
    assert "DOCKER_ENGINE" in str(refused.value)
    assert [call["argv"] for call in stand_ins.calls("docker")] == ([["info"]] if client else [])
    _nothing_was_installed_or_started(stand_ins)


@pytest.mark.parametrize("mode", ["user", "auto"])
def test_an_engine_that_answers_is_used_as_it_is(make_settings: MakeSettings, stand_ins: StandIns,
                                                 monkeypatch: pytest.MonkeyPatch, mode: str) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    docker_engine.ensure_engine(make_settings(DOCKER_ENGINE=mode), lambda _message: None)
    assert [call["argv"] for call in stand_ins.calls()] == [["info"]]


def test_the_engine_setting_takes_only_its_two_values(make_settings: MakeSettings) -> None:
    assert make_settings().docker_engine == "auto"
    with pytest.raises(DeployError, match="DOCKER_ENGINE"):
        make_settings(DOCKER_ENGINE="podman")


def test_up_through_invoke_names_docker_engine_and_runs_nothing(project: Path, stand_ins: StandIns) -> None:
    """The task as a user runs it, in a project of its own (its own CACHE_DIR: run_task)."""
    result = run_task(project, "up", "--runtime", "docker", DOCKER_ENGINE="user", PATH=os.environ["PATH"],
                      FAKE_LOG=str(stand_ins.log))  # fmt: skip
    assert_clear_error(result, "DOCKER_ENGINE", "none answers")
    assert [call["argv"] for call in stand_ins.calls()] == [["info"]]
    assert not (project / "compose" / "docker-compose.yml").exists()


def test_unknown_runtime_is_refused(project: Path, stand_ins: StandIns) -> None:
    result = run_task(project, "up", "--runtime", "podman", PATH=os.environ["PATH"], FAKE_LOG=str(stand_ins.log))
    assert_clear_error(result, "--runtime 'podman'")
    assert stand_ins.calls() == []


@pytest.fixture
def start_named(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts a process of this test's (a copy of `sleep`) under the given program name; ended after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        program = tmp_path / "programs" / name
        program.parent.mkdir(exist_ok=True)
        shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
        processes.append(subprocess.Popen([str(program), "300"]))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_only_a_dockerd_the_project_started_is_stopped(
    settings: Settings, start_named: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    files = docker_engine.engine_files(settings)
    files.root.mkdir(parents=True)
    assert docker_engine.stop_engine_started_here(settings) is False  # no pidfile
    other = start_named("sleep")
    files.pidfile.write_text(f"{other.pid}\n", encoding="utf-8")
    assert docker_engine.stop_engine_started_here(settings) is False  # not a dockerd: never signalled
    assert other.poll() is None
    ours = start_named("dockerd")
    files.pidfile.write_text(f"{ours.pid}\n", encoding="utf-8")
    assert docker_engine.stop_engine_started_here(settings) is True
    ours.wait(timeout=30)  # it was stopped (the wait above may have reaped it already)
    assert ours.poll() is not None
    assert not files.pidfile.exists()


# --- secrets as files -------------------------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_secret_files_are_owner_only_and_hold_each_value(settings: Settings) -> None:
    settings = with_local_secrets(settings, create=True)
    directory = docker_runtime.write_secret_files(settings)
    assert directory == docker_runtime.secrets_dir(settings)
    assert directory.is_relative_to(settings.stack_dir)
    assert _mode(directory) == 0o700
    assert _mode(directory.parent) == 0o700
    expected = compose_secrets(build_stack(settings), settings, ensure_control_keys(settings.stack_dir))
    assert {value for name, value in expected.items() if name in SECRETS} == set(SECRETS.values())
    files = {path.name: path for path in directory.iterdir()}
    assert sorted(files) == sorted(name.lower() for name in expected)
    for name, value in expected.items():
        path = files[name.lower()]
        assert path.read_text(encoding="utf-8") == value
        assert _mode(path) == 0o444  # the containers' user reads the one mounted; the directory keeps others out


def test_secret_files_are_replaced_with_new_values(settings: Settings, make_settings: MakeSettings) -> None:
    docker_runtime.write_secret_files(with_local_secrets(settings, create=True))
    changed = settings.model_copy(update={"temporal_sql_password": make_settings(TEMPORAL_SQL_PASSWORD="new-Pa55")
                                          .temporal_sql_password})  # fmt: skip
    directory = docker_runtime.write_secret_files(with_local_secrets(changed, create=True))
    assert (directory / "temporal_sql_password").read_text(encoding="utf-8") == "new-Pa55"
    assert _mode(directory / "temporal_sql_password") == 0o444


@pytest.mark.parametrize("plugin", ["dsql", "postgres12_pgx"])
@pytest.mark.parametrize("grafana_password", [True, False], ids=["grafana-password", "no-grafana-password"])
def test_every_secret_the_compose_file_defines_has_its_file(make_settings: MakeSettings, tmp_path: Path,
                                                            plugin: str, grafana_password: bool) -> None:  # fmt: skip
    """What `up` writes is what the rendered file mounts, whichever settings are unset (GRAFANA_ADMIN_PASSWORD is
    optional: "dashboards are readable without it")."""
    given = {name: value for name, value in SECRETS.items() if grafana_password or "GRAFANA" not in name}
    settings = with_local_secrets(make_settings(TEMPORAL_SQL_PLUGIN=plugin, **given), create=True)
    directory = docker_runtime.write_secret_files(settings)
    path = write_compose(settings, host_architecture(), tmp_path / "docker-compose.yml")
    defined = yaml.safe_load(path.read_text(encoding="utf-8"))["secrets"]
    assert defined
    assert sorted(name for name in defined if not (directory / name).is_file()) == []


# --- up, status, down -------------------------------------------------------------------------------------------------
def _rows(*rows: dict[str, Any]) -> str:
    return "\n".join(json.dumps(row) for row in rows)


@pytest.fixture
def up_ready(settings: Settings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """An engine that answers, images that are current (the build recorded), containers all healthy."""
    built: list[tuple[Any, ...]] = []

    def build_stack_images(*args: Any) -> list[str]:
        built.append(args)
        return []

    monkeypatch.setattr(docker_runtime, "build_stack_images", build_stack_images)
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    one_shots = [s.name for s in build_stack(settings).in_runtime(Runtime.DOCKER) if s.one_shot]
    monkeypatch.setenv("FAKE_COMPOSE_PS", _rows(
        {"Service": "temporal-frontend", "State": "running", "Health": "healthy"},
        *({"Service": name, "State": "exited", "ExitCode": 0} for name in one_shots),
    ))  # fmt: skip
    return built


def test_up_builds_writes_the_secrets_then_starts_the_stack_and_waits(
    settings: Settings, stand_ins: StandIns, up_ready: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    path = docker_runtime.up(settings, tmp_path, lambda _message: None)
    assert path == docker_runtime.compose_file(tmp_path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {service["platform"] for service in document["services"].values()} == {f"linux/{host_architecture()}"}
    assert sorted((path.parent / "config").iterdir())  # the files it mounts, beside it
    assert [(args[1], args[2]) for args in up_ready] == [(tmp_path, host_architecture())]
    compose_calls = stand_ins.calls("compose")
    assert all(call["argv"][:2] == ["-f", str(path)] for call in compose_calls)
    up_call, wait_call, ps_call = stand_ins.compose()
    assert up_call == ["up", "--detach", "--wait", "--wait-timeout", str(docker_runtime.UP_TIMEOUT_S)]
    one_shots = [s.name for s in build_stack(settings).in_runtime(Runtime.DOCKER) if s.one_shot]
    assert "namespace-setup" in one_shots
    assert wait_call == ["wait", *one_shots]
    assert ps_call == ["ps", "--all", "--format", "json"]
    # Compose is given the secrets' directory, and every secret the file defines is there when it starts.
    first = compose_calls[0]
    assert first["SECRETS_DIR"] == str(docker_runtime.secrets_dir(settings))
    assert set(document["secrets"]) <= set(first["secret_files"])
    # Nothing was installed or started; the client was asked only whether the engine answers.
    assert {tuple(call["argv"]) for call in stand_ins.calls("docker")} == {("info",)}
    _nothing_was_installed_or_started(stand_ins)


def test_up_names_the_one_shots_that_failed(settings: Settings, stand_ins: StandIns, up_ready: list[tuple[Any, ...]],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_COMPOSE_PS", _rows(
        {"Service": "schema-setup", "State": "exited", "ExitCode": 2},
        {"Service": "namespace-setup", "State": "exited", "ExitCode": 0},
        {"Service": "temporal-history", "State": "running", "Health": "unhealthy"},  # not a one-shot: `up --wait`'s
    ))  # fmt: skip
    with pytest.raises(DeployError) as failed:
        docker_runtime.up(settings, tmp_path, lambda _message: None)
    assert failed.value.problem == "one-shot services failed: schema-setup (exit 2)"


def test_up_refuses_another_architecture_before_anything(make_settings: MakeSettings, stand_ins: StandIns,
                                                        tmp_path: Path) -> None:  # fmt: skip
    other = "arm64" if host_architecture() == "amd64" else "amd64"
    with pytest.raises(DeployError, match=f"DOCKER_ARCH={other}"):
        docker_runtime.up(make_settings(DOCKER_ARCH=other, DOCKER_ENGINE="user"), tmp_path, lambda _message: None)
    assert stand_ins.calls() == []


def test_status_reads_each_container_and_flags_the_unhealthy(settings: Settings, stand_ins: StandIns,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    rows: list[dict[str, Any]] = [
        {"Service": "elasticsearch", "State": "running", "Health": "healthy", "Publishers": [{"PublishedPort": 9200}]},
        {"Service": "es-setup", "State": "exited", "Health": "", "ExitCode": 0},
        {"Service": "schema-setup", "State": "exited", "Health": "", "ExitCode": 1},
        {"Service": "temporal-history", "State": "running", "Health": "unhealthy"},
        {"Service": "temporal-ui", "State": "running", "Health": ""},
    ]
    monkeypatch.setenv("FAKE_COMPOSE_PS", _rows(*rows[:2]) + "\n" + json.dumps(rows[2:]))  # both output shapes
    status = docker_runtime.DockerRuntime(settings, tmp_path).status()
    assert [(row.name, row.ok) for row in status] == [("elasticsearch", True), ("es-setup", True),
                                                      ("schema-setup", False), ("temporal-history", False),
                                                      ("temporal-ui", True)]  # fmt: skip
    assert status[0].ports == "9200"
    assert stand_ins.compose() == [["ps", "--all", "--format", "json"]]


def test_status_without_an_engine_says_so(settings: Settings, stand_ins: StandIns, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no Docker engine answers"):
        docker_runtime.states(settings, tmp_path)
    assert stand_ins.compose() == []


@pytest.mark.parametrize("volumes", [True, False])
def test_down_stops_the_stack_and_removes_the_secrets(settings: Settings, stand_ins: StandIns,
                                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      volumes: bool) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    write_compose(settings, host_architecture(), docker_runtime.compose_file(tmp_path))
    directory = docker_runtime.write_secret_files(with_local_secrets(settings, create=True))
    done = docker_runtime.down(settings, tmp_path, volumes=volumes)
    assert stand_ins.compose() == [["down", "--volumes"] if volumes else ["down"]]
    assert done == ["stopped the Docker stack" + (" and deleted its volumes" if volumes else "")]
    assert not directory.exists()
    _nothing_was_installed_or_started(stand_ins)


def test_down_with_nothing_running_says_so(settings: Settings, stand_ins: StandIns, tmp_path: Path) -> None:
    assert docker_runtime.down(settings, tmp_path, volumes=True) == [docker_runtime.NOTHING_RUNNING]
    assert stand_ins.compose() == []
