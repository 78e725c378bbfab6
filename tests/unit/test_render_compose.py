from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.runtime.render_compose import render_compose, write_compose
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings

MakeSettings = Callable[..., Settings]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "docker-compose.amd64.yml"


def _validate_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_matches_golden_file(make_settings: MakeSettings) -> None:
    settings = make_settings()
    text = render_compose(build_stack(settings), settings, "amd64")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "rendering changed; rerun with UPDATE_GOLDEN=1 and review"


def test_rendering_is_deterministic(make_settings: MakeSettings) -> None:
    settings = make_settings()
    assert render_compose(build_stack(settings), settings, "arm64") == render_compose(
        build_stack(settings), settings, "arm64"
    )


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_every_service_follows_the_architecture_and_validates(
    make_settings: MakeSettings, tmp_path: Path, arch: str, engine: str
) -> None:
    settings = make_settings(SEARCH_ENGINE=engine)
    path = write_compose(settings, arch, tmp_path / "docker-compose.yml")  # type: ignore[arg-type]
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {service["platform"] for service in document["services"].values()} == {f"linux/{arch}"}
    result = _validate_compose_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  x:\n    image: a\n    depends_on: {y: {condition: sometimes}}\n", encoding="utf-8")
    assert _validate_compose_schema(broken).returncode != 0


def test_dependencies_and_health_checks_come_from_the_model(make_settings: MakeSettings) -> None:
    settings = make_settings()
    stack = build_stack(settings)
    document = yaml.safe_load(render_compose(stack, settings, "amd64"))
    for service in stack:
        rendered = document["services"][service.name]
        expected = {name: {"condition": condition.value} for name, condition in service.depends_on.items()}
        assert rendered.get("depends_on", {}) == expected
        assert ("healthcheck" in rendered) == (service.healthcheck is not None)
        assert rendered["restart"] == ("no" if service.one_shot else "on-failure")


def test_images_are_pinned_from_settings(make_settings: MakeSettings) -> None:
    settings = make_settings(TEMPORAL_VERSION="1.31.5", ELASTICSEARCH_VERSION="7.10.1", RUNTIME_IMAGE="reg/rt")
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    images = {name: service["image"] for name, service in document["services"].items()}
    assert images["temporal-history"] == "reg/rt:1.31.5"
    assert images["elasticsearch"].endswith(":7.10.1")
    assert all(":" in image and not image.endswith(":latest") for image in images.values())


@pytest.mark.parametrize(("plugin", "persistence"), [("dsql", "dsql-local"), ("postgres12_pgx", "postgresql")])
def test_hosts_resolve_to_service_names(make_settings: MakeSettings, plugin: str, persistence: str) -> None:
    settings = make_settings(TEMPORAL_SQL_PLUGIN=plugin)
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    env = document["services"]["temporal-history"]["environment"]
    assert env["TEMPORAL_SQL_HOST"] == persistence
    assert env["TEMPORAL_ELASTICSEARCH_HOST"] == "elasticsearch"
    assert document["services"]["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal-frontend"


def test_remote_persistence_keeps_its_endpoint(make_settings: MakeSettings) -> None:
    host = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
    settings = make_settings(
        TEMPORAL_SQL_HOST=host, TEMPORAL_SQL_TLS_ENABLED="true", TEMPORAL_SQL_PASSWORD="never-rendered"
    )
    text = render_compose(build_stack(settings), settings, "amd64")
    document = yaml.safe_load(text)
    assert "postgresql" not in document["services"]
    assert document["services"]["temporal-frontend"]["environment"]["TEMPORAL_SQL_HOST"] == host
    assert "never-rendered" not in text
