"""What a component's unit declares: how its program runs as a local process and as a container.

Each module of this package is one component (or a family of them): the services it adds to the stack, and a
`Unit` per program saying how each runtime launches it. The renderers loop over the model and ask the unit of
each service's component; they hold no branch per component.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.model import Component, Service, Stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef
from temporal_dsql_deploy.settings.layout import Layout

LOCALHOST = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside a container; only published ports reach the host
# Paths inside the runtime image that docker/Dockerfile lays out.
IMAGE_TEMPORAL_CONFIG = "/etc/temporal/config/temporal.yaml"
IMAGE_DYNAMIC_CONFIG = "/etc/temporal/config/dynamicconfig.yaml"
IMAGE_UI_ROOT = "/etc/temporal/ui"
IMAGE_CACHE_DIR = "/opt/temporal-dsql-deploy/cache"  # the Dockerfile's CACHE_DIR
CONTAINER_TMP = ("/tmp",)  # noqa: S108 - a private tmpfs in each container
SECRETS_MOUNT = "/run/secrets"  # where Compose mounts a service's secrets, one file each


def runtime_image(settings: Settings) -> str:
    """The product's image: Temporal with the plugin, its tools, the UI, dsql-local and this package."""
    return f"{settings.runtime_image}:{settings.temporal_version}"


def postgresql_image(settings: Settings) -> str:
    """PostgreSQL from Debian's package, built here (runtime/stack_images.py)."""
    return f"temporal-dsql-postgresql:{settings.postgres_version}"


def search_engine_image(settings: Settings) -> str:
    """The search engine's runner from Maven Central on Debian's Java, built here (runtime/stack_images.py)."""
    return f"temporal-dsql-{settings.search_engine}:{settings.search_engine_version}"


@dataclass(frozen=True)
class Host:
    """What a local process is given: the settings, where the installed programs are, the stack's state."""

    settings: Settings
    paths: Paths
    layout: Layout


@dataclass(frozen=True)
class Native:
    """A service as a local process: its command line, and the variables it needs beyond the model's."""

    argv: list[str]
    environment: dict[str, EnvValue] = field(default_factory=dict)
    switches_user: bool = False  # argv drops root itself (PostgreSQL, to `postgres`); others run as the services'


@dataclass(frozen=True)
class Container:
    """A service as a container: image, command (None: the image's own), extra variables, volumes, and its limits.

    Every container runs with a read-only root filesystem (what it writes goes to its volumes and `tmpfs`), no
    capabilities, no new privileges, and `memory_mb` at most. A secret in `environment` reaches it as a file:
    the variable name plus `secret_suffix` names the file (the images' entrypoints read NAME_FILE; Grafana's reads
    NAME__FILE); `secrets` mounts more for programs that name the file themselves.
    """

    image: str
    command: list[str] | None = None
    environment: dict[str, EnvValue] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    http_client: Literal["curl", "wget"] = "curl"  # what the image has for an HTTP health check
    memory_mb: int = 256
    tmpfs: tuple[str, ...] = CONTAINER_TMP
    secret_suffix: str = "_FILE"  # noqa: S105 - a variable-name suffix, not a secret
    secrets: tuple[SecretRef, ...] = ()
    profile: str | None = None  # a Compose profile: started only when asked for (`--profile NAME`)


@dataclass(frozen=True)
class ConfigFile:
    """A file Compose mounts into the unit's containers (inline in the rendered file)."""

    name: str
    target: str
    text: str


class Unit(ABC):
    """How one component's program is launched by each runtime."""

    component: Component
    # What its supervisor (process-compose, Docker) sends to stop it; it must stop the program cleanly and promptly.
    stop_signal: signal.Signals = signal.SIGTERM

    @abstractmethod
    def native(self, service: Service, host: Host) -> Native: ...

    @abstractmethod
    def container(self, service: Service, settings: Settings) -> Container: ...

    def config_files(self, stack: Stack, settings: Settings) -> list[ConfigFile]:
        """Files its containers read, rendered from the stack (none unless the unit says so)."""
        return []


class ContainerOnly(Unit):
    """A component the local runtime does not run (the model keeps its services out of that runtime)."""

    def native(self, service: Service, host: Host) -> Native:
        raise DeployError(f"{service.name} runs only under Docker", "start the stack with `--runtime docker`")
