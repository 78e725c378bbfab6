"""The unprivileged account the local stack's services run as when the stack is started by root.

Root starts the supervisor (it reads the stack's secrets), and every long-running service it starts drops to the
system user `temporal-dsql` (PostgreSQL to Debian's `postgres`, as before), with no way back (`setpriv
--no-new-privs`). The one-shot jobs are this package's own setup commands and run as the user who started the
stack, as `invoke` itself does (their interpreter may well live in root's home). STACK_DIR stays root's: the
services may pass through it (group `temporal-dsql`, no listing), read their configuration, and write only their
own directories. The supervisor's config, its socket, the secrets and the logs stay root's alone.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program, run_tool
from temporal_dsql_deploy.reporting import Reporter

SERVICE_USER = "temporal-dsql"
SERVICE_HOME = "/nonexistent"  # Debian's convention for a system user with no home


def drops_privileges() -> bool:
    """True when the stack is started by root: its services then run as SERVICE_USER."""
    return os.geteuid() == 0


def as_service_user(argv: list[str]) -> list[str]:
    """`argv` run as SERVICE_USER; setpriv execs it (unlike runuser, which forks), so the supervisor's pid is the
    service's and its signals reach it."""
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", "--no-new-privs",
            "--", *argv]  # fmt: skip


def service_group() -> int:
    return grp.getgrnam(SERVICE_USER).gr_gid


def ensure_service_user(report: Reporter) -> None:
    """Create the system user the services run as, the first time root starts the stack."""
    try:
        account = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        account = None
    if account is not None:
        try:
            group = grp.getgrnam(SERVICE_USER)
        except KeyError:
            group = None
        if group is None or group.gr_gid != account.pw_gid:
            raise DeployError(f"the system user {SERVICE_USER} exists without a group of that name as its primary "
                              "group, which the services and STACK_DIR's passages use",
                              f"give {SERVICE_USER} its own group (`groupadd {SERVICE_USER}`, `usermod -g "
                              f"{SERVICE_USER} {SERVICE_USER}`), or start the stack as an unprivileged user",
                              )  # fmt: skip
        return
    if shutil.which("useradd") is None:
        raise DeployError(f"the stack is started as root, so its services run as the system user {SERVICE_USER}, "
                          "which is missing, and useradd is not here to create it",
                          f"create the user {SERVICE_USER} (with a group of that name), or start the stack as an "
                          "unprivileged user")  # fmt: skip
    report(f"creating the system user {SERVICE_USER} that the services run as when root starts the stack")
    run_tool(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", SERVICE_HOME,
              "--shell", "/usr/sbin/nologin", SERVICE_USER], what=f"useradd {SERVICE_USER}",
             fix="see the message above", timeout_s=60)  # fmt: skip


def check_reachable(paths: dict[str, Path]) -> None:
    """Refuse, naming each, the places the services must read (the checkout, CACHE_DIR) that SERVICE_USER cannot
    reach, such as a checkout under root's own home (0700)."""
    unreachable = [f"{what} {path}" for what, path in paths.items() if not _reachable(path)]
    if unreachable:
        raise DeployError(f"the stack is started as root, so its services run as {SERVICE_USER}, who cannot reach: "
                          + "; ".join(unreachable),
                          "put them where other users may pass (e.g. the checkout under /srv and CACHE_DIR unset: "
                          "as root it is /var/cache/temporal-dsql-deploy), or start the stack as an unprivileged "
                          "user")  # fmt: skip


def _reachable(path: Path) -> bool:
    checked = run_program(as_service_user(["test", "-x", str(path)]),  # passing through is what they need
                          what=f"checking that {SERVICE_USER} can reach {path}", fix="see the message",
                          timeout_s=30)  # fmt: skip
    return checked.returncode == 0


def share_with_services(passages: list[Path], readable: list[Path], owned: list[Path]) -> None:
    """Root's STACK_DIR, opened to the services and no one else: `passages` they may pass through (0710), the files
    and directories of `readable` they may read (0640 / 0750), and `owned` directories theirs to write."""
    gid = service_group()
    for directory in passages:
        os.chown(directory, -1, gid)
        directory.chmod(0o710)
    for path in readable:  # root's own files in root's own directories: no one else can change them meanwhile
        for each in _tree(path):
            os.chown(each, -1, gid, follow_symlinks=False)
            if not each.is_symlink():
                each.chmod(0o750 if each.is_dir() else 0o640)
    user = pwd.getpwnam(SERVICE_USER).pw_uid
    for directory in owned:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.lstat().st_uid != user:  # once theirs, never walked again: they may have put links in it
            _hand_over(directory, user, gid)


def _hand_over(directory: Path, user: int, gid: int) -> None:
    """Give root's `directory` (made now, or by an earlier version) and what root made in it to the services.
    Every step is relative to an open directory and follows no link, and a file with other names (a hard link to
    something else) stays as it is, so nothing outside `directory` can change hands."""
    for _root, subdirectories, files, parent in os.fwalk(directory, topdown=False, follow_symlinks=False):
        for name in (*files, *subdirectories):
            try:
                status = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile
                continue
            if status.st_uid == 0 and not (stat.S_ISREG(status.st_mode) and status.st_nlink > 1):
                os.chown(name, user, gid, dir_fd=parent, follow_symlinks=False)
    os.chown(directory, user, gid, follow_symlinks=False)
    directory.chmod(0o700)


def _tree(root: Path) -> list[Path]:
    """`root` and everything under it, links not followed."""
    if not root.exists():
        return []
    found = [root]
    if stat.S_ISDIR(root.lstat().st_mode):
        for directory, subdirectories, files in os.walk(root):
            found += [Path(directory, name) for name in (*subdirectories, *files)]
    return found
