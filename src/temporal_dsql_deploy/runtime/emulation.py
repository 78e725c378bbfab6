"""Running another architecture's programs here, to make its base image and check its image: qemu-user-static
through binfmt_misc (Debian's packages), registered with the F flag so that it works in chroots and containers.

What this module registers or mounts it undoes when the build is over: the machine is left as found.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporal_dsql_deploy.process import run_program
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.installer import apt_install, can_install_packages
from temporal_dsql_deploy.settings.config import Architecture

BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_FORMATS = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}
PACKAGES = ("qemu-user-static", "binfmt-support", "arch-test")  # arch-test: mmdebstrap's check for a foreign arch


def _run(argv: list[str]) -> bool:
    return run_program(argv, what=argv[0], fix="see its output", timeout_s=120).returncode == 0


@contextmanager
def emulating(arch: Architecture, report: Reporter) -> Iterator[str | None]:
    """Inside: `arch` programs run here (None), or why they cannot (a reason to print)."""
    fmt = QEMU_FORMATS[arch]
    if (BINFMT / fmt).is_file() and (BINFMT / fmt).read_text(encoding="utf-8").startswith("enabled"):
        yield None  # someone else's registration: used, left alone
        return
    if not can_install_packages():
        yield f"no {arch} emulation is registered here (binfmt_misc {fmt}), and only root on Debian can register it"
        return
    # As found before anything is installed: the packages' own scripts may mount and register formats too.
    was_mounted, was_enabled = (BINFMT / "register").exists(), _enabled_formats()
    try:
        if shutil.which("update-binfmts") is None or shutil.which("arch-test") is None:
            report(f"installing Debian's {', '.join(PACKAGES)} to run {arch} programs (first time only)")
            apt_install(PACKAGES, report)
        if not (BINFMT / "register").exists():
            _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
        enabled = _run(["update-binfmts", "--enable", fmt])
        yield None if enabled else f"update-binfmts --enable {fmt} failed (is binfmt_misc available to this kernel?)"
    finally:
        for added in sorted(_enabled_formats() - was_enabled):
            _run(["update-binfmts", "--disable", added])
        if not was_mounted and (BINFMT / "register").exists():
            _run(["umount", str(BINFMT)])


def _enabled_formats() -> set[str]:
    """The binfmt_misc formats registered and enabled now."""
    if not (BINFMT / "register").exists():
        return set()
    return {entry.name for entry in BINFMT.iterdir() if entry.name not in {"register", "status"}
            and entry.read_text(encoding="utf-8").startswith("enabled")}  # fmt: skip
