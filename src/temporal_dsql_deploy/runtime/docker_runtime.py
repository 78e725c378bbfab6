"""The Docker runtime: the rendered compose file under `docker compose`, where a Docker engine exists."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporal_dsql_deploy.database.local_postgres import with_local_secrets
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.process import run_program, run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.control_keys import ensure_control_keys
from temporal_dsql_deploy.runtime.interface import ServiceRow, StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import compose_secrets, write_compose
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.base import runtime_image
from temporal_dsql_deploy.settings.config import Settings

UP_TIMEOUT_S = 600
ENGINE_CHECK_TIMEOUT_S = 20


@dataclass(frozen=True)
class ContainerState:
    service: str
    state: str
    health: str
    ports: str
    exit_code: int

    @property
    def ok(self) -> bool:
        """Running and not unhealthy, or a one-shot that exited 0."""
        if self.state == "exited":
            return self.exit_code == 0
        return self.state == "running" and self.health != "unhealthy"


def compose_file(project_root: Path) -> Path:
    return project_root / "compose" / "docker-compose.yml"


def engine_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        answered = run_program(["docker", "info"], what="docker info", fix="start the Docker engine",
                               timeout_s=ENGINE_CHECK_TIMEOUT_S)  # fmt: skip
    except DeployError:  # no answer in time: no usable engine
        return False
    return answered.returncode == 0


def require_engine() -> None:
    """Fail clearly unless a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        raise DeployError("--runtime docker needs Docker, and no `docker` command is installed",
                          "use the default local runtime (`invoke up`), or install Docker")  # fmt: skip
    if not engine_available():
        raise DeployError(
            "--runtime docker needs a running Docker engine, and none answers on this host (`docker info` failed)",
            "use the default local runtime (`invoke up`), or start the Docker engine and try again",
        )


def _compose(settings: Settings, project_root: Path, *args: str, what: str, timeout_s: float = 120) -> str:
    # The file refers to its secrets as ${NAME}; Compose reads them from its own environment, given here.
    argv = ["docker", "compose", "-f", str(compose_file(project_root)), *args]
    secrets = compose_secrets(build_stack(settings), settings, ensure_control_keys(settings.stack_dir))
    return run_tool(argv, what=what, fix="see the output above; `docker compose logs` has more", timeout_s=timeout_s,
                    env=secrets)  # fmt: skip


def up(settings: Settings, project_root: Path) -> Path:
    """Render the compose file for this machine's architecture and bring it up, waiting for health."""
    require_engine()
    settings = with_local_secrets(settings, create=True)
    image = runtime_image(settings)
    inspected = run_program(["docker", "image", "inspect", image], what="docker image inspect",
                            fix="check that the Docker engine answers (`docker info`)", timeout_s=60)  # fmt: skip
    if inspected.returncode != 0:
        raise DeployError(f"the runtime image {image} is not on this Docker host",
                          f"build it with `invoke build --arch {settings.docker_arch}`")  # fmt: skip
    path = write_compose(settings, settings.docker_arch, compose_file(project_root))
    _compose(settings, project_root, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
             what="docker compose up", timeout_s=UP_TIMEOUT_S + 60)  # fmt: skip
    return path


def down(settings: Settings, project_root: Path, *, volumes: bool) -> None:
    require_engine()
    _compose(settings, project_root, "down", *(["--volumes"] if volumes else []), what="docker compose down")


def states(settings: Settings, project_root: Path) -> list[ContainerState]:
    require_engine()
    output = _compose(settings, project_root, "ps", "--all", "--format", "json", what="docker compose ps")
    # One JSON object per line; older Compose releases print a single array instead.
    entries: list[dict[str, object]] = []
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("["):
            entries.extend(json.loads(line))
        elif line.startswith("{"):
            entries.append(json.loads(line))
    return [_container(entry) for entry in entries]


def _container(entry: dict[str, Any]) -> ContainerState:
    published = [str(p["PublishedPort"]) for p in entry.get("Publishers") or [] if p.get("PublishedPort")]
    return ContainerState(
        service=str(entry.get("Service", "?")),
        state=str(entry.get("State", "?")),
        health=str(entry.get("Health") or "-"),
        ports=", ".join(published) or "-",
        exit_code=int(entry.get("ExitCode") or 0),
    )


def logs(settings: Settings, project_root: Path, service: str, lines: int) -> str:
    require_engine()
    return _compose(settings, project_root, "logs", "--no-color", "--tail", str(lines), *([service] if service else []),
                    what="docker compose logs")  # fmt: skip


def restart(settings: Settings, project_root: Path, targets: list[str]) -> list[str]:
    """`docker compose restart` of `targets`, then wait for health."""
    require_engine()
    _compose(settings, project_root, "restart", *targets, what="docker compose restart")
    _compose(settings, project_root, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
             what="docker compose up --wait", timeout_s=UP_TIMEOUT_S + 60)  # fmt: skip
    return targets


class DockerRuntime(StackRuntime):
    """The stack under Docker Compose, where a Docker engine answers."""

    kind = Runtime.DOCKER
    starting = "docker compose up --wait"

    def up(self, report: Reporter) -> list[ServiceRow]:
        path = up(self.settings, self.project_root)
        report(f"{path} is up and healthy")
        return self.status()

    def deletable_data(self) -> str:
        return "the Docker stack's volumes (databases, indexes)"

    def down(self, *, volumes: bool) -> list[str]:
        down(self.settings, self.project_root, volumes=volumes)
        return ["stopped the Docker stack" + (" and deleted its volumes" if volumes else "")]

    def status(self) -> list[ServiceRow]:
        containers = states(self.settings, self.project_root)
        return [ServiceRow(c.service, c.state, c.health, c.ports, c.ok) for c in containers]

    def restart(self, targets: list[str], report: Reporter) -> list[str]:
        restarted = restart(self.settings, self.project_root, targets)
        report(f"{', '.join(restarted)}: restarted and healthy")
        return restarted

    def logs(self, service: str, lines: int) -> str:
        return logs(self.settings, self.project_root, service, lines)

    def metrics_store(self) -> MetricsStore:
        # Compose publishes the store (Prometheus, no write API) on PUBLISH_ADDRESS; 0.0.0.0 is reached on loopback.
        address = self.settings.publish_address
        host = "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104
        return MetricsStore(f"http://{host}:{self.settings.metrics_port}", auth=None)

    def dashboards(self) -> list[str]:
        return [f"dashboards         http://127.0.0.1:{self.settings.grafana_port}   (Grafana)"]
