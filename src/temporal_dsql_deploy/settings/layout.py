"""Where the local stack keeps its state under STACK_DIR: one answer for the runtime, the database and the checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "stack-state.json"


@dataclass(frozen=True)
class Layout:
    """Where the local stack keeps its state under STACK_DIR.

    Data is kept per search engine: Temporal's persistence records which search attributes the
    index maps, so a database and an index only make sense together.
    """

    root: Path
    search_engine: str

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def all_data(self) -> Path:
        return self.root / "data"

    @property
    def data(self) -> Path:
        return self.all_data / self.search_engine

    @property
    def scrape_config(self) -> Path:
        return self.config / "prometheus.yml"

    @property
    def dashboards(self) -> Path:
        """The dashboards the metrics store's UI shows (vmui's format)."""
        return self.config / "dashboards"

    @property
    def metrics_data(self) -> Path:
        """Kept with the engine's data, like the workflows the metrics describe."""
        return self.data / "metrics"

    @property
    def supervisor_config(self) -> Path:
        return self.config / "process-compose.yaml"

    @property
    def socket(self) -> Path:
        return self.root / "process-compose.sock"

    @property
    def secrets(self) -> Path:
        """The secrets the supervisor substitutes into the config at start; 0600, never in the config itself."""
        return self.config / "secrets.env"

    @property
    def sql_password(self) -> Path:
        """The local PostgreSQL's generated password (0600), shared by the data of every engine."""
        return self.all_data / "postgresql.password"

    @property
    def engine_marker(self) -> Path:
        """Which search engine the stack last started from this directory runs."""
        return self.config / "search-engine"

    @property
    def state(self) -> Path:
        """What `up` recorded about the running stack: the supervisor's pid and the services' ports."""
        return self.root / STATE_FILE

    @property
    def release_record(self) -> Path:
        """The Temporal release the stack's data was last brought to (by `up` or `upgrade`); kept with the data."""
        return self.all_data / "temporal-release"

    @property
    def roles(self) -> Path:
        """Each Temporal role's link to the build of the product's server it runs (`role_build`)."""
        return self.root / "roles"

    def role_build(self, service: str) -> Path:
        """The build of the product's server a Temporal role runs: a link into the cache, which `upgrade` moves to
        another release's build before it restarts that role alone."""
        return self.roles / service

    @property
    def runtime_dir(self) -> Path:
        """PostgreSQL's socket directory (only its owner may enter)."""
        return self.root / "run"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"
