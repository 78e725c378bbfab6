"""How the local stack's programs are installed: each once, pinned, built or fetched, cached.

Each component lives in `<cache_dir>/components/<name>/<version>/`; a `.complete` marker written
last makes a second run a no-op and an interrupted build invisible (it is redone, never half-used).
The marker lists the size, mode and mtime of every file it vouches for, so a file deleted, truncated or
stripped of its executable bit since is seen, and the component rebuilt (never half-used either).
Each component's own install is in its unit (runtime/units/); `Paths` records where the programs are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import MARKER, is_owned, make_owned_dir, remove_owned
from temporal_dsql_deploy.private_files import state_writes
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.settings.config import Settings

# The Go toolchain the pinned modules declare (`go 1.26.10`); the go command fetches it from the
# module proxy on first use, so the machine's own Go only has to be 1.21 or newer.
GO_TOOLCHAIN = "go1.26.10"
BUILD_TIMEOUT_S = 1800
COMPLETE_MARKER = ".complete"
LISTLESS_MARKERS = ("ok", "")  # markers without a file list: older versions' "ok", an image's empty one


@dataclass(frozen=True)
class Paths:
    """Where each installed component's programs are."""

    temporal_server: Path
    temporal_es_tool: Path
    ui_server: Path
    process_compose: Path
    grpc_health_probe: Path
    search_engine_lib: Path
    search_engine_main_class: str
    postgres_bin: Path
    temporal_cli: Path
    dsql_local: Path
    victoria_metrics: Path
    postgres_exporter: Path
    search_engine_exporter: Path


def component_dir(settings: Settings, name: str, version: str) -> Path:
    return settings.cache_dir / "components" / name / version


def build_step(argv: list[str], what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    run_tool(argv, what=what, fix="check access to the package registries, then run again", timeout_s=BUILD_TIMEOUT_S,
             env=env, cwd=cwd)  # fmt: skip


class Installer:
    """Installs components once; with `build=False` it only locates them and says what is missing."""

    def __init__(self, report: Reporter, *, build: bool = True, project_root: Path | None = None) -> None:
        self.report = report
        self.build = build
        self.project_root = project_root  # where the Go modules of this repository are (to build them)

    def once(self, target: Path, what: str, build: Callable[[Path], None], programs: tuple[str, ...]) -> Path:
        """Run `build(staging_dir)` unless `target` is already complete and intact, then move it into place.

        `programs`: the files of the component the stack executes (relative to `target`).
        """
        damage = _damage(target, programs)
        if damage is None:
            return target
        installed = (target / COMPLETE_MARKER).exists()
        if not self.build:
            if installed:
                raise _damaged(what, target, damage)
            raise DeployError(f"{what} is not installed (no {target})", "run `invoke up`, which installs it")
        with self._only_install(target, what):
            if _damage(target, programs) is None:
                return target  # the other install made it meanwhile
            self._install(target, what, build, installed, damage)
        return target

    def _only_install(self, target: Path, what: str) -> contextlib.AbstractContextManager[None]:
        """Of two installs of `target` at once (two `up`s, test lanes side by side) one builds, the other waits."""
        with state_writes("CACHE_DIR", target.parent):
            target.parent.mkdir(parents=True, exist_ok=True)
            lock_file = target.with_name(target.name + ".lock")
            lock_file.touch()  # made here, where a refused write is named; the lock only opens it
        return taking_turns(lock_file, f"install of {what} into {target}", self.report)

    def _install(self, target: Path, what: str, build: Callable[[Path], None], installed: bool, damage: str) -> None:
        if installed:
            self.report(f"{what} in {target} is damaged: {damage}; rebuilding it")
        else:
            self.report(f"installing {what} (first time only; cached in {target})")
        staging = target.with_name(target.name + ".partial")
        started = time.monotonic()
        with state_writes("CACHE_DIR", staging):
            self._remove_component_dir(staging)
            make_owned_dir(staging, project_root=self._project_root)  # the product's: removable when redone
            try:
                build(staging)
                _write_marker(staging)
            except BaseException:
                self._remove_component_dir(staging)  # nothing half-made stays, nor the space it took
                raise
            self._remove_component_dir(target)
            staging.rename(target)
        self.report(f"installed {what} in {time.monotonic() - started:.0f}s")

    @property
    def _project_root(self) -> Path:
        # Only the guard's "never the project root" needs it; a locating Installer is given none.
        return self.project_root or Path.cwd()

    def _remove_component_dir(self, directory: Path) -> None:
        """Delete a staging or component directory of the cache through the ownership guard. One made before the
        ownership marker existed is adopted first if it is recognisably the Installer's: `<version>.partial`,
        or holding a completion marker."""
        legacy = directory.is_dir() and not directory.is_symlink() and not is_owned(directory)
        if legacy and (directory.name.endswith(".partial") or (directory / COMPLETE_MARKER).exists()):
            (directory / MARKER).touch()
        remove_owned(directory, project_root=self._project_root)


def _fingerprints(root: Path) -> dict[str, list[int]]:
    """Size, mode and mtime of every file under `root`: a hash would read hundreds of MB at every `up`, and
    what damages a cache (deletion, truncation, chmod, a partial copy) changes one of these."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in {COMPLETE_MARKER, MARKER}:
            status = path.stat()
            found[str(path.relative_to(root))] = [status.st_size, stat.S_IMODE(status.st_mode), status.st_mtime_ns]
    return found


def _write_marker(root: Path) -> None:
    text = json.dumps({"files": _fingerprints(root)}, indent=0)
    (root / COMPLETE_MARKER).write_text(text + "\n", encoding="utf-8")


def _damage(target: Path, programs: tuple[str, ...]) -> str | None:
    """What is wrong with an installed component (None: intact); "not installed" when it never completed."""
    marker = target / COMPLETE_MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "not installed"
    except (OSError, UnicodeDecodeError):
        return f"its marker {marker} is unreadable"
    unusable = next((problem for program in programs if (problem := _unusable(target / program))), None)
    if unusable is not None or text.strip() not in LISTLESS_MARKERS:
        return unusable or _changed(target, text)
    # A marker from before files were listed, or one the image's Dockerfile writes: the programs above are what can
    # be checked; list the files now (best effort: a read-only cache is still usable) instead of rebuilding.
    with contextlib.suppress(OSError):
        _write_marker(target)
    return None


def _unusable(program: Path) -> str | None:
    if not program.is_file():
        return f"{program.name} is missing"
    # The mode, not os.access: a noexec mount is no damage a rebuild would mend (check_programs names it).
    return None if program.stat().st_mode & 0o111 else f"{program.name} is not executable"


def _changed(target: Path, marker_text: str) -> str | None:
    """The first file that differs from what the marker recorded."""
    try:
        recorded: dict[str, list[int]] = json.loads(marker_text)["files"]
    except (ValueError, KeyError, TypeError):
        return f"its marker {target / COMPLETE_MARKER} is damaged"
    present = _fingerprints(target)
    for name, (size, mode, mtime_ns) in recorded.items():
        if name not in present:
            return f"{name} is missing"
        now_size, now_mode, now_mtime_ns = present[name]
        if now_size != size:
            return f"{name} has {now_size} bytes instead of {size}"
        if now_mode != mode:
            return f"{name} has mode {now_mode:o} instead of {mode:o}"
        if now_mtime_ns != mtime_ns:
            return f"{name} was modified after it was installed"
    return None


def _damaged(what: str, target: Path, damage: str) -> DeployError:
    return DeployError(f"{what} in {target} is damaged: {damage}", "run `invoke up`, which reinstalls it")


def can_install_packages() -> bool:
    """Whether this process may install Debian's packages itself (root, with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


# The project's own apt-get runs take turns (`apt-get update` takes its lock without waiting); DPkg::Lock::Timeout
# makes them wait for anyone else's (unattended-upgrades) too.
APT_TURNS = Path("/run/lock/temporal-dsql-deploy-apt.lock")
APT_LOCK_WAIT_S = 600


@contextlib.contextmanager
def taking_turns(lock_file: Path, what: str, report: Reporter, wait_s: float = BUILD_TIMEOUT_S) -> Iterator[None]:
    """Hold `lock_file`'s lock, waiting for another holder (another process doing `what`) at most `wait_s`, and
    saying so. Hand-written over filelock only for the report and the error."""
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        report(f"waiting for another {what} to end")
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise DeployError(f"another {what} still runs after {wait_s:.0f}s",
                              "stop the other `invoke up` or test run, then run again") from None  # fmt: skip
    try:
        yield
    finally:
        lock.release()


def apt_install(packages: tuple[str, ...], report: Reporter, *, recommends: bool = False) -> None:
    """Debian's `packages`, by default without their recommendations (callers check `can_install_packages` first)."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    waits = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"]
    APT_TURNS.parent.mkdir(parents=True, exist_ok=True)  # a container's /run may lack it
    # Waits as long as the other run may take (its update and its install, each up to BUILD_TIMEOUT_S).
    with taking_turns(APT_TURNS, "apt-get run of this project", report, 2 * BUILD_TIMEOUT_S):
        build_step(["apt-get", *waits, "update", "-q"], "apt-get update", env=env)
        build_step(["apt-get", *waits, "install", "-y", "-q", *([] if recommends else ["--no-install-recommends"]),
                    *packages], f"apt-get install {' '.join(packages)}", env=env)  # fmt: skip


def go_env(gobin: Path) -> dict[str, str]:
    return {"GOTOOLCHAIN": GO_TOOLCHAIN, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOBIN": str(gobin)}


def go_install(packages: list[str], staging: Path, what: str, tags: str = "") -> None:
    argv = ["go", "install", "-trimpath", "-ldflags", "-s -w"]
    if tags:
        argv += ["-tags", tags]
    build_step([*argv, *packages], what, env=go_env(staging))


def module_dir(module: str, version: str) -> Path:
    """Where the Go module cache holds `module` at `version`, downloaded first if it is not there yet (`go list -m`
    would name no directory for a module it has not downloaded)."""
    what = f"downloading {module}@{version}"
    fix = "check access to the Go module proxy (GOPROXY), then run again"
    output = run_tool(["go", "mod", "download", "-json", f"{module}@{version}"], what=what, fix=fix, timeout_s=600,
                      env=go_env(Path()))  # fmt: skip
    directory = json.loads(output).get("Dir") if output.strip().startswith("{") else None
    if not directory:
        raise DeployError(f"{what} named no directory in the module cache: {output.strip()[-300:]}", fix)
    return Path(directory)


def copy_schema(source: Path, destination: Path) -> None:
    """Keep a copy of a server's schema files beside the binaries that use them."""
    shutil.copytree(source, destination, copy_function=shutil.copyfile, dirs_exist_ok=True)
    for directory, _, _ in os.walk(destination):
        Path(directory).chmod(0o755)  # the module cache is read-only; the copy must be removable


def server_module_dir(version: str) -> Path:
    """Where the Go module cache holds go.temporal.io/server at `version` (downloaded if needed)."""
    return module_dir("go.temporal.io/server", version)


def newest_build(settings: Settings, name: str, what: str, programs: tuple[str, ...], version: str = "") -> Path:
    """Locating only: the newest complete build of a component built from this repository (of `version`, where its
    builds are named for the version they are of), if intact."""
    builds = sorted((settings.cache_dir / "components" / name).glob(f"{version}*/" + COMPLETE_MARKER),
                    key=lambda marker: marker.stat().st_mtime)  # fmt: skip
    if not builds:
        raise DeployError(f"{what}{version and f' {version}'} is not installed", "run `invoke up`, which builds it")
    damage = _damage(builds[-1].parent, programs)
    if damage is not None:
        raise _damaged(what, builds[-1].parent, damage)
    return builds[-1].parent


def source_digest(module: Path) -> str:
    """A version for a Go module of this repository: the digest of its sources, so any change rebuilds it."""
    digest = hashlib.sha256()
    for path in sorted(module.rglob("*")):
        built = path.suffix == ".go" and not path.name.endswith("_test.go")  # tests do not change the program
        build_list = path.name.startswith("go.") and path.suffix in {".mod", ".sum"}  # go.mod, go.1.30.mod, ...
        if path.is_file() and (built or build_list):
            digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
