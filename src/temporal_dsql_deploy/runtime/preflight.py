"""Checks `invoke up` makes before it starts anything, so a machine that cannot run the stack says why at once."""

from __future__ import annotations

import shutil
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError

MIN_FREE_BYTES = 1 << 30  # PostgreSQL's WAL, the search engine's first segments and the logs of a first run
# Elasticsearch and OpenSearch place no shard on a disk past their high watermark, and make indexes read-only
# past the flood stage (95%): visibility would stop with no error from Temporal.
SEARCH_ENGINE_HIGH_WATERMARK = 0.90


def _existing(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def check_disk_space(stack_dir: Path) -> None:
    """Fail unless STACK_DIR's filesystem has room for the stack's data and is under the search engine's watermark."""
    usage = shutil.disk_usage(_existing(stack_dir))
    used = (usage.total - usage.free) / usage.total if usage.total else 1.0
    if usage.free >= MIN_FREE_BYTES and used < SEARCH_ENGINE_HIGH_WATERMARK:
        return
    raise DeployError(
        f"STACK_DIR {stack_dir} is on a filesystem with {usage.free / 2**20:.0f} MiB free ({used:.0%} used); the "
        f"local stack needs at least {MIN_FREE_BYTES >> 20} MiB free and a disk under "
        f"{SEARCH_ENGINE_HIGH_WATERMARK:.0%} full (past that the search engine refuses its index)",
        "free space there, or set STACK_DIR to a directory on a larger filesystem",
    )
