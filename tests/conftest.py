"""Shared fixtures: settings isolated from the developer's own .env and environment."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from invoke import Collection

from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.service_account import drops_privileges, ensure_service_user
from temporal_dsql_deploy.settings.config import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# An access key id of the form DSQL_LOCAL_ACCESS_KEY_ID takes, plainly not a real one.
FAKE_ACCESS_KEY_ID = "LOCALTESTKEY" + "0" * 8
# Settings of a real-looking DSQL endpoint (nothing connects to it in unit tests).
DSQL = {
    "TEMPORAL_SQL_HOST": "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
    "TEMPORAL_SQL_PORT": "5432",
    "TEMPORAL_SQL_PLUGIN": "dsql",
    "TEMPORAL_SQL_TLS_ENABLED": "true",
    "TEMPORAL_SQL_IAM_AUTH": "true",
    "AWS_REGION": "us-east-1",
}


def pytest_configure(config: pytest.Config) -> None:
    """Run as root, the tests start PostgreSQL and the services as `invoke up` does: as the services' account,
    which `up` creates the first time (service_account.py). Created once, before any xdist worker starts (a worker
    has `workerinput`), so that two workers never race to create it."""
    if not hasattr(config, "workerinput") and drops_privileges():
        ensure_service_user(print)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every variable the settings read, so tests see only what they set."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DOCKER_ARCH", "amd64")  # golden files must not depend on the machine
    return monkeypatch


@pytest.fixture
def make_settings(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Settings from the given variables only (no .env of the developer's)."""

    def make(**variables: str) -> Settings:
        for name, value in variables.items():
            clean_env.setenv(name, value)
        return load_settings(tmp_path)

    return make


def load_tasks() -> Collection:
    """The project's tasks.py collection, imported as Invoke imports it."""
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        import tasks  # noqa: PLC0415

        collection: Collection = tasks.namespace
        return collection
    finally:
        sys.path.remove(str(PROJECT_ROOT))


def fake_paths(root: Path) -> Paths:
    """Where each program would be, for renderers; nothing is installed there."""
    return Paths(
        temporal_server=root / "server", temporal_es_tool=root / "es", ui_server=root / "ui",
        process_compose=root / "pc", grpc_health_probe=root / "probe", search_engine_lib=root / "lib",
        search_engine_main_class="Main", postgres_bin=root / "pg", temporal_cli=root / "temporal",
        dsql_local=root / "dsql-local", victoria_metrics=root / "victoria-metrics",
        postgres_exporter=root / "postgres_exporter", search_engine_exporter=root / "elasticsearch_exporter",
    )  # fmt: skip
