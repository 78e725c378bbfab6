"""The Docker runtime: the rendered compose file under the pinned docker compose, on an engine that answers.

`up` makes sure of an engine (runtime/docker_engine.py), builds the stack's images unless they are current
(runtime/stack_images.py), writes the secrets as files the containers mount (never values in the compose file or
its environment), then `docker compose up --wait`. `down` stops the stack and, if the project started the
engine, the engine too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from temporal_dsql_deploy.database.local_postgres import with_local_secrets
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.owned_paths import check_claimable, make_owned_dir
from temporal_dsql_deploy.process import run_program, run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime import docker_engine
from temporal_dsql_deploy.runtime.control_keys import ensure_control_keys, read_control_keys
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.interface import ServiceRow, StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import (
    SECRETS_DIR_VARIABLE,
    compose_secrets,
    render_compose,
    secret_names,
    with_service_from,
    write_compose,
)
from temporal_dsql_deploy.runtime.stack_images import build_stack_images
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.postgresql import DATABASE_VOLUME
from temporal_dsql_deploy.settings.config import ROLE_METRICS_PORTS, Settings, host_architecture
from temporal_dsql_deploy.settings.environment import docker_host
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.temporal.upgrade import check_start, mark_moving, record_release

UP_TIMEOUT_S = 600
NOTHING_RUNNING = "no Docker stack was running"


@dataclass(frozen=True)
class ContainerState:
    service: str
    container: str  # the container's name (a service on several hosts has one per host)
    state: str
    health: str
    ports: str
    exit_code: int
    one_shot: bool

    @property
    def ok(self) -> bool:
        """Running and not unhealthy; for a one-shot, exited 0 (a service that exited, even with 0, is down)."""
        if self.one_shot and self.state == "exited":
            return self.exit_code == 0
        return self.state == "running" and self.health != "unhealthy"

    @property
    def settled(self) -> bool:
        """Ok, and past its start: a container still `starting` has not passed its health check yet."""
        return self.ok and self.health != "starting"


def compose_file(project_root: Path) -> Path:
    return project_root / "compose" / "docker-compose.yml"


def secrets_dir(settings: Settings) -> Path:
    """Where the secret files the containers mount are: in STACK_DIR's config directory, this user's alone."""
    return Layout(settings.stack_dir, settings.search_engine).config / "docker-secrets"


def write_secret_files(settings: Settings) -> Path:
    """Each secret the compose file names, as a file of its own. The directory is the owner's alone (0700); the
    files are readable (0444) so that the containers' user can read the one mounted into it. A secret no setting
    gives (Grafana's admin password unless GRAFANA_ADMIN_PASSWORD is set) is generated: read it from its file."""
    directory = secrets_dir(settings)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    directory.parent.chmod(0o700)
    stack = build_stack(settings)
    values = {
        name.lower(): value
        for name, value in compose_secrets(stack, settings, ensure_control_keys(settings.stack_dir)).items()
    }
    for name in secret_names(stack, settings) - values.keys():
        kept = directory / name
        values[name] = kept.read_text(encoding="utf-8") if kept.is_file() else secrets.token_urlsafe(24)
    for name, value in values.items():
        path = directory / name
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value)
    return directory


def _compose(settings: Settings, project_root: Path, *args: str, what: str, timeout_s: float = 120) -> str:
    compose = docker_engine.installed_compose(settings)
    argv = [str(compose), "-f", str(compose_file(project_root)), *args]
    return run_tool(argv, what=what, fix="see the output above; `invoke logs --runtime docker` has more",
                    timeout_s=timeout_s, env={SECRETS_DIR_VARIABLE: str(secrets_dir(settings))})  # fmt: skip


def up(settings: Settings, project_root: Path, report: Reporter) -> Path:
    """Engine, images, secrets, compose file; then the stack, waiting for every service's health."""
    arch = host_architecture()
    if settings.docker_arch != arch:
        raise DeployError(f"DOCKER_ARCH={settings.docker_arch}, but this machine runs {arch} containers",
                          f"unset DOCKER_ARCH to run the stack here; `invoke build --arch {settings.docker_arch}` "
                          "builds images for another machine")  # fmt: skip
    layout = Layout(settings.stack_dir, settings.search_engine)
    check_claimable(layout.root, project_root=project_root)  # before anything is installed or written
    if moving := check_start(layout, settings.temporal_version):
        report(moving)
    docker_engine.ensure_engine(settings, report)
    docker_engine.install_compose(settings, Installer(report, project_root=project_root))
    # STACK_DIR holds the stack's generated secrets: the product's (so `cleanup` may delete it) and owner-only.
    make_owned_dir(layout.root, project_root=project_root, mode=0o700)
    make_owned_dir(layout.all_data, project_root=project_root, mode=0o700)
    loaded, settings = settings, with_local_secrets(settings, create=True)
    check_database_volume(loaded, layout)
    build_stack_images(settings, project_root, arch, report)
    write_secret_files(settings)
    path = write_compose(settings, arch, compose_file(project_root))
    mark_moving(layout, settings.temporal_version)
    report("docker compose up: waiting for every service to be healthy")
    _compose(settings, project_root, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
             what="docker compose up", timeout_s=UP_TIMEOUT_S + 60)  # fmt: skip
    _wait_for_one_shots(settings, project_root)
    record_release(layout, settings.temporal_version)
    return path


CLOCK_SLACK_S = 2  # the engine's clock is this host's; file times and the volume's differ by rounding only
MEANINGFUL_YEAR = 2000  # a creation time before it is a driver's zero value


def check_database_volume(settings: Settings, layout: Layout) -> None:
    """Refuse a database volume older than the password file this STACK_DIR holds for it (`settings` as loaded: a
    password the operator set is never held against it). Made before that password existed, the database in it has
    another one and would refuse every service: another checkout's stack under the same PROJECT_NAME made it, or
    this one before its STACK_DIR was emptied (or copied without its file times)."""
    password = layout.sql_password
    if not settings.sql_is_local or settings.temporal_sql_password is not None or not password.exists():
        return
    volume = f"{settings.project_name}_{DATABASE_VOLUME}"
    found = run_program(["docker", "volume", "inspect", "--format", "{{.CreatedAt}}", volume],
                        what="docker volume inspect", fix="check `docker info`", timeout_s=60)  # fmt: skip
    try:
        created = dt.datetime.fromisoformat(found.stdout.strip()) if found.returncode == 0 else None
    except ValueError:  # a volume driver that records no time: nothing to compare
        created = None
    if created is None or created.year < MEANINGFUL_YEAR:
        return  # not made yet (this up makes it with this password), or of unknown age
    if password.stat().st_mtime <= created.timestamp() + CLOCK_SLACK_S:
        return
    raise DeployError(f"the Docker volume {volume} was made at {created:%Y-%m-%d %H:%M:%S %Z}, before this "
                      f"STACK_DIR's database password ({password}), so the database in it has another password and "
                      "would refuse this stack's services",
                      "if another checkout's stack made it, stop that one with `invoke down --runtime docker "
                      "--volumes` there, or give this checkout a PROJECT_NAME of its own; if this STACK_DIR was "
                      "restored or copied without its file times, restore them (`cp -a`, `rsync -t`); "
                      f"`docker volume rm {volume}` deletes that database")  # fmt: skip


def _wait_for_one_shots(settings: Settings, project_root: Path) -> None:
    """`up --wait` waits for the services others depend on; a one-shot none depends on (namespace-setup) is waited
    for here, and any that failed is named."""
    one_shots = [service.name for service in build_stack(settings).in_runtime(Runtime.DOCKER) if service.one_shot]
    _compose(settings, project_root, "wait", *one_shots, what=f"docker compose wait ({', '.join(one_shots)})",
             timeout_s=UP_TIMEOUT_S)  # fmt: skip
    failed = [state for state in states(settings, project_root) if state.service in one_shots and not state.ok]
    if failed:
        names = ", ".join(f"{state.service} (exit {state.exit_code})" for state in failed)
        raise DeployError(f"one-shot services failed: {names}", "see `invoke logs SERVICE --runtime docker`")


def down(settings: Settings, project_root: Path, *, volumes: bool) -> list[str]:
    done = []
    rendered = compose_file(project_root).exists()
    answers = rendered and docker_engine.engine_answers()
    try:
        if volumes and rendered and not answers and _our_engine_holds_volumes(settings):
            # The volumes are in the engine the project runs, stopped since: started again to delete them (and
            # stopped again below); no engine is installed for this.
            docker_engine.ensure_engine(settings, lambda _message: None)
            answers = True
        if answers:
            # --remove-orphans: containers of services the current settings no longer render go too.
            _compose(settings, project_root, "down", "--remove-orphans", *(["--volumes"] if volumes else []),
                     what="docker compose down", timeout_s=300)  # fmt: skip
            done.append("stopped the Docker stack" + (" and deleted its volumes" if volumes else ""))
            if volumes:  # the data the record spoke of is gone
                Layout(settings.stack_dir, settings.search_engine).release_record.unlink(missing_ok=True)
        elif volumes and rendered:
            done.append("no Docker engine answers, so the stack's volumes, if it has any, are kept: start the engine "
                        "that holds them and run `invoke down --runtime docker --volumes` again")  # fmt: skip
        if volumes:  # kept otherwise: a generated secret (Grafana's password) must match what its volume holds
            shutil.rmtree(secrets_dir(settings), ignore_errors=True)
    finally:
        engine = docker_engine.stop_engine_started_here(settings)
    if engine:
        done.append(engine)
    return done or [NOTHING_RUNNING]


def _our_engine_holds_volumes(settings: Settings) -> bool:
    """Whether the project's own engine (DOCKER_ENGINE=auto, no DOCKER_HOST, installed), asked about once it does not
    answer, holds volumes in its data: then `down --volumes` reaches them only by starting it."""
    volumes = docker_engine.engine_files(settings).data / "volumes"
    return (settings.docker_engine == "auto" and docker_host() is None and shutil.which("dockerd") is not None
            and any(path.is_dir() for path in volumes.glob("*")))  # fmt: skip


def states(settings: Settings, project_root: Path) -> list[ContainerState]:
    docker_engine.require_engine()
    output = _compose(settings, project_root, "ps", "--all", "--format", "json", what="docker compose ps")
    # One JSON object per line; older Compose releases print a single array instead.
    entries: list[dict[str, object]] = []
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("["):
            entries.extend(json.loads(line))
        elif line.startswith("{"):
            entries.append(json.loads(line))
    if not entries:
        raise DeployError("the Docker stack is not running", "start it with `invoke up --runtime docker`")
    one_shots = {service.name for service in build_stack(settings).in_runtime(Runtime.DOCKER) if service.one_shot}
    return [_container(entry, one_shots) for entry in entries]


def _container(entry: dict[str, Any], one_shots: set[str]) -> ContainerState:
    published = [str(p["PublishedPort"]) for p in entry.get("Publishers") or [] if p.get("PublishedPort")]
    return ContainerState(
        service=str(entry.get("Service", "?")),
        container=str(entry.get("Name", "?")),
        state=str(entry.get("State", "?")),
        health=str(entry.get("Health") or "-"),
        ports=", ".join(published) or "-",
        exit_code=int(entry.get("ExitCode") or 0),
        one_shot=str(entry.get("Service")) in one_shots,
    )


def logs(settings: Settings, project_root: Path, service: str, lines: int) -> str:
    docker_engine.require_engine()
    return _compose(settings, project_root, "logs", "--no-color", "--tail", str(lines), *([service] if service else []),
                    what="docker compose logs")  # fmt: skip


def restart(settings: Settings, project_root: Path, targets: list[str]) -> list[str]:
    """`docker compose restart` of `targets`, then wait for health."""
    docker_engine.require_engine()
    _compose(settings, project_root, "restart", *targets, what="docker compose restart", timeout_s=300)
    wait_healthy(settings, project_root, UP_TIMEOUT_S)
    return targets


def wait_healthy(settings: Settings, project_root: Path, timeout_s: float) -> None:
    """Every container running and healthy (one-shots exited 0), checked every second for `timeout_s`."""
    waiting = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(1),
                       retry=retry_if_result(bool))  # fmt: skip
    try:
        waiting(lambda: [state.service for state in states(settings, project_root) if not state.settled])
    except RetryError as exc:
        unhealthy = exc.last_attempt.result()
        raise DeployError(f"not healthy after {timeout_s:g}s: {', '.join(unhealthy)}",
                          "see `invoke logs SERVICE --runtime docker`") from None  # fmt: skip


def main_pid(settings: Settings, project_root: Path, service: str) -> int:
    """The host pid of the service's container's first process (0: no running container)."""
    container = _compose(settings, project_root, "ps", "--quiet", service, what="docker compose ps").strip()
    if not container:
        return 0
    return container_pid(container.splitlines()[0], service)


def container_pid(container_id: str, what: str) -> int:
    """This host's pid of the first process of the container (`what` runs in it; 0: not running), checked to be
    in that container."""
    pid = int(run_tool(["docker", "inspect", "--format", "{{.State.Pid}}", container_id],
                       what="docker inspect", fix="check `docker info`", timeout_s=60).strip() or 0)  # fmt: skip
    if pid and not _in_container(pid, container_id):
        raise DeployError(f"the engine reports pid {pid} for {what}, and this host's process {pid} is not in that "
                          "container: the engine runs elsewhere (DOCKER_HOST)",
                          "inject process faults on the engine's own host")  # fmt: skip
    return pid


def _in_container(pid: int, container_id: str) -> bool:
    """Whether this host's process `pid` belongs to the container (its cgroup path names the container's id)."""
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
    except OSError:
        return False
    return container_id[:12] in cgroups


# One sample of the gauge, labels or not, in Prometheus' text format.
SHARD_GAUGE = re.compile(r"^numshards_gauge(?:\{[^}]*\})?\s+(\S+)$", re.MULTILINE)


def shards_in(metrics: str) -> int:
    """The shards a history host says it owns, from its Prometheus metrics (0 before it has said)."""
    samples = SHARD_GAUGE.findall(metrics)
    return int(float(samples[-1])) if samples else 0


class DockerRuntime(StackRuntime):
    """The stack under Docker Compose, on the user's engine or one the project runs."""

    kind = Runtime.DOCKER
    starting = "docker compose up --wait"

    def up(self, report: Reporter) -> list[ServiceRow]:
        path = up(self.settings, self.project_root, report)
        report(f"{path} is up and healthy")
        return self.status()

    def deletable_data(self) -> str:
        return "the Docker stack's volumes (databases, indexes, metrics)"

    def down(self, *, volumes: bool) -> list[str]:
        return down(self.settings, self.project_root, volumes=volumes)

    def status(self) -> list[ServiceRow]:
        containers = states(self.settings, self.project_root)
        hosts = Counter(c.service for c in containers)
        # A service on several hosts shows a row per host: its name and the host's number (the container's suffix).
        return [ServiceRow(c.service if hosts[c.service] == 1 else f"{c.service} #{c.container.rsplit('-', 1)[-1]}",
                           c.state, c.health, c.ports, c.ok) for c in containers]  # fmt: skip

    def containers(self, service: str) -> list[str]:
        """The ids of the service's running containers, one per host."""
        return _compose(self.settings, self.project_root, "ps", "--quiet", service, what="docker compose ps").split()

    def owned_shards(self, history: str) -> dict[str, int]:
        """The shards each running host of the history service `history` owns now, by container id (a host that does
        not answer: 0), from its own `numshards_gauge` (what its shard controller owns)."""
        url = f"http://127.0.0.1:{ROLE_METRICS_PORTS['history']}/metrics"
        owned: dict[str, int] = {}
        for container in self.containers(history):
            scraped = run_program(["docker", "exec", container, "curl", "-fsS", "--max-time", "2", url],
                                  what=f"the metrics of history host {container[:12]}", fix="check `docker ps`",
                                  timeout_s=10)  # fmt: skip
            owned[container] = shards_in(scraped.stdout) if scraped.returncode == 0 else 0
        return owned

    def stand_in_admin(self, path: str, form: dict[str, str] | None = None) -> Any:
        """An answer of dsql-local's admin API (a POST of `form` if given), which only the stack's network reaches:
        curl in the stand-in's container, given the key on its standard input, never on a command line."""
        key = read_control_keys(self.settings.stack_dir, "dsql-local's admin API").dsql_local_admin
        container = self.containers("dsql-local")[0]
        argv = ["docker", "exec", "-i", container, "curl", "-fsS", "--max-time", "10", "-H", "@-",
                f"http://127.0.0.1:{self.settings.dsql_local_admin_port}{path}"]  # fmt: skip
        for name, value in (form or {}).items():
            argv += ["--data-urlencode", f"{name}={value}"]
        answered = run_program(argv, what=f"dsql-local's admin API {path}", fix="check `invoke status`",
                               timeout_s=30, stdin_text=f"Authorization: Bearer {key}\n")  # fmt: skip
        if answered.returncode != 0:
            raise DeployError(f"dsql-local's admin API {path} failed:\n{answered.tail()}",
                              "check `invoke logs dsql-local --runtime docker`")  # fmt: skip
        return json.loads(answered.stdout)

    def scale(self, service: str, hosts: int, timeout_s: float = UP_TIMEOUT_S) -> None:
        """Run `service` on `hosts` hosts (containers), returning once each is healthy; the others are left alone."""
        _compose(self.settings, self.project_root, "up", "--detach", "--no-deps", "--no-recreate", "--scale",
                 f"{service}={hosts}", service, what=f"docker compose up --scale {service}={hosts}",
                 timeout_s=timeout_s)  # fmt: skip
        # Not `--wait`, which gives up at a new host's first unhealthy report: a history host is not ready until it
        # owns its shards, which under load can take longer than its health check's first tries.
        wait_healthy(self.settings, self.project_root, timeout_s)

    def with_settings(self, settings: Settings) -> DockerRuntime:
        """The same stack as `settings` describe it (another Region serving, say)."""
        return DockerRuntime(settings, self.project_root)

    def remove_services(self, services: list[str], grace_s: int) -> None:
        """Stop every container of `services` (SIGTERM, `grace_s` to finish, then SIGKILL), then remove them."""
        named = ", ".join(services)
        _compose(self.settings, self.project_root, "stop", "--timeout", str(grace_s), *services,
                 what=f"docker compose stop {named}", timeout_s=grace_s * len(services) + 60)  # fmt: skip
        _compose(self.settings, self.project_root, "rm", "--force", *services, what=f"docker compose rm {named}")

    def start_services(self, services: list[str]) -> None:
        """`services` as the compose file has them now (their hosts, their settings), and the stack healthy again."""
        _compose(self.settings, self.project_root, "up", "--detach", "--no-deps", *services,
                 what=f"docker compose up {', '.join(services)}", timeout_s=UP_TIMEOUT_S)  # fmt: skip
        wait_healthy(self.settings, self.project_root, UP_TIMEOUT_S)

    def restart(self, targets: list[str], report: Reporter) -> list[str]:
        restarted = restart(self.settings, self.project_root, targets)
        report(f"{', '.join(restarted)}: restarted and healthy")
        return restarted

    def wait_healthy(self, timeout_s: float) -> None:
        wait_healthy(self.settings, self.project_root, timeout_s)

    def main_pid(self, service: str) -> int:
        return main_pid(self.settings, self.project_root, service)

    def stop_service(self, service: str) -> None:
        _compose(self.settings, self.project_root, "stop", service, what=f"docker compose stop {service}")

    def start_service(self, service: str) -> None:
        _compose(self.settings, self.project_root, "start", service, what=f"docker compose start {service}")

    def prepare_release(self, release_settings: Settings, report: Reporter) -> None:
        build_stack_images(release_settings, self.project_root, host_architecture(), report)

    def _move_service(self, service: str, release_settings: Settings) -> None:
        """The compose file with `service` as the release `release_settings` name renders it, the rest as it is."""
        path = compose_file(self.project_root)
        target = render_compose(build_stack(release_settings), release_settings, host_architecture())
        path.write_text(with_service_from(path.read_text(encoding="utf-8"), target, service), encoding="utf-8")

    def check_replaceable(self) -> None:
        pass  # Compose recreates any service whose image changed: nothing in a running stack stands in the way

    def schema_version(self) -> str | None:
        return None  # the database is reached only on the stack's network: the recorded release's schema stands

    def migrate(self, release_settings: Settings, report: Reporter) -> list[str]:
        # The database and the search engine are reached only on the stack's network: the target release's image
        # runs the schema step (schema-migrate: the schema job without its start-of-stack cleanup) and es-setup there.
        done = []
        for job, command in (("schema-setup", ["temporal-dsql-deploy", "schema-migrate"]), ("es-setup", [])):
            self._move_service(job, release_settings)
            output = _compose(self.settings, self.project_root, "run", "--rm", "--no-deps", job, *command,
                              what=f"{job} of Temporal {release_settings.temporal_version}",
                              timeout_s=UP_TIMEOUT_S)  # fmt: skip
            done += [line for line in output.splitlines() if line.strip()][-1:]
        return done

    def replace_release(self, service: str, release_settings: Settings) -> None:
        self._move_service(service, release_settings)
        # Only this service's containers are recreated (its image changed); --no-deps leaves the rest running. A role
        # on several hosts has them recreated together: Compose has no one-at-a-time update (a chart's Deployment
        # has, maxUnavailable 0).
        _compose(self.settings, self.project_root, "up", "--detach", "--no-deps", service,
                 what=f"docker compose up {service}", timeout_s=UP_TIMEOUT_S)  # fmt: skip
        wait_healthy(self.settings, self.project_root, UP_TIMEOUT_S)

    def finish_release(self, release_settings: Settings) -> None:
        write_compose(release_settings, host_architecture(), compose_file(self.project_root))

    def logs(self, service: str, lines: int) -> str:
        return logs(self.settings, self.project_root, service, lines)

    def metrics_store(self) -> MetricsStore:
        # Published on PUBLISH_ADDRESS (0.0.0.0 is reached on loopback); it answers only with the stack's key.
        address = self.settings.publish_address
        host = "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104
        url = f"http://{host}:{self.settings.metrics_port}"
        return MetricsStore(
            url, auth=read_control_keys(self.settings.stack_dir, f"the metrics store at {url}").metrics_auth
        )

    def dashboards(self) -> list[str]:
        compose = docker_engine.installed_compose(self.settings)
        file = compose_file(self.project_root)
        secrets = secrets_dir(self.settings)
        start = f"{SECRETS_DIR_VARIABLE}={secrets} {compose} -f {file} --profile dashboards up -d grafana"
        return [
            f"metrics store      http://127.0.0.1:{self.settings.metrics_port}/vmui   (VictoriaMetrics)",
            f"Grafana            where its image can be pulled: `{start}`, then http://127.0.0.1:{self.settings.grafana_port}",
        ]
