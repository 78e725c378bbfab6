"""The unprivileged account the local stack's services run as when the stack is started by root.

Root starts the supervisor (it needs to read the stack's secrets and bind nothing privileged), and every service it
starts drops to the system user `temporal-dsql` (PostgreSQL to Debian's `postgres`, as before), with no way back
(`setpriv --no-new-privs`). STACK_DIR stays root's: the services may pass through it (group `temporal-dsql`, no
listing), read their configuration, and write only their own directories. The supervisor's config, its socket,
the secrets and the logs stay root's alone.
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
        pwd.getpwnam(SERVICE_USER)
        return
    except KeyError:
        pass
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
    checked = run_program(as_service_user(["test", "-r", str(path), "-a", "-x", str(path)]),
                          what=f"checking that {SERVICE_USER} can reach {path}", fix="see the message",
                          timeout_s=30)  # fmt: skip
    return checked.returncode == 0


def share_with_services(passages: list[Path], readable: list[Path], owned: list[Path]) -> None:
    """Root's STACK_DIR, opened to the services and no one else: `passages` they may pass through (0710), the files
    and directories of `readable` they may read (0640 / 0750), and `owned` directories (each with all it holds)
    theirs to write."""
    gid = service_group()
    for directory in passages:
        os.chown(directory, -1, gid)
        directory.chmod(0o710)
    for path in readable:
        for each in _tree(path):
            os.chown(each, -1, gid, follow_symlinks=False)
            if not each.is_symlink():
                each.chmod(0o750 if each.is_dir() else 0o640)
    user = pwd.getpwnam(SERVICE_USER).pw_uid
    for directory in owned:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for each in _tree(directory):
            if each.lstat().st_uid == 0:  # made by root (an earlier version, or a root task since)
                os.chown(each, user, gid, follow_symlinks=False)
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
