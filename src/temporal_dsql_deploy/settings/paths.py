"""Which directories can never be the product's own: the one rule settings and the deletion guard share."""

from __future__ import annotations

import os
from pathlib import Path


def real_path(path: Path) -> Path:
    # os.path.realpath, unlike Path.resolve on Python 3.11, never raises (a symlink loop stays as it is).
    return Path(os.path.realpath(path))


def forbidden_directory(real: Path, project_root: Path) -> str | None:
    """Why the resolved directory `real` may never be the product's (created, marked or deleted), or None."""
    root = real_path(project_root)
    try:
        home: Path | None = real_path(Path.home())
    except RuntimeError:  # no home directory to protect
        home = None
    if real == Path(real.anchor):
        return "the root directory"
    if real == home:
        return "the home directory"
    if real == root:
        return "the project root"
    if real in root.parents:
        return "a parent of the project root"
    return None
