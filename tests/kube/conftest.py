"""The chart installed into a control plane of its own (tests/kube/control_plane.py), started once for the session
and stopped after it; its programs are built once into the project's cache like any component."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_dsql_deploy.kubernetes.chart import write_chart
from temporal_dsql_deploy.kubernetes.tools import CONTROL_PLANE
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.settings.config import Settings, load_settings
from tests.conftest import PROJECT_ROOT
from tests.kube.control_plane import ControlPlane

pytestmark = pytest.mark.kube


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(PROJECT_ROOT)


@pytest.fixture(scope="session")
def installer() -> Installer:
    return Installer(print, project_root=PROJECT_ROOT)


@pytest.fixture(scope="session")
def cluster(
    settings: Settings, installer: Installer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    programs = {tool.name: tool.install(settings, installer) for tool in CONTROL_PLANE}
    plane = ControlPlane(programs, tmp_path_factory.mktemp("control-plane"))
    try:
        plane.start()
        print("control plane up: " + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in plane.timings.items()))
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def chart(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as a checkout that has deployed no cluster writes it."""
    return write_chart(settings.model_copy(update={"temporal_sql_host": "127.0.0.1"}),
                       tmp_path_factory.mktemp("chart") / "temporal-dsql")  # fmt: skip
