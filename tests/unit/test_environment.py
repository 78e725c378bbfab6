"""One path from settings to every process: names from the model, same values in both renderers, secrets kept out."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.private_files import write_private
from temporal_dsql_deploy.runtime.control_keys import ControlKeys
from temporal_dsql_deploy.runtime.model import Component, Runtime
from temporal_dsql_deploy.runtime.render_compose import compose_secrets, render_compose
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.stack import render_secrets
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings, load_settings
from temporal_dsql_deploy.settings.environment import HostOf, SecretRef, render_environment, settings_environment
from temporal_dsql_deploy.settings.layout import Layout
from tests.conftest import fake_paths

MakeSettings = Callable[..., Settings]
PASSWORD = "only-in-dotenv-Pa55"
BACKEND_PASSWORD = "stand-in-backend-Pa55"


def _both(settings: Settings, root: Path) -> tuple[str, str]:
    stack = build_stack(settings)
    supervisor = render_supervisor(stack, settings, fake_paths(root), Layout(root / ".stack", "elasticsearch"), root)
    return supervisor, render_compose(stack, settings, "amd64")


def test_names_come_from_the_settings_model(make_settings: MakeSettings) -> None:
    settings = make_settings(TEMPORAL_SQL_MAX_CONN_LIFETIME="90s", TEMPORAL_SQL_PASSWORD="x")
    fields = ["temporal_sql_max_conn_lifetime", "temporal_sql_tls_enabled", "temporal_sql_password", "aws_region",
              "temporal_sql_port"]  # fmt: skip
    environment = settings_environment(settings, fields)
    assert environment == {
        "TEMPORAL_SQL_MAX_CONN_LIFETIME": "90s",
        "TEMPORAL_SQL_TLS_ENABLED": "false",
        "TEMPORAL_SQL_PASSWORD": SecretRef("TEMPORAL_SQL_PASSWORD"),
        "TEMPORAL_SQL_PORT": "5433",
    }  # aws_region is unset, so it is left out
    with pytest.raises(KeyError):
        settings_environment(settings, ["no_such_setting"])


def test_dollar_signs_are_escaped_for_both_file_formats() -> None:
    rendered = render_environment({"A": "p$th", "B": HostOf("db"), "C": SecretRef("C")}, lambda h: h.service,
                                  lambda s: "${" + s.name + "}")  # fmt: skip
    assert rendered == {"A": "p$$th", "B": "db", "C": "${C}"}


def test_password_only_in_dotenv_reaches_the_server_in_both_renderers_and_neither_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The PostgreSQL profile: the Temporal services themselves log in with the password.
    (tmp_path / ".env").write_text(f"TEMPORAL_SQL_PASSWORD={PASSWORD}\nTEMPORAL_SQL_PLUGIN=postgres12_pgx\n"
                                   f"DSQL_LOCAL_BACKEND_PASSWORD={BACKEND_PASSWORD}\n", encoding="utf-8")  # fmt: skip
    settings = load_settings(tmp_path)
    supervisor_text, compose_text = _both(settings, tmp_path)
    assert PASSWORD not in supervisor_text
    assert PASSWORD not in compose_text
    assert BACKEND_PASSWORD not in supervisor_text + compose_text
    processes = yaml.safe_load(supervisor_text)["processes"]
    services = yaml.safe_load(compose_text)["services"]
    for name in ("temporal-history", "temporal-matching", "temporal-frontend", "temporal-worker", "schema-setup"):
        supervised = dict(item.split("=", 1) for item in processes[name]["environment"])
        assert supervised["TEMPORAL_SQL_PASSWORD"] == "${TEMPORAL_SQL_PASSWORD}"
        # Under Compose, the file of a Compose secret that the image's entrypoint reads into the variable.
        assert "TEMPORAL_SQL_PASSWORD" not in services[name]["environment"]
        assert services[name]["environment"]["TEMPORAL_SQL_PASSWORD_FILE"] == "/run/secrets/temporal_sql_password"
        assert "temporal_sql_password" in services[name]["secrets"]
    # Each runtime supplies the value at start: process-compose from a 0600 file, Compose from a file per secret.
    stack = build_stack(settings)
    secrets_file = tmp_path / "secrets.env"
    keys = ControlKeys("admin-key-" + "a" * 32, "store-key-" + "b" * 32)
    write_private(secrets_file, render_secrets(stack, settings, keys))
    # The stand-in's backend role has its own password; the control keys come from their file.
    assert secrets_file.read_text(encoding="utf-8") == (
        f"DSQL_LOCAL_ADMIN_KEY='{keys.dsql_local_admin}'\nDSQL_LOCAL_BACKEND_PASSWORD='{BACKEND_PASSWORD}'\n"
        f"METRICS_STORE_KEY='{keys.metrics_store}'\nTEMPORAL_SQL_PASSWORD='{PASSWORD}'\n"
    )
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert compose_secrets(stack, settings, keys) == {
        "DSQL_LOCAL_ADMIN_KEY": keys.dsql_local_admin,
        "DSQL_LOCAL_BACKEND_PASSWORD": BACKEND_PASSWORD,
        "METRICS_STORE_KEY": keys.metrics_store,
        "TEMPORAL_SQL_PASSWORD": PASSWORD,
    }


def test_both_renderers_carry_the_same_values(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(TEMPORAL_ELASTICSEARCH_USERNAME="elastic", TEMPORAL_ELASTICSEARCH_PASSWORD="es-secret",
                             TEMPORAL_SQL_MAX_CONNS="7")  # fmt: skip
    supervisor_text, compose_text = _both(settings, tmp_path)
    processes = yaml.safe_load(supervisor_text)["processes"]
    services = yaml.safe_load(compose_text)["services"]
    runtime_only = {
        "TEMPORAL_DYNAMIC_CONFIG_FILE",
        "TEMPORAL_SERVER_CONFIG_FILE",  # the image's template, which its entrypoint starts the server with
        "TEMPORAL_BIND_IP",
        "TEMPORAL_UI_BIND_IP",
        "CACHE_DIR",
        "TEMPORAL_SQL_TLS_CA_FILE",
        "TEMPORAL_DSQL_STACK",  # the local stack's marker on its processes (STACK_DIR)
        "HOME",  # the services' own when root starts the local stack (service_account.py); the image's user's
    }  # paths: the host's, or in the stand-in's volume
    for service in build_stack(settings).in_runtime(Runtime.LOCAL):
        if service.component in {Component.POSTGRESQL, Component.SEARCH_ENGINE}:
            continue  # launched differently (the runner's flags vs the image's entrypoint), with their own variables
        supervised = dict(item.split("=", 1) for item in processes[service.name]["environment"])
        # A secret is NAME under the supervisor and NAME_FILE (its file, read into NAME at start) under Compose.
        composed = {name.removesuffix("_FILE") if value.startswith("/run/secrets/") else name: value
                    for name, value in services[service.name].get("environment", {}).items()}  # fmt: skip
        assert set(supervised) - runtime_only == set(composed) - runtime_only, service.name
        for name, value in service.environment.items():
            if isinstance(value, str) and name not in runtime_only:
                assert supervised[name] == composed[name] == value, f"{service.name}: {name}"
            elif isinstance(value, HostOf):
                expected = (value.pattern.format(host="127.0.0.1"), value.pattern.format(host=value.service))
                assert (supervised[name], composed[name]) == expected
    assert "es-secret" not in supervisor_text + compose_text


def test_every_supervised_process_ignores_dotenv_files(make_settings: MakeSettings, tmp_path: Path) -> None:
    supervisor_text, _ = _both(make_settings(), tmp_path)
    processes = yaml.safe_load(supervisor_text)["processes"]
    assert all(process["is_dotenv_disabled"] is True for process in processes.values())


def test_supervisor_secrets_refuse_what_dotenv_cannot_carry(make_settings: MakeSettings) -> None:
    settings = make_settings(TEMPORAL_SQL_PASSWORD="it's")
    with pytest.raises(Exception, match="PASSWORD contains a single quote"):
        render_secrets(build_stack(settings), settings, ControlKeys("a" * 43, "b" * 43))


def test_compose_publishes_on_loopback_unless_told(make_settings: MakeSettings) -> None:
    published = lambda settings: [  # noqa: E731
        port for service in yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))["services"]
        .values() for port in service.get("ports", [])
    ]  # fmt: skip
    assert published(make_settings()) == [
        "127.0.0.1:9200:9200", "127.0.0.1:7233:7233", "127.0.0.1:8080:8080", "127.0.0.1:9090:9090",
        "127.0.0.1:3000:3000",
    ]  # fmt: skip
    assert all(port.startswith("0.0.0.0:") for port in published(make_settings(PUBLISH_ADDRESS="0.0.0.0")))  # noqa: S104


def test_the_search_engine_exporter_is_told_the_engine_in_both_renderers(make_settings: MakeSettings,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    """elasticsearch_exporter reads its target from --es.uri alone: the model's ES_URI, resolved per runtime."""
    settings = make_settings(TEMPORAL_ELASTICSEARCH_PORT="19200")
    supervisor_text, compose_text = _both(settings, tmp_path)
    supervised = shlex.split(yaml.safe_load(supervisor_text)["processes"]["elasticsearch-exporter"]["command"])
    composed = yaml.safe_load(compose_text)["services"]["elasticsearch-exporter"]["command"]
    assert "--es.uri=http://127.0.0.1:19200" in supervised
    assert "--es.uri=http://elasticsearch:19200" in composed
    assert [arg for arg in composed if arg.startswith("--es.uri")] == ["--es.uri=http://elasticsearch:19200"]
    # The PostgreSQL exporter reads its variables (DATA_SOURCE_*): no target flag.
    postgres = yaml.safe_load(compose_text)["services"]["postgresql-exporter"]["command"]
    assert not any(arg.startswith(("--es.uri", "--data-source")) for arg in postgres)
