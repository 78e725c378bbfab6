from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import MARKER
from temporal_dsql_deploy.runtime.control_keys import ControlKeys
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import (
    SECRETS_DIR_VARIABLE,
    compose_secrets,
    config_files,
    render_compose,
    write_compose,
)
from temporal_dsql_deploy.runtime.units import build_stack, unit_of
from temporal_dsql_deploy.runtime.units.base import postgresql_image, runtime_image, search_engine_image
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import SecretRef
from tests.conftest import FAKE_ACCESS_KEY_ID

MakeSettings = Callable[..., Settings]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "docker-compose.amd64.yml"


def validate_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
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
    result = validate_compose_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  x:\n    image: a\n    depends_on: {y: {condition: sometimes}}\n", encoding="utf-8")
    assert validate_compose_schema(broken).returncode != 0


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
    settings = make_settings(TEMPORAL_VERSION="1.31.2", ELASTICSEARCH_VERSION="7.10.1", RUNTIME_IMAGE="reg/rt")
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    images = {name: service["image"] for name, service in document["services"].items()}
    assert images["temporal-history"] == "reg/rt:1.31.2"
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


# --- least privilege and secrets as files ---------------------------------------------------------------------------
# A value for every secret the settings hold (each distinct, none a substring of the rendered text by chance).
SECRET_SETTINGS = {
    "TEMPORAL_SQL_PASSWORD": "sql-Pa55-7f3e9c",
    "DSQL_LOCAL_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
    "DSQL_LOCAL_SECRET_ACCESS_KEY": "aws-secret-0b8d21",
    "DSQL_LOCAL_BACKEND_PASSWORD": "backend-Pa55-44c1aa",
    "TEMPORAL_ELASTICSEARCH_USERNAME": "elastic",
    "TEMPORAL_ELASTICSEARCH_PASSWORD": "es-Pa55-9a6b02",
    "GRAFANA_ADMIN_PASSWORD": "grafana-Pa55-e51d7c",
}
KEYS = ControlKeys("admin-key-" + "a" * 32, "store-key-" + "b" * 32)
PROFILES = [{}, {"TEMPORAL_SQL_PLUGIN": "postgres12_pgx"}, {"SEARCH_ENGINE": "opensearch"}]


def _document(settings: Settings) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    return document


def test_no_secret_value_is_in_the_rendered_files(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(**SECRET_SETTINGS)
    path = write_compose(settings, "amd64", tmp_path / "docker-compose.yml")
    texts = {path.name: path.read_text(encoding="utf-8")}
    texts |= {file.name: file.read_text(encoding="utf-8") for file in (tmp_path / "config").iterdir()}
    values = [value for name, value in SECRET_SETTINGS.items() if name != "TEMPORAL_ELASTICSEARCH_USERNAME"]
    for name, text in texts.items():
        leaked = [value for value in [*values, KEYS.dsql_local_admin, KEYS.metrics_store] if value in text]
        assert leaked == [], name
    # The values still reach the containers: each is the content of a secret the file defines (and names only).
    document = yaml.safe_load(texts[path.name])
    supplied = compose_secrets(build_stack(settings), settings, KEYS)
    for value in values:
        names = [name.lower() for name, supplied_value in supplied.items() if supplied_value == value]
        assert names, f"no secret carries the value of one of {sorted(SECRET_SETTINGS)}"
        assert all(name in document["secrets"] for name in names)


@pytest.mark.parametrize("profile", PROFILES, ids=["dsql-local", "postgresql", "opensearch"])
def test_every_service_runs_with_least_privilege(make_settings: MakeSettings, profile: dict[str, str]) -> None:
    settings = make_settings(**profile)
    stack = build_stack(settings).in_runtime(Runtime.DOCKER)
    services = _document(settings)["services"]
    assert sorted(services) == sorted(service.name for service in stack)
    for service in stack:
        rendered = services[service.name]
        launch = unit_of(service).container(service, settings)
        assert rendered["read_only"] is True, service.name
        assert rendered["cap_drop"] == ["ALL"], service.name
        assert "no-new-privileges:true" in rendered["security_opt"], service.name
        assert rendered["mem_limit"] == f"{launch.memory_mb}m", service.name
        assert launch.memory_mb > 0
        assert "/tmp" in rendered["tmpfs"], service.name  # noqa: S108 - a private tmpfs in the container
        assert not {"privileged", "cap_add", "network_mode", "pid", "user"} & set(rendered), service.name


@pytest.mark.parametrize("profile", PROFILES, ids=["dsql-local", "postgresql", "opensearch"])
def test_each_secret_variable_names_a_file_the_service_mounts(make_settings: MakeSettings,
                                                              profile: dict[str, str]) -> None:  # fmt: skip
    """A secret of the model is never a variable's value: NAME_FILE (NAME__FILE for Grafana) names
    /run/secrets/<secret>, a secret the service lists, which the file defines as a file in SECRETS_DIR."""
    settings = make_settings(**profile, **SECRET_SETTINGS)
    document = _document(settings)
    defined = document["secrets"]
    for name, entry in defined.items():
        assert set(entry) == {"file"}
        # Compose refuses to start without SECRETS_DIR (`:?`) rather than mount files from elsewhere.
        assert re.fullmatch(r"\$\{" + SECRETS_DIR_VARIABLE + r":\?[^}]+\}/" + name, entry["file"]), entry
    listed: set[str] = set()
    for service in build_stack(settings).in_runtime(Runtime.DOCKER):
        rendered = document["services"][service.name]
        launch = unit_of(service).container(service, settings)
        variables = {**service.environment, **launch.environment}
        environment = rendered.get("environment", {})
        mounted = set(rendered.get("secrets", []))
        listed |= mounted
        for variable, value in variables.items():
            if not isinstance(value, SecretRef):
                continue
            assert variable not in environment, f"{service.name}: {variable} holds a value"
            path = environment[variable + launch.secret_suffix]
            assert path == f"/run/secrets/{value.name.lower()}", f"{service.name}: {variable}"
            assert path.removeprefix("/run/secrets/") in mounted, service.name
        # And every secret it mounts is read: by a NAME_FILE variable, or by a file of its configuration.
        mounts = [file.text for file in unit_of(service).config_files(build_stack(settings), settings)]
        for secret in mounted:
            used = f"/run/secrets/{secret}"
            assert used in environment.values() or any(used in text for text in mounts), f"{service.name}: {secret}"
    assert listed == set(defined)  # none defined that no service mounts


def test_only_grafana_is_pulled_and_it_starts_only_with_its_profile(make_settings: MakeSettings) -> None:
    """Every image but Grafana's is built here (the runtime image holds the exporters and the metrics store);
    Grafana, pulled from its registry, is in the `dashboards` profile, which `up` does not start."""
    settings = make_settings()
    services = _document(settings)["services"]
    built_here = {runtime_image(settings), postgresql_image(settings), search_engine_image(settings)}
    pulled = {name for name, service in services.items() if service["image"] not in built_here}
    assert pulled == {"grafana"}
    assert services["grafana"]["profiles"] == ["dashboards"]
    assert [name for name, service in services.items() if "profiles" in service] == ["grafana"]
    for name, program in (("postgresql-exporter", "postgres_exporter"), ("elasticsearch-exporter",
                                                                         "elasticsearch_exporter"),
                          ("metrics", "victoria-metrics")):  # fmt: skip
        assert services[name]["image"] == runtime_image(settings)
        assert services[name]["command"][0] == program


def test_configs_are_files_beside_the_compose_file(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings()
    output = tmp_path / "elsewhere" / "docker-compose.yml"
    path = write_compose(settings, "amd64", output)
    assert path == output
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    expected = {file.name: file.text for file in config_files(build_stack(settings), settings)}
    assert expected, "the metrics store's scrape configuration at least"
    assert document["configs"] == {name: {"file": f"./config/{name}"} for name in expected}
    # The configuration files and the marker that makes the directory the product's (`cleanup` deletes it).
    assert sorted(file.name for file in (output.parent / "config").iterdir()) == sorted([*expected, MARKER])
    for name, text in expected.items():
        assert (output.parent / "config" / name).read_text(encoding="utf-8") == text
    mounted = {mount["source"]: mount["target"] for service in document["services"].values()
               for mount in service.get("configs", [])}  # fmt: skip
    assert set(mounted) == set(expected)
    # The metrics store reads its scrape configuration where Compose mounts it.
    assert f"-promscrape.config={mounted['scrape']}" in document["services"]["metrics"]["command"]


def test_a_config_directory_holding_others_files_is_refused(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings()
    output = tmp_path / "docker-compose.yml"
    theirs = tmp_path / "config" / "notes.txt"
    theirs.parent.mkdir()
    theirs.write_text("someone else's", encoding="utf-8")
    with pytest.raises(DeployError) as refused:
        write_compose(settings, "amd64", output)
    assert f"{tmp_path / 'config'} holds files this product did not write" in refused.value.problem
    assert refused.value.fix is not None
    assert "--output" in refused.value.fix
    assert sorted(path.name for path in theirs.parent.iterdir()) == ["notes.txt"]  # untouched, nothing added
    assert theirs.read_text(encoding="utf-8") == "someone else's"
    assert not output.exists()


def test_the_config_directory_the_product_wrote_is_written_again(make_settings: MakeSettings, tmp_path: Path) -> None:
    output = tmp_path / "docker-compose.yml"
    (tmp_path / "config").mkdir()  # an empty directory is taken
    settings = make_settings()
    write_compose(settings, "amd64", output)
    (tmp_path / "config" / "scrape").write_text("stale", encoding="utf-8")
    write_compose(settings, "amd64", output)  # its own directory (the marker): not refused, every file written anew
    for file in config_files(build_stack(settings), settings):
        assert (tmp_path / "config" / file.name).read_text(encoding="utf-8") == file.text


def test_hosts_per_role_become_replicas_each_with_its_address(make_settings: MakeSettings, tmp_path: Path) -> None:
    """3 history, 2 matching, 2 frontend and 1 worker host: Compose replicas (one container, one address each);
    the frontends publish a port each; the metrics store finds every replica by its name's addresses."""
    settings = make_settings(TEMPORAL_HISTORY_HOSTS="3", TEMPORAL_MATCHING_HOSTS="2", TEMPORAL_FRONTEND_HOSTS="2",
                             TEMPORAL_NUM_HISTORY_SHARDS="16")  # fmt: skip
    path = write_compose(settings, "amd64", tmp_path / "docker-compose.yml")
    services = yaml.safe_load(path.read_text(encoding="utf-8"))["services"]
    replicas = {name: service.get("deploy", {}).get("replicas", 1) for name, service in services.items()}
    assert {name: count for name, count in replicas.items() if count > 1} == {
        "temporal-history": 3, "temporal-matching": 2, "temporal-frontend": 2
    }  # fmt: skip
    assert services["temporal-frontend"]["ports"] == ["127.0.0.1:7233-7234:7233"]
    assert all("container_name" not in service for service in services.values())  # names would clash
    result = validate_compose_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr
    scrape = yaml.safe_load((tmp_path / "config" / "scrape").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["temporal-history"]["dns_sd_configs"] == [{"names": ["temporal-history"], "type": "A", "port": 9092}]
    assert "dns_sd_configs" not in jobs["temporal-worker"]
    # dsql-local's backend takes every host's pool (10 against the local database), with room for two hosts more:
    # (3+2+2+1+2) x 10 + 50.
    assert "max_connections=150" in services["postgresql"]["command"]
    assert jobs["temporal-worker"]["static_configs"] == [{"targets": ["temporal-worker:9094"]}]


def test_more_history_hosts_than_shards_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(DeployError, match="TEMPORAL_HISTORY_HOSTS=5 is above TEMPORAL_NUM_HISTORY_SHARDS=4"):
        make_settings(TEMPORAL_HISTORY_HOSTS="5")


def test_postgresql_is_stopped_with_its_fast_shutdown(make_settings: MakeSettings) -> None:
    """Docker sends SIGTERM unless told otherwise, which asks PostgreSQL for the smart shutdown that outwaits the
    grace period while Temporal stays connected, and ends in SIGKILL."""
    services = yaml.safe_load(render_compose(build_stack(make_settings()), make_settings(), "amd64"))["services"]
    assert {name: service["stop_signal"] for name, service in services.items() if "stop_signal" in service} == {
        "postgresql": "SIGINT"
    }
