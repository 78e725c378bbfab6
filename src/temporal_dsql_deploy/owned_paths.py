"""The one way the product deletes: only what it created and marked, never a path that holds anything else.

A directory the product creates (STACK_DIR, its data directory, config/dashboards, a component's cache directory)
carries the marker file `MARKER`. Only a directory's OWN marker makes it deletable: a marker in a parent (say, a
directory once used as STACK_DIR) makes nothing below it the product's. The product's deletes of a sub-path that
cannot carry a marker (PostgreSQL's half-made data directory: initdb wants it empty) name the marked directory
that holds it (`owner=`). Single files the product writes in the project (the rendered compose file, Terraform's
plan, a deploy-generated .env) are on `GENERATED_FILES`. Everything else is refused with a DeployError naming the
path and why, whatever the settings say: this guard holds even if the validation of STACK_DIR or CACHE_DIR is
bypassed.

A STACK_DIR made before the marker existed is recognised only where earlier versions put it by default,
`<project root>/.stack`, and only if it holds nothing but what the product makes there (`LEGACY_STACK_ENTRIES`);
`adopt_stack_dir` marks it. Any other unmarked directory is refused, and the error says how to mark it by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.envfile import generated_by_deploy
from temporal_dsql_deploy.settings.paths import forbidden_directory, real_path

MARKER = ".temporal-dsql-deploy-owned"
# Files the product writes into the project, relative to its root; the .env only when `invoke deploy` wrote it.
GENERATED_FILES = ("compose/docker-compose.yml", "terraform/tfplan", ".env")
# What the product makes directly in STACK_DIR (runtime/render_supervisor.Layout; a unit test keeps them equal).
LEGACY_STACK_ENTRIES = frozenset({"config", "logs", "data", "run", "process-compose.sock", "stack-state.json", MARKER})
DEFAULT_STACK_DIR = ".stack"


def _marked(directory: Path) -> bool:
    """`directory` carries its own marker (a symlink never counts: what it points to is not the product's)."""
    return not directory.is_symlink() and directory.is_dir() and (directory / MARKER).is_file()


def is_legacy_stack_dir(path: Path, *, project_root: Path) -> bool:
    """`path` is an unmarked STACK_DIR an earlier version made: the default place, nothing but the product's in it."""
    if path.is_symlink() or not path.is_dir() or real_path(path) != real_path(project_root) / DEFAULT_STACK_DIR:
        return False
    return all(entry.name in LEGACY_STACK_ENTRIES for entry in path.iterdir())


def _claimed(directory: Path, project_root: Path) -> bool:
    return _marked(directory) or is_legacy_stack_dir(directory, project_root=project_root)


def _refusal(path: Path, project_root: Path, owner: Path | None) -> str | None:
    """Why `path` may not be deleted, or None if it is the product's."""
    if path.is_symlink():
        return f"it is a symbolic link (to {path.readlink()}), not a directory the product created"
    resolved = real_path(path)
    if reason := forbidden_directory(resolved, project_root):
        return f"it is {reason}"
    if not path.is_dir():
        return _file_refusal(resolved, project_root)
    if owner is not None:
        return _owner_refusal(resolved, owner, project_root)
    if not _claimed(path, project_root):
        return f"the product did not create it (no {MARKER} marker in it)"
    return None


def _owner_refusal(resolved: Path, owner: Path, project_root: Path) -> str | None:
    if not _claimed(owner, project_root):
        return f"{owner}, named as holding it, carries no {MARKER} marker"
    if real_path(owner) not in resolved.parents:
        return f"it is not inside {owner}"
    return None


def _file_refusal(resolved: Path, project_root: Path) -> str | None:
    if resolved not in {(real_path(project_root) / name) for name in GENERATED_FILES}:
        return "it is not a file the product generates"
    if resolved.name == ".env" and not generated_by_deploy(resolved):
        return "it was not written by `invoke deploy` (it holds your settings)"
    return None


def check_owned(path: Path, *, project_root: Path, owner: Path | None = None) -> None:
    """Raise unless `path` (if it exists) is the product's to delete: marked itself, or inside `owner`, a directory
    that carries its own marker."""
    if not path.exists() and not path.is_symlink():
        return
    if reason := _refusal(path, project_root, owner):
        fix = f"check STACK_DIR and CACHE_DIR in .env; if {path} really is to go, delete it yourself"
        if MARKER in reason:  # an unmarked directory: it may be one an earlier version made, which only its user knows
            marked = owner if owner is not None else path
            fix += f"; if {marked} is a stack directory this product made, mark it as such: touch {marked / MARKER}"
        raise DeployError(f"refusing to delete {path}: {reason}", fix)


def remove_owned(path: Path, *, project_root: Path, owner: Path | None = None) -> None:
    """Delete `path` (a directory tree or a generated file) if it is the product's (see `check_owned`)."""
    check_owned(path, project_root=project_root, owner=owner)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check_claimable(path: Path, *, project_root: Path) -> None:
    """Raise unless `make_owned_dir(path)` would succeed; writes nothing."""
    resolved = real_path(path)
    if reason := forbidden_directory(resolved, project_root):
        raise DeployError(f"refusing to use {path} as a directory of the product: it is {reason}",
                          "set STACK_DIR / CACHE_DIR in .env to a directory of its own")  # fmt: skip
    if resolved.is_dir() and not _claimed(resolved, project_root) and any(resolved.iterdir()):
        raise DeployError(
            f"{path} already holds files the product did not create",
            "choose a new or empty directory (the product deletes what it keeps there); if it is a stack directory "
            f"of an earlier version, mark it as the product's: touch {resolved / MARKER}",
        )


def make_owned_dir(path: Path, *, project_root: Path, mode: int = 0o777) -> Path:
    """Create `path` (with its parents) if missing and mark it as the product's; return it.

    A symlink is followed (a STACK_DIR on a bigger disk): the directory it points to is marked. An existing
    directory is marked only if it is empty or already carries its own marker: one that holds anything else
    stays unmarked, so nothing in it can ever be deleted.
    """
    check_claimable(path, project_root=project_root)
    resolved = real_path(path)
    resolved.mkdir(parents=True, exist_ok=True, mode=mode)
    (resolved / MARKER).touch()
    return path


def is_owned(path: Path) -> bool:
    """`path` carries its own marker."""
    return _marked(path)


def adopt_stack_dir(stack_dir: Path, *, project_root: Path) -> bool:
    """Mark an earlier version's STACK_DIR (see `is_legacy_stack_dir`); True if it was adopted. Callers that ask
    before deleting adopt only after the user said yes."""
    if not is_legacy_stack_dir(stack_dir, project_root=project_root):
        return False
    (stack_dir / MARKER).touch()
    return True
