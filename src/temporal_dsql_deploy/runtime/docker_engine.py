"""A Docker engine the project can count on, and the pinned compose client.

The user's engine where one answers (DOCKER_HOST or the standard socket). Where none does and we are root on
Debian, Debian's docker.io is installed (as the native runtime installs PostgreSQL) and dockerd is started by the
project with its data under the cache, on the standard socket, and stopped by it again; it runs without touching
the host's firewall or forwarding (`--iptables=false --ip-forward=false --bridge=none`: published ports go
through docker-proxy on loopback, the project's own bridge network needs neither), so stopping it leaves the
machine as found. (Checked on this kind of machine: dockerd 20.10 with overlay2, cgroups v1, no systemd.)
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program, spawn
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.installer import (
    Installer,
    apt_install,
    build_step,
    can_install_packages,
    component_dir,
    go_env,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import docker_host

# docker compose v5.6.0: v5.7.0/v5.7.1 need a module the proxy here refuses, v5.7.2 a newer Go (components/compose).
COMPOSE_VERSION = "v5.6.0"
ENGINE_PACKAGE = "docker.io"
STANDARD_SOCKET = Path("/var/run/docker.sock")
ENGINE_CHECK_TIMEOUT_S = 20
ENGINE_START_TIMEOUT_S = 60
ENGINE_STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class EngineFiles:
    """Where an engine the project started keeps its state: under the cache, never in the checkout."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"


def engine_files(settings: Settings) -> EngineFiles:
    return EngineFiles(settings.cache_dir / "docker-engine")


def install_compose(settings: Settings, installer: Installer) -> Path:
    """The docker compose client, built from the pinned wrapper module in components/compose."""

    def build(staging: Path) -> None:
        if installer.project_root is None:
            raise DeployError("docker compose is not installed", "run `invoke up --runtime docker` from the project")
        flags = f"-s -w -X github.com/docker/compose/v5/internal.Version={COMPOSE_VERSION}"
        argv = ["go", "build", "-trimpath", "-ldflags", flags, "-o", str(staging / "docker-compose"),
                "github.com/docker/compose/v5/cmd"]  # fmt: skip
        build_step(argv, f"building docker compose {COMPOSE_VERSION}", env=go_env(staging),
                   cwd=installer.project_root / "components" / "compose")  # fmt: skip

    target = component_dir(settings, "docker-compose", COMPOSE_VERSION)
    return installer.once(target, f"docker compose {COMPOSE_VERSION}", build, ("docker-compose",))


def installed_compose(settings: Settings) -> Path:
    """The compose client `up` installed (locating only)."""
    return install_compose(settings, Installer(lambda _message: None, build=False)) / "docker-compose"


def engine_answers() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    return _no_answer() is None


def _no_answer() -> str | None:
    """Why no engine answers (None: one does), in the docker client's own words."""
    if shutil.which("docker") is None:
        return "no `docker` command is installed"
    try:
        answered = run_program(["docker", "info"], what="docker info", fix="start the Docker engine",
                               timeout_s=ENGINE_CHECK_TIMEOUT_S)  # fmt: skip
    except DeployError:
        return f"`docker info` did not answer within {ENGINE_CHECK_TIMEOUT_S}s"
    if answered.returncode == 0:
        return None
    return f"`docker info` failed: {answered.tail().strip()[-300:]}"


def require_engine() -> None:
    """Fail clearly unless a Docker engine answers."""
    if not engine_answers():
        raise DeployError("no Docker engine answers here (`docker info` failed), so no Docker stack is running",
                          "start it with `invoke up --runtime docker`")  # fmt: skip


def ensure_engine(settings: Settings, report: Reporter) -> None:
    """An engine that answers: the user's, else (DOCKER_ENGINE=auto) Debian's, installed and started here."""
    why = _no_answer()
    if why is None:
        return
    needed = f"--runtime docker needs a Docker engine, and none answers here ({why})"
    if settings.docker_engine == "user":
        raise DeployError(needed, "start your Docker engine (or set DOCKER_HOST to it), or set DOCKER_ENGINE=auto to "
                          "let the project run Debian's docker.io (root on Debian)")  # fmt: skip
    if docker_host() is not None:  # the operator named an engine: starting another would not be it
        raise DeployError(f"{needed}; DOCKER_HOST={docker_host()} names the engine to use",
                          "start that engine, or unset DOCKER_HOST to let the project run its own")  # fmt: skip
    if not can_install_packages():
        raise DeployError(needed, "start your Docker engine (or set DOCKER_HOST), or run as root on Debian, where "
                          "`invoke up --runtime docker` installs and starts Debian's docker.io itself")  # fmt: skip
    files = engine_files(settings)
    if STANDARD_SOCKET.exists() and _started_here(files) is None:
        if not _nothing_listens_on(STANDARD_SOCKET):
            raise DeployError(f"{STANDARD_SOCKET} exists but no engine answers on it ({why})",
                              "start the Docker engine that serves it; if it is no engine's, move it away")  # fmt: skip
        # What an engine killed outright leaves (a crash, a machine stopped mid-run): no process holds it.
        report(f"removing {STANDARD_SOCKET}: no process listens on it (left by an engine that was killed)")
        STANDARD_SOCKET.unlink(missing_ok=True)
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        report(f"installing Debian's {ENGINE_PACKAGE} (first time only)")
        apt_install((ENGINE_PACKAGE,), report)
    _start_dockerd(files, report)


def _start_dockerd(files: EngineFiles, report: Reporter) -> None:
    for directory in (files.root, files.data, files.exec_root):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    report(f"starting dockerd with its data in {files.data}")
    argv = ["dockerd", "--data-root", str(files.data), "--exec-root", str(files.exec_root),
            "--pidfile", str(files.pidfile), "-H", f"unix://{STANDARD_SOCKET}",
            "--iptables=false", "--ip-forward=false", "--bridge=none",
            # Nothing leaves this engine's networks, so a name that is not a container's cannot resolve: it must fail
            # at once (a gRPC client's TXT lookup would otherwise hold its first connection for 10 s).
            "--dns-opt", "timeout:1", "--dns-opt", "attempts:1"]  # fmt: skip
    # Detached: it outlives this command (the stack runs on it) until `down` stops it.
    dockerd = spawn(argv, what="dockerd", log=files.log, detached=True)
    # Until it answers, or exits: a dockerd that stopped at once is not waited for.
    waiting = Retrying(stop=stop_after_delay(ENGINE_START_TIMEOUT_S), wait=wait_fixed(0.5),
                       retry=retry_if_result(lambda answered: not answered and dockerd.alive()))  # fmt: skip
    try:
        answered = waiting(engine_answers)
    except RetryError:
        answered = False
    if not answered:
        _stop(files)
        tail = files.log.read_text(encoding="utf-8", errors="replace")[-2000:]
        what = "exited" if not dockerd.alive() else f"did not answer within {ENGINE_START_TIMEOUT_S}s"
        raise DeployError(f"dockerd {what}; its log ends:\n{tail}", f"see {files.log}") from None


def _nothing_listens_on(path: Path) -> bool:
    """True when `path` is a Unix socket no process listens on (a connection is refused), so removing it takes
    nothing from anyone; an engine that is there but busy or broken is left to its owner."""
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(ENGINE_CHECK_TIMEOUT_S)
            probe.connect(str(path))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def _started_here(files: EngineFiles) -> psutil.Process | None:
    """The dockerd this project started, if it still runs: its pidfile names a dockerd whose data root is ours (a
    reused pid, or the user's own dockerd, is never taken for it)."""
    try:
        process = psutil.Process(int(files.pidfile.read_text(encoding="utf-8").strip()))
        ours = process.name() == "dockerd" and str(files.data) in process.cmdline()
        return process if ours else None
    except (OSError, ValueError, psutil.Error):
        return None


def stop_engine_started_here(settings: Settings) -> str | None:
    """Stop the dockerd this project started (never the user's) unless containers other than the stack's remain on
    it; what was done, or None if there was no such engine."""
    files = engine_files(settings)
    if _started_here(files) is None:
        return None
    try:  # this engine's own containers, whatever DOCKER_HOST names
        remaining = run_program(["docker", "-H", f"unix://{STANDARD_SOCKET}", "ps", "--all", "--quiet"],
                                what="docker ps", fix="check `docker info`",
                                timeout_s=ENGINE_CHECK_TIMEOUT_S)  # fmt: skip
    except DeployError:
        return "left the Docker engine this project started running: it did not list its containers in time"
    if remaining.returncode != 0:
        return "left the Docker engine this project started running: it did not list its containers"
    if remaining.stdout.strip():
        count = len(remaining.stdout.split())
        return f"left the Docker engine this project started running: other containers are on it ({count})"
    _stop(files)
    return "stopped the Docker engine this project started"


def _stop(files: EngineFiles) -> None:
    """SIGTERM, then after ENGINE_STOP_TIMEOUT_S SIGKILL to it and what it started (containerd, shims), and its
    socket removed: nothing of it is left behind."""
    process = _started_here(files)
    if process is None:
        return
    children = process.children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(ENGINE_STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        for each in [*children, process]:
            with contextlib.suppress(psutil.Error):
                each.kill()
        STANDARD_SOCKET.unlink(missing_ok=True)
    files.pidfile.unlink(missing_ok=True)
