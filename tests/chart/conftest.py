"""The generated chart through helm and Kubernetes' own schemas, offline: helm (pinned) is built once into the
project's cache, like any component."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_dsql_deploy.kubernetes.chart import write_chart
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.settings.config import Settings, load_settings
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.chart


@pytest.fixture(scope="session")
def settings() -> Settings:
    """This checkout's settings, for its cache (where helm is built once); the chart's values do not depend on them
    beyond the defaults the tests override."""
    return load_settings(PROJECT_ROOT)


@pytest.fixture(scope="session")
def installer() -> Installer:
    return Installer(print, project_root=PROJECT_ROOT)


@pytest.fixture(scope="session")
def chart(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as `invoke chart` writes it from a checkout that has deployed no cluster (the common case)."""
    return write_chart(settings.model_copy(update={"temporal_sql_host": "127.0.0.1"}),
                       tmp_path_factory.mktemp("chart") / "temporal-dsql")  # fmt: skip
