from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import get_args

import pytest

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import (
    DsqlLatency,
    Settings,
    format_go_duration,
    load_settings,
    parse_go_duration,
)
from tests.conftest import DSQL, PROJECT_ROOT

MakeSettings = Callable[..., Settings]


def test_defaults_select_the_local_stack(make_settings: MakeSettings) -> None:
    settings = make_settings()
    assert settings.sql_is_local
    assert settings.temporal_sql_plugin == "dsql"
    assert settings.local_dsql  # DSQL-shaped by default: through the stack's own stand-in
    assert settings.temporal_frontend_port == 7233
    assert settings.temporal_ui_port == 8080
    assert settings.temporal_elasticsearch_port == 9200
    assert not settings.temporal_sql_iam_auth


def test_dsql_endpoint_is_not_local(make_settings: MakeSettings) -> None:
    settings = make_settings(**DSQL)
    assert not settings.sql_is_local
    assert settings.temporal_sql_plugin == "dsql"


def _error(make_settings: MakeSettings, **variables: str) -> str:
    with pytest.raises(ConfigError) as caught:
        make_settings(**variables)
    return str(caught.value)


def test_non_numeric_port_names_variable_and_value(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_SQL_PORT="abc")
    assert "TEMPORAL_SQL_PORT='abc'" in message
    assert "integer" in message


def test_out_of_range_port(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_UI_PORT="70000")
    assert "TEMPORAL_UI_PORT" in message
    assert "65535" in message


def test_unknown_plugin_lists_accepted_values(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_SQL_PLUGIN="mysql8")
    assert "TEMPORAL_SQL_PLUGIN='mysql8'" in message
    for accepted in ("postgres12", "postgres12_pgx", "dsql"):
        assert accepted in message


@pytest.mark.parametrize("lifetime", ["60m", "1h", "3600s", "2h30m"])
def test_dsql_connection_lifetime_of_an_hour_or_more_is_refused(make_settings: MakeSettings, lifetime: str) -> None:
    message = _error(make_settings, **DSQL, TEMPORAL_SQL_MAX_CONN_LIFETIME=lifetime)
    assert "TEMPORAL_SQL_MAX_CONN_LIFETIME" in message
    assert "60 minutes" in message


def test_dsql_connection_lifetime_below_an_hour_is_accepted(make_settings: MakeSettings) -> None:
    settings = make_settings(**DSQL, TEMPORAL_SQL_MAX_CONN_LIFETIME="59m")
    assert settings.temporal_sql_max_conn_lifetime == timedelta(minutes=59)


def test_long_lifetime_is_fine_for_postgresql(make_settings: MakeSettings) -> None:
    settings = make_settings(TEMPORAL_SQL_MAX_CONN_LIFETIME="2h", TEMPORAL_SQL_PLUGIN="postgres12_pgx")
    assert settings.temporal_sql_max_conn_lifetime == timedelta(hours=2)


def test_max_idle_above_max_conns_is_refused(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_SQL_MAX_CONNS="5", TEMPORAL_SQL_MAX_IDLE_CONNS="6")
    assert "TEMPORAL_SQL_MAX_IDLE_CONNS=6" in message
    assert "TEMPORAL_SQL_MAX_CONNS=5" in message


def test_iam_auth_without_tls_is_refused(make_settings: MakeSettings) -> None:
    message = _error(make_settings, **{**DSQL, "TEMPORAL_SQL_TLS_ENABLED": "false"})
    assert "TEMPORAL_SQL_IAM_AUTH" in message
    assert "TEMPORAL_SQL_TLS_ENABLED" in message


def test_iam_auth_without_region_is_refused(make_settings: MakeSettings) -> None:
    variables = {k: v for k, v in DSQL.items() if k != "AWS_REGION"}
    assert "AWS_REGION" in _error(make_settings, **variables)


def test_bad_duration_names_variable(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_SQL_CONNECTION_TIMEOUT="soon")
    assert "TEMPORAL_SQL_CONNECTION_TIMEOUT='soon'" in message
    assert "30s" in message


def test_port_collision_is_refused(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_UI_PORT="7233")
    assert "TEMPORAL_UI_PORT" in message
    assert "TEMPORAL_FRONTEND_PORT" in message


def test_every_problem_is_reported_at_once(make_settings: MakeSettings) -> None:
    message = _error(make_settings, TEMPORAL_SQL_PORT="abc", SEARCH_ENGINE="solr")
    assert "TEMPORAL_SQL_PORT" in message
    assert "SEARCH_ENGINE='solr'" in message


def test_secrets_never_appear_in_repr_or_errors(make_settings: MakeSettings) -> None:
    secret = "hunter2-very-secret"
    settings = make_settings(
        TEMPORAL_SQL_PASSWORD=secret, TEMPORAL_ELASTICSEARCH_USERNAME="temporal", TEMPORAL_ELASTICSEARCH_PASSWORD=secret
    )
    assert secret not in repr(settings)
    assert secret not in str(settings)
    assert settings.temporal_sql_password is not None
    assert settings.temporal_sql_password.get_secret_value() == secret
    message = _error(make_settings, TEMPORAL_SQL_PASSWORD=secret, TEMPORAL_SQL_PORT="abc")
    assert secret not in message


def test_dotenv_is_read_and_environment_wins(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TEMPORAL_UI_PORT=8088\nPROJECT_NAME=from-dotenv\n", encoding="utf-8")
    clean_env.setenv("PROJECT_NAME", "from-environment")
    settings = load_settings(tmp_path)
    assert settings.temporal_ui_port == 8088
    assert settings.project_name == "from-environment"


def test_bad_dotenv_value_names_the_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TEMPORAL_SQL_PORT=five\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert ".env" in str(caught.value)
    assert "TEMPORAL_SQL_PORT='five'" in str(caught.value)


def test_stack_dir_is_anchored_at_the_project_root(make_settings: MakeSettings, tmp_path: Path) -> None:
    assert make_settings().stack_dir == (tmp_path / ".stack").resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("300", timedelta(seconds=300)),
    ],
)
def test_parse_go_duration(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m5", "5 m", "5d", "1h-3m", "abc"])
def test_parse_go_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_go_duration(text)


def test_format_go_duration_round_trips() -> None:
    for text in ("30s", "300s", "250ms", "3600s"):
        assert format_go_duration(parse_go_duration(text)) == text


def test_env_example_documents_every_setting() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    documented = {
        line.lstrip("# ").split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper()
    }
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from .env.example"
    unknown = {name for name in documented - expected if name.startswith(("TEMPORAL_", "AWS_"))}
    assert unknown == set(), ".env.example names variables the settings do not read"


def test_idle_connections_default_to_the_pool_size(make_settings: MakeSettings) -> None:
    assert make_settings().temporal_sql_max_idle_conns == 10  # the local stack's own database
    assert make_settings(**DSQL).temporal_sql_max_idle_conns == 20
    assert make_settings(TEMPORAL_SQL_MAX_CONNS="8").temporal_sql_max_idle_conns == 8
    assert make_settings(TEMPORAL_SQL_MAX_CONNS="8", TEMPORAL_SQL_MAX_IDLE_CONNS="3").temporal_sql_max_idle_conns == 3


@pytest.mark.parametrize("interval", ["0s", "500ms", "6m"])
def test_scrape_interval_outside_one_second_to_five_minutes_is_refused(make_settings: MakeSettings,
                                                                      interval: str) -> None:  # fmt: skip
    message = _error(make_settings, METRICS_SCRAPE_INTERVAL=interval)
    assert "METRICS_SCRAPE_INTERVAL" in message
    assert "1s to 5m" in message


@pytest.mark.parametrize("lifetime", ["0s", "500ms", "169h"])
def test_token_lifetime_outside_what_dsql_allows_is_refused(make_settings: MakeSettings, lifetime: str) -> None:
    message = _error(make_settings, TEMPORAL_SQL_TOKEN_LIFETIME=lifetime)
    assert "TEMPORAL_SQL_TOKEN_LIFETIME" in message
    assert "168h" in message


def test_token_lifetime_reaches_the_plugin_as_a_go_duration(make_settings: MakeSettings) -> None:
    stack = build_stack(make_settings(TEMPORAL_SQL_TOKEN_LIFETIME="30s"))
    assert stack.get("temporal-history").environment["TEMPORAL_SQL_TOKEN_LIFETIME"] == "30s"


def test_the_pool_is_smaller_against_the_local_database_unless_set(make_settings: MakeSettings) -> None:
    """Against the local stack every pooled connection is a PostgreSQL backend on this machine."""
    assert make_settings().temporal_sql_max_conns == 10
    assert make_settings(TEMPORAL_SQL_PLUGIN="postgres12_pgx").temporal_sql_max_conns == 10
    assert make_settings(**DSQL).temporal_sql_max_conns == 20
    assert make_settings(TEMPORAL_SQL_MAX_CONNS="20").temporal_sql_max_conns == 20


def test_latency_profiles_are_the_stand_ins() -> None:
    """DSQL_LOCAL_LATENCY offers exactly the profiles dsql-local has (it refuses any other name at start)."""
    source = (PROJECT_ROOT / "dsql-local" / "internal" / "latency" / "latency.go").read_text(encoding="utf-8")
    profiles = re.findall(r'\{Name: "([a-z-]+)"', source)
    assert profiles == list(get_args(DsqlLatency))
