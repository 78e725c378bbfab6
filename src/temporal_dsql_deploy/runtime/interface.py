"""One interface over the runtimes the stack runs under (`targets.runtime_for` picks the implementation).

Operations (up, down, status, restart, logs, top) speak to a `StackRuntime` and never ask which runtime it is;
a new target (Kubernetes, several hosts) is a new implementation here, not a branch in every operation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.model import Runtime, Stack
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings


@dataclass(frozen=True)
class ServiceRow:
    """One service as `status` shows it, whatever runs it."""

    name: str
    state: str
    health: str  # healthy, unhealthy, done, exit N, or -
    ports: str
    ok: bool


class StackRuntime(ABC):
    """The stack under one runtime: start, stop, look at and restart its services."""

    kind: Runtime
    starting: str  # what the operator sees while `up` runs

    def __init__(self, settings: Settings, project_root: Path) -> None:
        self.settings = settings
        self.project_root = project_root

    @property
    def model(self) -> Stack:
        """The services this runtime runs."""
        return build_stack(self.settings).in_runtime(self.kind)

    @abstractmethod
    def up(self, report: Reporter) -> list[ServiceRow]:
        """Start what is not running and wait until every service is healthy (one-shots done)."""

    @abstractmethod
    def deletable_data(self) -> str:
        """What `down(volumes=True)` deletes, in words; refuses (DeployError) before any question if it may not."""

    @abstractmethod
    def down(self, *, volumes: bool) -> list[str]:
        """Stop the stack (and delete its data with `volumes`); what was done, a line each."""

    @abstractmethod
    def status(self) -> list[ServiceRow]:
        """Every service's state; raises when the stack is not running."""

    @abstractmethod
    def restart(self, targets: list[str], report: Reporter) -> list[str]:
        """Restart `targets` (names of the model) and wait for health; the names, in the order restarted."""

    @abstractmethod
    def wait_healthy(self, timeout_s: float) -> None:
        """Return once every service is healthy (one-shots done); DeployError naming what is not, after `timeout_s`."""

    @abstractmethod
    def main_pid(self, service: str) -> int:
        """The host's process id of the service's program, 0 when it is not running (what a crash would kill)."""

    @abstractmethod
    def stop_service(self, service: str) -> None:
        """Stop one service and leave it stopped (its supervisor does not restart it)."""

    @abstractmethod
    def start_service(self, service: str) -> None:
        """Start a service `stop_service` stopped."""

    @abstractmethod
    def prepare_release(self, release_settings: Settings, report: Reporter) -> None:
        """Build what the stack needs to run the release `release_settings` name (once; cached)."""

    @abstractmethod
    def check_replaceable(self) -> None:
        """Fail (DeployError) unless the running stack's Temporal roles can be replaced one at a time."""

    @abstractmethod
    def schema_version(self) -> str | None:
        """The schema version the stack's database holds, where this host reaches it (None: it does not)."""

    @abstractmethod
    def migrate(self, release_settings: Settings, report: Reporter) -> list[str]:
        """Bring the schema and the index template to the release `release_settings` name, from where the stack's
        database and search engine are reached, while every role still runs; what was done, a line each."""

    @abstractmethod
    def replace_release(self, service: str, release_settings: Settings) -> None:
        """Run the Temporal role `service` (all its hosts) on the release `release_settings` name, the rest of the
        stack untouched; return once every service is healthy again."""

    @abstractmethod
    def finish_release(self, release_settings: Settings) -> None:
        """Once every role runs the release: what the runtime keeps of the stack's configuration says so."""

    @abstractmethod
    def logs(self, service: str, lines: int) -> str:
        """The last `lines` of one service's log, or of every service's for ""."""

    @abstractmethod
    def metrics_store(self) -> MetricsStore:
        """The stack's metrics store, with what it takes to ask it."""

    @abstractmethod
    def dashboards(self) -> list[str]:
        """Where the dashboards are, for the operator: lines to print after `up`."""
