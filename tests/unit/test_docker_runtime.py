"""`--runtime docker` against stand-ins: a `docker` client whose `info` answers as told, a compose client installed
in a scratch CACHE_DIR, and `dockerd`, `apt-get` and `mmdebstrap` that only record a call (there must be none).

Everything runs in a scratch project with its own STACK_DIR and CACHE_DIR and DOCKER_ENGINE=user, so no test can
reach a real engine, a real compose client, apt-get, or a dockerd the project started for someone else."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from pydantic import SecretStr

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
from temporal_dsql_deploy.settings.layout import Layout
from tests.integration.conftest import require
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]

FAKE_DOCKER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"program": "docker", "argv": sys.argv[1:]}}) + "\\n")
if sys.argv[1:2] == ["info"]:
    if os.environ.get("FAKE_DOCKER_ENGINE") == "1":
        sys.exit(0)
    sys.exit("Cannot connect to the Docker daemon at unix:///fake/docker.sock. Is the docker daemon running?")
if sys.argv[1:] == ["-H", "unix://" + os.environ["FAKE_SOCKET"], "ps", "--all", "--quiet"]:  # its own engine
    print(os.environ.get("FAKE_DOCKER_PS", ""))
    sys.exit(0)
if sys.argv[1:4] == ["inspect", "--format", "{{{{.State.Pid}}}}"]:
    print(os.environ["FAKE_DOCKER_PID"])
    sys.exit(0)
if sys.argv[1:3] == ["volume", "inspect"]:  # FAKE_VOLUME_CREATED: when the volume was made, else there is none
    if "FAKE_VOLUME_CREATED" not in os.environ:
        sys.exit("Error: No such volume: " + sys.argv[-1])
    print(os.environ["FAKE_VOLUME_CREATED"])
    sys.exit(0)
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
    for name in (
        "FAKE_DOCKER_ENGINE",
        "FAKE_COMPOSE_PS",
        "FAKE_DOCKER_PS",
        "FAKE_DOCKER_PID",
        "FAKE_VOLUME_CREATED",
        "DOCKER_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    return StandIns(bin_dir, root / "calls.jsonl")


@pytest.fixture(autouse=True)
def standard_socket(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The engine's standard socket, as the engine code sees it: a scratch path (the real one is never touched)."""
    socket = tmp_path_factory.mktemp("run") / "docker.sock"
    monkeypatch.setattr(docker_engine, "STANDARD_SOCKET", socket)
    monkeypatch.setenv("FAKE_SOCKET", str(socket))  # the stand-in docker answers `ps` on this engine only
    return socket


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
    why = "Cannot connect to the Docker daemon" if client else "no `docker` command is installed"
    assert why in refused.value.problem  # the client's own words
    assert "DOCKER_ENGINE" in str(refused.value)
    assert [call["argv"] for call in stand_ins.calls("docker")] == ([["info"]] if client else [])
    _nothing_was_installed_or_started(stand_ins)


def test_an_engine_named_by_docker_host_that_does_not_answer_is_not_replaced(
    make_settings: MakeSettings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch, standard_socket: Path
) -> None:
    """DOCKER_ENGINE=auto, but the operator named an engine: the project starts none of its own in its place."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://engine.example:2376")
    settings = make_settings(DOCKER_ENGINE="auto", CACHE_DIR=str(stand_ins.bin.parent / "cache"))
    with pytest.raises(DeployError) as refused:
        docker_engine.ensure_engine(settings, lambda _message: None)
    assert "DOCKER_HOST=tcp://engine.example:2376 names the engine to use" in refused.value.problem
    assert "Cannot connect to the Docker daemon" in refused.value.problem
    assert refused.value.fix is not None
    assert "unset DOCKER_HOST" in refused.value.fix
    assert [call["argv"] for call in stand_ins.calls("docker")] == [["info"]]
    _nothing_was_installed_or_started(stand_ins)
    assert not docker_engine.engine_files(settings).root.exists()
    assert not standard_socket.exists()


@pytest.mark.parametrize("mode", ["user", "auto"])
def test_an_engine_that_answers_is_used_as_it_is(make_settings: MakeSettings, stand_ins: StandIns,
                                                 monkeypatch: pytest.MonkeyPatch, mode: str) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    docker_engine.ensure_engine(make_settings(DOCKER_ENGINE=mode), lambda _message: None)
    assert [call["argv"] for call in stand_ins.calls()] == [["info"]]


def _unix_socket(path: Path, *, listening: bool) -> socket.socket:
    """A Unix socket at `path`; bound only (what a killed engine leaves: nobody listens), or listening."""
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))
    if listening:
        bound.listen()
    return bound


@pytest.mark.parametrize("left", ["killed-engine", "listening", "not-a-socket"])
def test_a_socket_nobody_listens_on_is_removed_and_any_other_is_refused(
    make_settings: MakeSettings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch, standard_socket: Path,
    left: str,
) -> None:  # fmt: skip
    """DOCKER_ENGINE=auto, no engine answers, something at the standard socket that is not the project's engine: a
    socket no process listens on is removed and the engine started (the stand-in dockerd exits, so the start's own
    error follows); a socket something listens on, or a file that is no socket, is left to its owner."""
    monkeypatch.setattr(docker_engine, "can_install_packages", lambda: True)
    settings = make_settings(DOCKER_ENGINE="auto", CACHE_DIR=str(stand_ins.bin.parent / "cache"))
    held = None
    if left == "not-a-socket":
        standard_socket.write_text("", encoding="utf-8")
    else:
        held = _unix_socket(standard_socket, listening=left == "listening")
    said: list[str] = []
    with pytest.raises(DeployError) as refused:
        docker_engine.ensure_engine(settings, said.append)
    if held is not None:
        held.close()
    if left == "killed-engine":
        assert "dockerd exited" in refused.value.problem
        assert not standard_socket.exists()
        assert any("no process listens on it" in line for line in said)
        assert stand_ins.calls("dockerd") != []
    else:
        assert f"{standard_socket} exists but no engine answers on it" in refused.value.problem
        assert standard_socket.exists()
        _nothing_was_installed_or_started(stand_ins)


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


# A stand-in dockerd: a Python of this test's under the program name given (the kernel names a process after the
# file it runs), sleeping; optionally deaf to SIGTERM, optionally with a child of its own (as dockerd has containerd).
# It writes its child's pid (or nothing) to FAKE_READY once it is set up.
FAKE_ENGINE = """
import os, signal, subprocess, sys, time
if os.environ.get("FAKE_IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"]).pid if os.environ.get("FAKE_WITH_CHILD") else ""
with open(os.environ["FAKE_READY"] + ".partial", "w", encoding="utf-8") as handle:
    handle.write(str(child))
os.rename(os.environ["FAKE_READY"] + ".partial", os.environ["FAKE_READY"])
time.sleep(300)
"""


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    child: psutil.Process | None  # the child it started, if asked to


StartNamed = Callable[..., Started]


@pytest.fixture
def start_named(tmp_path: Path) -> Iterator[StartNamed]:
    """Starts a throwaway process of this test's under the given program name with the given arguments; it and
    its child are ended after the test, if still running."""
    started: list[psutil.Process] = []
    popens: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, ignore_sigterm: bool = False, with_child: bool = False) -> Started:
        program = tmp_path / "programs" / f"{len(popens)}" / name
        program.parent.mkdir(parents=True)
        program.symlink_to(Path(sys.executable).resolve())
        ready = program.parent / "ready"
        env = {**os.environ, "FAKE_READY": str(ready), **({"FAKE_IGNORE_SIGTERM": "1"} if ignore_sigterm else {}),
               **({"FAKE_WITH_CHILD": "1"} if with_child else {})}  # fmt: skip
        process = subprocess.Popen([str(program), "-c", FAKE_ENGINE, *args], env=env)
        popens.append(process)
        started.append(psutil.Process(process.pid))
        deadline = time.monotonic() + 30  # set up (and its command line complete) before anything looks at it
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), f"the stand-in {name} did not start"
        assert started[-1].name() == name
        child = None
        if with_child:
            child = psutil.Process(int(ready.read_text(encoding="utf-8")))
            started.append(child)
        return Started(process, child)

    yield start
    for process in started:
        if process.is_running():  # the very process started here (psutil checks its start time)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    for popen in popens:
        popen.wait(timeout=30)


def _ended(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _ours(settings: Settings, start_named: StartNamed, **options: bool) -> Started:
    """A stand-in for the dockerd `ensure_engine` starts: named dockerd, its data root the project's, its pidfile."""
    files = docker_engine.engine_files(settings)
    files.root.mkdir(parents=True, exist_ok=True)
    started = start_named("dockerd", "--data-root", str(files.data), "--exec-root", str(files.exec_root), **options)
    files.pidfile.write_text(f"{started.process.pid}\n", encoding="utf-8")
    return started


def test_only_a_dockerd_the_project_started_is_stopped(settings: Settings, stand_ins: StandIns,
                                                        start_named: StartNamed) -> None:  # fmt: skip
    files = docker_engine.engine_files(settings)
    files.root.mkdir(parents=True)
    assert docker_engine.stop_engine_started_here(settings) is None  # no pidfile
    others = [
        start_named("sleep", "--data-root", str(files.data)),  # not a dockerd (a reused pid)
        start_named("dockerd", "--data-root", "/var/lib/docker"),  # the user's own dockerd under a reused pid
        start_named("dockerd"),
    ]
    for other in others:
        files.pidfile.write_text(f"{other.process.pid}\n", encoding="utf-8")
        assert docker_engine.stop_engine_started_here(settings) is None
        assert other.process.poll() is None  # never signalled
    assert stand_ins.calls("docker") == []  # not even asked what runs on it
    ours = _ours(settings, start_named)
    assert docker_engine.stop_engine_started_here(settings) == "stopped the Docker engine this project started"
    ours.process.wait(timeout=30)  # it was stopped (the wait above may have reaped it already)
    assert ours.process.poll() is not None
    assert not files.pidfile.exists()
    assert [call["argv"][2:] for call in stand_ins.calls("docker")] == [["ps", "--all", "--quiet"]]
    assert docker_engine.stop_engine_started_here(settings) is None  # and it is gone


def test_an_engine_with_other_containers_on_it_is_left_running(settings: Settings, stand_ins: StandIns,
                                                                start_named: StartNamed,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ours = _ours(settings, start_named)
    monkeypatch.setenv("FAKE_DOCKER_PS", "3f2a9c1d0b7e\n8e1b2c3d4f5a")
    message = docker_engine.stop_engine_started_here(settings)
    assert message is not None
    assert message.startswith("left the Docker engine this project started running")
    assert "other containers are on it (2)" in message
    time.sleep(0.2)
    assert ours.process.poll() is None  # not signalled
    assert docker_engine.engine_files(settings).pidfile.exists()  # still known as ours, for a later `down`
    monkeypatch.setenv("FAKE_DOCKER_PS", "")  # those containers gone: the next `down` stops it
    assert docker_engine.stop_engine_started_here(settings) == "stopped the Docker engine this project started"
    ours.process.wait(timeout=30)


def test_an_engine_that_does_not_stop_is_killed_with_what_it_started(
    settings: Settings, stand_ins: StandIns, start_named: StartNamed, monkeypatch: pytest.MonkeyPatch,
    standard_socket: Path,
) -> None:  # fmt: skip
    """SIGTERM unanswered within ENGINE_STOP_TIMEOUT_S: SIGKILL to it and its children (containerd, shims), and
    the socket it leaves is removed, so that the next `up` does not take it for someone else's engine."""
    monkeypatch.setattr(docker_engine, "ENGINE_STOP_TIMEOUT_S", 0.5)
    ours = _ours(settings, start_named, ignore_sigterm=True, with_child=True)
    assert ours.child is not None
    standard_socket.write_text("", encoding="utf-8")  # what a killed dockerd leaves behind
    assert docker_engine.stop_engine_started_here(settings) == "stopped the Docker engine this project started"
    assert ours.process.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while not _ended(ours.child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ended(ours.child)
    assert not standard_socket.exists()
    assert not docker_engine.engine_files(settings).pidfile.exists()


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
def test_down_stops_the_stack_and_its_orphans_and_keeps_the_secrets_with_the_volumes(
    settings: Settings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, volumes: bool
) -> None:
    """The secrets go only with the volumes: a generated one (Grafana's password) must still match what its volume
    holds at the next `up`."""
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    write_compose(settings, host_architecture(), docker_runtime.compose_file(tmp_path))
    directory = docker_runtime.write_secret_files(with_local_secrets(settings, create=True))
    before = {path.name: path.read_text(encoding="utf-8") for path in directory.iterdir()}
    done = docker_runtime.down(settings, tmp_path, volumes=volumes)
    assert stand_ins.compose() == [["down", "--remove-orphans", *(["--volumes"] if volumes else [])]]
    assert done == ["stopped the Docker stack" + (" and deleted its volumes" if volumes else "")]
    if volumes:
        assert not directory.exists()
    else:
        assert {path.name: path.read_text(encoding="utf-8") for path in directory.iterdir()} == before
    _nothing_was_installed_or_started(stand_ins)


def test_a_generated_secret_kept_by_down_is_the_one_the_next_up_mounts(settings: Settings, stand_ins: StandIns,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    settings = with_local_secrets(settings.model_copy(update={"grafana_admin_password": None}), create=True)
    write_compose(settings, host_architecture(), docker_runtime.compose_file(tmp_path))
    directory = docker_runtime.write_secret_files(settings)
    generated = {path.name: path.read_text(encoding="utf-8") for path in directory.iterdir()
                 if path.read_text(encoding="utf-8") not in SECRETS.values()}  # fmt: skip
    assert any("grafana" in name for name in generated), sorted(generated)
    docker_runtime.down(settings, tmp_path, volumes=False)
    again = docker_runtime.write_secret_files(settings)
    assert {name: (again / name).read_text(encoding="utf-8") for name in generated} == generated


def test_down_reports_what_became_of_the_engine_the_project_started(settings: Settings, stand_ins: StandIns,
                                                                    start_named: StartNamed,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    """Containers of another project remain on it: the stack goes, the engine stays, and `down` says so."""
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    monkeypatch.setenv("FAKE_DOCKER_PS", "3f2a9c1d0b7e")
    write_compose(settings, host_architecture(), docker_runtime.compose_file(tmp_path))
    ours = _ours(settings, start_named)
    done = docker_runtime.down(settings, tmp_path, volumes=True)
    assert done[0] == "stopped the Docker stack and deleted its volumes"
    assert done[1].startswith("left the Docker engine this project started running")
    assert len(done) == 2
    assert ours.process.poll() is None
    monkeypatch.setenv("FAKE_DOCKER_PS", "")
    assert docker_runtime.down(settings, tmp_path, volumes=True)[1:] == ["stopped the Docker engine this project "
                                                                         "started"]  # fmt: skip
    ours.process.wait(timeout=30)


def test_down_with_nothing_running_says_so(settings: Settings, stand_ins: StandIns, tmp_path: Path) -> None:
    assert docker_runtime.down(settings, tmp_path, volumes=True) == [docker_runtime.NOTHING_RUNNING]
    assert stand_ins.compose() == []


def test_down_volumes_with_no_engine_answering_says_the_volumes_are_kept(settings: Settings, stand_ins: StandIns,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    """The volumes live in an engine: with none answering (and none of the project's own to start), `down --volumes`
    says they are kept and how to delete them, never that nothing was running; nothing is installed or started."""
    write_compose(settings, host_architecture(), docker_runtime.compose_file(tmp_path))
    (done,) = docker_runtime.down(settings, tmp_path, volumes=True)
    assert "volumes, if it has any, are kept" in done
    assert "invoke down --runtime docker --volumes" in done
    assert docker_runtime.down(settings, tmp_path, volumes=False) == [docker_runtime.NOTHING_RUNNING]
    assert stand_ins.compose() == []
    _nothing_was_installed_or_started(stand_ins)


def test_down_volumes_starts_the_projects_own_stopped_engine_that_holds_them(
    settings: Settings, stand_ins: StandIns, tmp_path: Path
) -> None:
    """DOCKER_ENGINE=auto, the project's engine stopped, its data holding volumes: it is started to delete them (the
    stand-in dockerd fails, so the start's own error is what `down` reports)."""
    auto = settings.model_copy(update={"docker_engine": "auto"})
    (docker_engine.engine_files(auto).data / "volumes" / "temporal-dsql_postgresql-data").mkdir(parents=True)
    write_compose(auto, host_architecture(), docker_runtime.compose_file(tmp_path))
    require(docker_engine.can_install_packages(), "the project starts its own engine only as root on Debian")
    with pytest.raises(DeployError):
        docker_runtime.down(auto, tmp_path, volumes=True)
    assert stand_ins.calls("dockerd") != []  # it tried to start the engine that holds the volumes
    assert stand_ins.calls("apt-get") == []  # and installed nothing


# --- container states -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("one_shot", "state", "health", "exit_code", "ok"),
    [
        (True, "exited", "-", 0, True),
        (True, "exited", "-", 1, False),
        (True, "running", "-", 0, True),  # still at work
        (False, "exited", "-", 0, False),  # a long-running service that exited is down, whatever its exit code
        (False, "exited", "-", 1, False),
        (False, "running", "healthy", 0, True),
        (False, "running", "-", 0, True),  # no health check
        (False, "running", "unhealthy", 0, False),
        (False, "restarting", "-", 0, False),
    ],
)
def test_a_container_is_ok_by_what_its_service_is(one_shot: bool, state: str, health: str, exit_code: int,
                                                  ok: bool) -> None:  # fmt: skip
    container = docker_runtime.ContainerState("service", "stack-service-1", state, health, "-", exit_code, one_shot)
    assert container.ok is ok


def test_a_container_still_starting_is_ok_but_not_settled() -> None:
    """`status` shows a starting container as fine; a wait for health (restart, scale, upgrade) waits past it."""
    starting = docker_runtime.ContainerState("temporal-history", "s-1", "running", "starting", "-", 0, False)
    healthy = docker_runtime.ContainerState("temporal-history", "s-1", "running", "healthy", "-", 0, False)
    assert starting.ok
    assert not starting.settled
    assert healthy.settled


def test_a_long_running_service_that_exited_0_is_not_ok(settings: Settings, stand_ins: StandIns,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """Which services are one-shots comes from the stack's model, not from the exit code."""
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    monkeypatch.setenv("FAKE_COMPOSE_PS", _rows(
        {"Service": "temporal-frontend", "State": "exited", "ExitCode": 0},
        {"Service": "schema-setup", "State": "exited", "ExitCode": 0},
    ))  # fmt: skip
    frontend, schema_setup = docker_runtime.states(settings, tmp_path)
    assert (frontend.service, frontend.one_shot, frontend.ok) == ("temporal-frontend", False, False)
    assert (schema_setup.service, schema_setup.one_shot, schema_setup.ok) == ("schema-setup", True, True)
    with pytest.raises(DeployError) as unhealthy:
        docker_runtime.wait_healthy(settings, tmp_path, 0.1)
    assert unhealthy.value.problem == "not healthy after 0.1s: temporal-frontend"


# --- the main process of a service's container ----------------------------------------------------------------------
CONTAINER_ID = "0f1e2d3c4b5a" + "69" * 26


def _main_pid(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: str,
              pid: int | None = None) -> int:  # fmt: skip
    monkeypatch.setenv("FAKE_COMPOSE_PS", container)
    if pid is not None:
        monkeypatch.setenv("FAKE_DOCKER_PID", str(pid))
    return docker_runtime.DockerRuntime(settings, tmp_path).main_pid("temporal-history")


def test_a_service_without_a_container_has_no_main_pid(settings: Settings, stand_ins: StandIns, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    assert _main_pid(settings, tmp_path, monkeypatch, "") == 0
    assert stand_ins.compose() == [["ps", "--quiet", "temporal-history"]]
    assert stand_ins.calls("docker") == []


def test_a_container_that_is_not_running_has_no_main_pid(settings: Settings, stand_ins: StandIns, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    assert _main_pid(settings, tmp_path, monkeypatch, CONTAINER_ID, 0) == 0
    assert [call["argv"] for call in stand_ins.calls("docker")] == [["inspect", "--format", "{{.State.Pid}}",
                                                                     CONTAINER_ID]]  # fmt: skip


def test_a_pid_that_is_not_the_containers_on_this_host_is_refused(settings: Settings, stand_ins: StandIns,
                                                                  tmp_path: Path, start_named: StartNamed,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The engine runs elsewhere (DOCKER_HOST): the pid it reports is another machine's, and the process of that
    number here (this test's own, in no container) must never be the one a fault kills."""
    for pid in (os.getpid(), start_named("temporal-server").process.pid):
        with pytest.raises(DeployError) as refused:
            _main_pid(settings, tmp_path, monkeypatch, CONTAINER_ID, pid)
        assert f"the engine reports pid {pid} for temporal-history" in refused.value.problem
        assert "DOCKER_HOST" in refused.value.problem
        assert refused.value.fix is not None


def test_the_pid_of_a_process_in_the_container_is_its_main_pid(settings: Settings, stand_ins: StandIns,
                                                               tmp_path: Path, start_named: StartNamed,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A process is in a container when its cgroup path names the container's id. No test can put a process in a
    container; this one takes an id its own process's cgroup path names (where this host's cgroups name any)."""
    process = start_named("temporal-server").process
    cgroups = Path(f"/proc/{process.pid}/cgroup").read_text(encoding="utf-8")
    ids = re.findall(r"[0-9a-f]{12,}", cgroups)
    if not ids:
        pytest.skip(f"this process's cgroups name no id to stand for a container's: {cgroups!r}")
    assert _main_pid(settings, tmp_path, monkeypatch, f"{ids[0]}\n", process.pid) == process.pid
    other = ids[0][:11] + ("0" if ids[0][11] != "0" else "1")  # the same but for its 12th character
    with pytest.raises(DeployError, match="DOCKER_HOST"):
        _main_pid(settings, tmp_path, monkeypatch, other + ids[0][12:], process.pid)


@pytest.mark.parametrize(("volume_made_s", "refused"), [(None, False), (3600, False), (-3600, True)],
                         ids=["no volume yet", "made with this password", "made before this password"])  # fmt: skip
def test_a_database_volume_older_than_this_stack_dirs_password_is_refused(
    make_settings: MakeSettings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory, volume_made_s: int | None, refused: bool,
) -> None:  # fmt: skip
    """Two checkouts under one PROJECT_NAME share Compose's volumes: the second's new password would be refused by
    the database the first made, so `up` names the volume, when it was made, and the ways out before starting."""
    settings = make_settings(STACK_DIR=str(tmp_path_factory.mktemp("stack")))
    with_local_secrets(settings, create=True)
    layout = Layout(settings.stack_dir, settings.search_engine)
    assert layout.sql_password.exists()
    if volume_made_s is not None:  # when the volume was made, from the password file's time
        made = dt.datetime.fromtimestamp(layout.sql_password.stat().st_mtime + volume_made_s, dt.UTC)
        monkeypatch.setenv("FAKE_VOLUME_CREATED", made.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if not refused:
        docker_runtime.check_database_volume(settings, layout)
        return
    with pytest.raises(DeployError) as caught:
        docker_runtime.check_database_volume(settings, layout)
    volume = f"{settings.project_name}_postgresql-data"
    assert volume in caught.value.problem
    assert str(layout.sql_password) in caught.value.problem
    assert caught.value.fix is not None
    assert "invoke down --runtime docker --volumes" in caught.value.fix
    assert "PROJECT_NAME" in caught.value.fix
    # A password the operator set is theirs to keep right: never held against the volume.
    docker_runtime.check_database_volume(settings.model_copy(update={"temporal_sql_password": SecretStr("x")}), layout)


@pytest.mark.parametrize("created", ["", "not a time", "0001-01-01T00:00:00Z"])
def test_a_database_volume_of_unknown_age_is_not_refused(
    make_settings: MakeSettings, stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory, created: str,
) -> None:  # fmt: skip
    settings = make_settings(STACK_DIR=str(tmp_path_factory.mktemp("stack")))
    with_local_secrets(settings, create=True)
    monkeypatch.setenv("FAKE_VOLUME_CREATED", created)
    docker_runtime.check_database_volume(settings, Layout(settings.stack_dir, settings.search_engine))
