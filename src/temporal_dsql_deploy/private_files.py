"""Files only their owner may read (passwords, generated credentials, a .env with secrets, the stack's state and
logs), and the one translation of the filesystem's refusals to write the stack's state into an error a user can act
on."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError

# errno -> (what it means, what to do there); any other OSError is a bug and keeps its traceback.
_REFUSALS = {
    errno.ENOSPC: ("the filesystem is full", "free space there"),
    errno.EDQUOT: ("the disk quota is used up", "free space there (or raise the quota)"),
    errno.EROFS: ("the filesystem is read-only", "make it writable"),
    errno.EACCES: ("permission denied", f"make it writable for user {os.geteuid()}"),
    errno.EPERM: ("operation not permitted", f"make it writable for user {os.geteuid()}"),
    errno.ENOTDIR: ("a file stands where a directory must be", "move that file away"),
}


# What the stack's own writes, and every process it starts, create files with: no access for group or others.
OWNER_ONLY_UMASK = 0o077


@contextmanager
def owner_only_files() -> Iterator[None]:
    """Meanwhile, whatever this process creates, and whatever the processes it starts create (they inherit the
    umask: logs, the search engine's and the metrics store's data), only its owner may read."""
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def restrict_tree(root: Path, shared_group: int | None = None) -> None:
    """Take every permission of group and others off what this user owns under `root` (made world-readable by an
    earlier version); what another user owns (PostgreSQL's or the services' data) guards itself and is not entered.
    What belongs to `shared_group` (the services', when root runs the stack) keeps its group's permissions. Links
    are left."""
    owner = os.geteuid()
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if _restrict(Path(directory, name), owner, shared_group)]
        _restrict(Path(directory), owner, shared_group)
        for name in files:
            _restrict(Path(directory, name), owner, shared_group)


def _restrict(path: Path, owner: int, shared_group: int | None) -> bool:
    """Make `path` owner-only (or owner and shared group) if this user owns it; True if it is a directory to enter."""
    try:
        status = path.lstat()
    except FileNotFoundError:  # removed meanwhile by a running service
        return False
    if stat.S_ISLNK(status.st_mode) or status.st_uid != owner:
        return False
    kept = 0o750 if status.st_gid == shared_group else 0o700  # the group reads and passes, never writes
    if stat.S_IMODE(status.st_mode) & ~kept:
        path.chmod(stat.S_IMODE(status.st_mode) & kept)
    return stat.S_ISDIR(status.st_mode)


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to `path` with mode 0600, also when the file exists (unless `exclusive`: then it must not).
    Directories made for it are owner-only."""
    with owner_only_files():
        path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextmanager
def state_writes(setting: str, where: Path, *, name_where: bool = False) -> Iterator[None]:
    """Turn a write refused for lack of space or permission under `where` (in the directory `setting` names)
    into one DeployError naming the path (the one refused, or `where` if `name_where`), the cause and the fix."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _REFUSALS:
            raise
        cause, fix = _REFUSALS[exc.errno]
        path = where if name_where else exc.filename or where  # a write(2) on an open file names no path
        raise DeployError(f"cannot write {path}: {cause}", f"{fix}, or set {setting} to another directory") from None


def probe_writable(directory: Path, setting: str) -> None:
    """Fail now, naming the directory, if a file cannot be created in it (read-only, not ours, full)."""
    with (
        state_writes(setting, directory, name_where=True),
        tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-") as probe,
    ):
        probe.write(b"probe")
        probe.flush()
        os.fsync(probe.fileno())  # a full filesystem may refuse only when the data is written out
