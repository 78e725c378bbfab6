"""The images the Docker runtime runs, built here: the runtime image, PostgreSQL's and the search engine's.

On this machine's own architecture the programs are the local runtime's installs (the same builds, cached);
for another architecture they are cross-compiled (`build.build_binaries`). Every image is built only when what
goes into it changed (runtime/images.py).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.components import install_grpc_health_probe
from temporal_dsql_deploy.runtime.images import BaseImage, ImageRecipe, build_image
from temporal_dsql_deploy.runtime.installer import Installer, build_step, component_dir
from temporal_dsql_deploy.runtime.units.base import postgresql_image, runtime_image, search_engine_image
from temporal_dsql_deploy.runtime.units.dsql_local import install_dsql_local
from temporal_dsql_deploy.runtime.units.exporters import EXPORTERS, install_exporters
from temporal_dsql_deploy.runtime.units.metrics_store import install_victoria_metrics
from temporal_dsql_deploy.runtime.units.search_engine import install_search_engine, search_engine_artifact
from temporal_dsql_deploy.runtime.units.temporal_server import install_product_server, install_temporal_server
from temporal_dsql_deploy.runtime.units.temporal_ui import install_ui_server
from temporal_dsql_deploy.settings.config import Architecture, Settings, host_architecture
from temporal_dsql_deploy.temporal.installed import TemporalServer

RUNTIME_BASE = BaseImage("runtime", ("ca-certificates", "curl", "python3"))
SEARCH_ENGINE_BASE = BaseImage("java", ("ca-certificates", "curl", "openjdk-17-jre-headless"))
# wheels for the image's Python (Debian bookworm's 3.11, glibc 2.36) per architecture
PYTHON_VERSION = "3.11"
UV_VERSION = "0.13.8"  # the uv that installs them: the one ./run bootstraps (tests/unit/test_supply_chain.py)
PYTHON_PLATFORMS = {"amd64": "x86_64-manylinux_2_28", "arm64": "aarch64-manylinux_2_28"}
TOOLS = ("ui-server", "grpc-health-probe", "dsql-local", "victoria-metrics", *EXPORTERS)


def postgresql_base(settings: Settings) -> BaseImage:
    return BaseImage("postgresql", ("ca-certificates", f"postgresql-{settings.postgres_version}"))


def _uv() -> str:
    """The uv ./run bootstrapped (UV_VERSION): it installs the image's packages with their recorded hashes."""
    uv = shutil.which("uv")
    if uv is None:
        raise DeployError("uv is not on PATH, and the image's Python packages are installed with it",
                          "run the command through `./run`, which installs uv")  # fmt: skip
    version = run_tool([uv, "--version"], what="uv --version", fix="run through `./run`", timeout_s=60).split()
    if version[1:2] != [UV_VERSION]:
        raise DeployError(f"{uv} is {' '.join(version)}, not uv {UV_VERSION}",
                          "run the command through `./run`, which puts the pinned uv first on PATH")  # fmt: skip
    return uv


def _target(staging: Path, arch: Architecture) -> list[str]:
    return ["--target", str(staging), "--python-platform", PYTHON_PLATFORMS[arch], "--python-version", PYTHON_VERSION,
            "--no-deps", "--quiet"]  # fmt: skip


def install_image_dependencies(settings: Settings, project_root: Path, arch: Architecture,
                               installer: Installer) -> Path:  # fmt: skip
    """The locked dependencies (uv.lock, hashes required) for the image's Python; a layer of their own, so a change
    to this package alone rebuilds neither them nor their layer."""
    uv = _uv()
    # Keyed by what is exported, not by uv.lock: a change to the test or lint tools rebuilds nothing here.
    requirements = run_tool([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", "--quiet"],
                            what="uv export of the locked dependencies", fix="check uv.lock (`uv lock --check`)",
                            timeout_s=120, cwd=project_root)  # fmt: skip
    lock = hashlib.sha256(requirements.encode()).hexdigest()[:16]

    def build(staging: Path) -> None:
        listed = staging.parent / f"{staging.name}.requirements.txt"
        listed.write_text(requirements, encoding="utf-8")
        try:
            build_step([uv, "pip", "install", *_target(staging, arch), "--require-hashes", "-r", str(listed)],
                       f"installing the image's Python dependencies for {arch}")  # fmt: skip
        finally:
            listed.unlink(missing_ok=True)
        for script in (staging / "bin").iterdir():  # the programs stay (dsql-lint, temporal); the scripts name this
            if script.read_bytes()[:2] == b"#!":  # machine's interpreter and are not needed in the image
                script.unlink()

    target = component_dir(settings, "image-python-dependencies", f"{arch}-{lock}")
    return installer.once(target, f"the image's Python dependencies ({arch})", build, ())


def install_image_package(settings: Settings, project_root: Path, arch: Architecture, installer: Installer) -> Path:
    """This package (its sources, schemas and templates) for the image's Python."""
    uv = _uv()

    def build(staging: Path) -> None:
        build_step([uv, "pip", "install", *_target(staging, arch), str(project_root)],
                   "installing this package for the image")  # fmt: skip

    target = component_dir(settings, "image-python-package", f"{arch}-{source_digest_of_package(project_root)}")
    return installer.once(target, "this package for the image", build, ())


def source_digest_of_package(project_root: Path) -> str:
    """What the package is made from: its project file and its sources."""
    digest = hashlib.sha256((project_root / "pyproject.toml").read_bytes())
    for path in sorted((project_root / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project_root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def runtime_programs(settings: Settings, project_root: Path, arch: Architecture, report: Reporter,
                     cross_built: Path | None) -> dict[str, Path]:  # fmt: skip
    """The runtime image's programs for `arch`, by their place in the build context: the local runtime's installs on
    this machine's architecture, else what `build.build_binaries` cross-compiled into `cross_built`."""
    if arch == host_architecture():
        # The local runtime's builds of exactly these (no host PostgreSQL, Java or supervisor is needed here).
        installer = Installer(report, project_root=project_root)
        upstream = TemporalServer(install_temporal_server(settings, installer))
        exporters = install_exporters(settings, installer)
        tools = {"ui-server": install_ui_server(settings, installer) / "server",
                 "grpc-health-probe": install_grpc_health_probe(settings, installer) / "grpc-health-probe",
                 "dsql-local": install_dsql_local(settings, installer) / "dsql-local",
                 "victoria-metrics": install_victoria_metrics(settings, installer) / "victoria-metrics",
                 **{name: exporters / name for name in EXPORTERS}}  # fmt: skip
        server = install_product_server(settings, installer) / "temporal-server"
    elif cross_built is not None:
        upstream = TemporalServer(cross_built / "temporal-server")
        tools = {name: cross_built / "tools" / name for name in TOOLS}
        server = upstream.server
    else:
        raise DeployError(f"the {arch} programs are not built", f"run `invoke build --arch {arch}`, which builds them")
    return {
        "temporal-server/server": server,
        "temporal-server/sql": upstream.sql_tool,
        "temporal-server/elasticsearch": upstream.es_tool,
        "temporal-server/schema": upstream.schema_dir,
        **{f"tools/{name}": path for name, path in tools.items()},
    }


def image_reference(reference: str, arch: Architecture) -> str:
    """This machine's architecture keeps the plain tag (what the compose file names); another's is suffixed, so
    building it never replaces the image the local stack runs."""
    return reference if arch == host_architecture() else f"{reference}-{arch}"


def runtime_recipe(settings: Settings, project_root: Path, arch: Architecture, report: Reporter,
                   cross_built: Path | None = None) -> ImageRecipe:  # fmt: skip
    docker = project_root / "docker"
    installer = Installer(report, project_root=project_root)
    return ImageRecipe(
        image_reference(runtime_image(settings), arch), RUNTIME_BASE, docker / "Dockerfile",
        {**runtime_programs(settings, project_root, arch, report, cross_built),
         "python-dependencies": install_image_dependencies(settings, project_root, arch, installer),
         "python": install_image_package(settings, project_root, arch, installer),
         "templates": project_root / "src" / "temporal_dsql_deploy" / "templates",
         "entrypoint.sh": docker / "entrypoint.sh"},
        (("TEMPORAL_VERSION", settings.temporal_version),),
    )  # fmt: skip


def build_runtime_image(settings: Settings, project_root: Path, arch: Architecture, report: Reporter,
                        cross_built: Path) -> str:  # fmt: skip
    """The runtime image alone, for `arch` (what a cluster of `arch` machines runs), from the programs in
    `cross_built`; its reference."""
    recipe = runtime_recipe(settings, project_root, arch, report, cross_built)
    build_image(recipe, arch, settings, report)
    return recipe.reference


def stack_recipes(settings: Settings, project_root: Path, arch: Architecture, report: Reporter) -> list[ImageRecipe]:
    installer = Installer(report, project_root=project_root)
    docker = project_root / "docker"
    runtime = runtime_recipe(settings, project_root, arch, report)
    postgresql = ImageRecipe(
        postgresql_image(settings), postgresql_base(settings), docker / "postgresql.Dockerfile",
        {"entrypoint.sh": docker / "postgresql-entrypoint.sh"}, (("POSTGRES_VERSION", settings.postgres_version),),
    )  # fmt: skip
    engine = install_search_engine(settings, installer)
    search = ImageRecipe(
        search_engine_image(settings), SEARCH_ENGINE_BASE, docker / "search-engine.Dockerfile",
        {"lib": engine / "lib", "entrypoint.sh": docker / "search-engine-entrypoint.sh"},
        (("MAIN_CLASS", search_engine_artifact(settings)[3]),),
    )  # fmt: skip
    return [runtime, postgresql, search]


def build_stack_images(settings: Settings, project_root: Path, arch: Architecture, report: Reporter) -> list[str]:
    """Every image the Docker runtime runs, for `arch`, each built only if what goes into it changed."""
    recipes = stack_recipes(settings, project_root, arch, report)
    for recipe in recipes:
        build_image(recipe, arch, settings, report)
    return [recipe.reference for recipe in recipes]
