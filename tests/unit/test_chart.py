"""The Helm chart as generated from the service model: its values, its generated templates and its values schema.
What helm and Kubernetes' own schemas make of it is tests/chart (the chart session)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.kubernetes.chart import (
    PRINCIPAL_PLACEHOLDER,
    PRODUCTION_SHARDS,
    SET_BY_HELPERS,
    SET_BY_IMAGE,
    chart_settings,
    chart_values,
    environment_templates,
    region_values,
    workloads,
    write_chart,
)
from temporal_dsql_deploy.kubernetes.values_schema import values_schema
from temporal_dsql_deploy.runtime.units import build_stack, unit_of
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import LATEST
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]
DEPLOYED = {"TEMPORAL_SQL_HOST": "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws", "TEMPORAL_SQL_PORT": "5432",
            "TEMPORAL_SQL_USER": "admin", "TEMPORAL_SQL_DATABASE": "postgres", "TEMPORAL_SQL_TLS_ENABLED": "true",
            "TEMPORAL_SQL_IAM_AUTH": "true", "AWS_REGION": "eu-west-1",
            "DSQL_SERVICE_PRINCIPAL_ARN": "arn:aws:iam::123456789012:role/temporal-server"}  # fmt: skip


def _defines(text: str) -> dict[str, str]:
    """Each named template's body (up to its last `end`: a body may hold `with ... end` blocks)."""
    parts = re.split(r'\{\{- define "([^"]+)" -?\}\}', text)[1:]
    return {name: body.rsplit("{{- end }}", 1)[0] for name, body in zip(parts[::2], parts[1::2], strict=True)}


def _variables(body: str) -> set[str]:
    return set(re.findall(r"^- name: (\S+)$", body, flags=re.M))


def test_every_variable_the_model_gives_a_workload_is_in_its_chart_environment(make_settings: MakeSettings) -> None:
    """The chart cannot drift from the model: each workload's variables are the model's (less those the chart's
    helpers set by reference), each taken from a value or a constant of the image."""
    settings = chart_settings(make_settings())
    defines = _defines(environment_templates(settings))
    chosen = list(workloads(build_stack(settings), settings))
    assert [w.name for w in chosen] == ["es-setup", "schema-setup", "temporal-history", "temporal-matching",
                                        "temporal-frontend", "temporal-worker", "namespace-setup"]  # fmt: skip
    for workload in chosen:
        container = unit_of(workload.service).container(workload.service, settings)
        expected = set(workload.service.environment) | set(container.environment)
        assert _variables(defines[f"temporal-dsql.env.{workload.name}"]) == expected - SET_BY_HELPERS - SET_BY_IMAGE
    assert defines["temporal-dsql.roles"] == "history matching frontend worker"


def test_the_services_connect_as_their_role_and_the_schema_job_as_admin(make_settings: MakeSettings) -> None:
    defines = _defines(environment_templates(chart_settings(make_settings())))
    user = re.compile(r"- name: TEMPORAL_SQL_USER\n  value: \{\{ (\S+) \| quote \}\}")
    assert user.findall(defines["temporal-dsql.env.temporal-history"]) == [
        ".Values.server.config.persistence.default.sql.user"
    ]
    assert user.findall(defines["temporal-dsql.env.schema-setup"]) == [
        ".Values.server.config.persistence.default.sql.adminUser"
    ]


def test_jobs_the_services_wait_for_run_before_them_and_the_others_after(make_settings: MakeSettings) -> None:
    text = environment_templates(chart_settings(make_settings()))
    body = _defines(text)["temporal-dsql.jobs"]
    jobs = {job["name"]: job for job in yaml.safe_load(body)}
    assert jobs["schema-setup"]["hook"] == jobs["es-setup"]["hook"] == "pre-install,pre-upgrade"
    assert jobs["namespace-setup"]["hook"] == "post-install,post-upgrade"
    assert jobs["schema-setup"]["args"] == ["temporal-dsql-deploy", "schema-setup"]
    assert all(job["weight"] < 0 for job in jobs.values())


def test_a_local_stack_gives_a_clusters_shape_with_its_endpoint_left_to_the_user(make_settings: MakeSettings) -> None:
    values = chart_values(make_settings())
    sql = values["server"]["config"]["persistence"]["default"]["sql"]
    assert (sql["pluginName"], sql["host"], sql["port"], sql["database"]) == ("dsql", "", 5432, "postgres")
    assert (sql["user"], sql["adminUser"], sql["iamAuth"], sql["tls"]["enabled"]) == ("temporal_service", "admin",
                                                                                       True, True)  # fmt: skip
    assert (sql["region"], sql["maxConns"]) == ("", 20)  # the local stack's pool of 10 stays local
    assert values["server"]["config"]["numHistoryShards"] == PRODUCTION_SHARDS
    assert values["elasticsearch"]["host"] == ""
    assert values["schema"]["servicePrincipalArn"] == ""
    assert PRINCIPAL_PLACEHOLDER not in json.dumps(values)


def test_a_deployed_cluster_and_the_operators_choices_are_the_defaults(make_settings: MakeSettings) -> None:
    settings = make_settings(**DEPLOYED, TEMPORAL_HISTORY_HOSTS="3", TEMPORAL_MATCHING_HOSTS="2",
                             TEMPORAL_NUM_HISTORY_SHARDS="64", TEMPORAL_FRONTEND_PORT="7333",
                             TEMPORAL_ELASTICSEARCH_HOST="search.example.internal", TEMPORAL_ELASTICSEARCH_PORT="443",
                             TEMPORAL_ELASTICSEARCH_SCHEME="https", SEARCH_ENGINE="opensearch")  # fmt: skip
    values = chart_values(settings)
    sql = values["server"]["config"]["persistence"]["default"]["sql"]
    assert (sql["host"], sql["region"]) == (DEPLOYED["TEMPORAL_SQL_HOST"], "eu-west-1")
    assert values["schema"]["servicePrincipalArn"] == DEPLOYED["DSQL_SERVICE_PRINCIPAL_ARN"]
    server = values["server"]
    assert [server[role]["replicaCount"] for role in ("history", "matching", "frontend", "worker")] == [3, 2, 1, 1]
    assert server["config"]["numHistoryShards"] == 64
    assert server["frontend"]["service"]["port"] == 7333
    assert server["frontend"]["service"]["membershipPort"] == 7033
    assert (values["elasticsearch"]["host"], values["elasticsearch"]["engine"]) == ("search.example.internal",
                                                                                    "opensearch")  # fmt: skip


def test_history_has_no_autoscaler_and_each_role_its_health_service(make_settings: MakeSettings) -> None:
    server = chart_values(make_settings())["server"]
    assert "autoscaling" not in server["history"]
    assert all(server[role]["autoscaling"]["enabled"] is False for role in ("matching", "frontend", "worker"))
    assert server["frontend"]["health"]["service"] == "temporal.api.workflowservice.v1.WorkflowService"
    assert server["worker"]["health"]["service"] == "temporal.api.workflowservice.v1.WorkerService"
    assert server["history"]["resources"]["limits"]["memory"] == server["history"]["resources"]["requests"]["memory"]


def test_the_dynamic_config_is_the_stacks_less_what_holds_for_one_matching_host(make_settings: MakeSettings) -> None:
    dynamic = chart_values(make_settings())["server"]["dynamicConfig"]
    assert dynamic["limit.mutableStateSize.error"] == [{"value": 4194304}]
    assert dynamic["history.acquireShardInterval"] == [{"value": "10s"}]
    assert "matching.numTaskqueueReadPartitions" not in dynamic


def _validate(values: dict[str, Any]) -> None:
    jsonschema.validate(values, values_schema())


def test_the_default_values_satisfy_the_values_schema(make_settings: MakeSettings) -> None:
    _validate(chart_values(make_settings()))
    _validate(chart_values(make_settings(**DEPLOYED)))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("server", "history", "replicas"), 3),  # a typo of replicaCount: refused, not ignored
        (("server", "config", "numHistoryShards"), 0),
        (("server", "config", "persistence", "default", "sql", "pluginName"), "mysql8"),
        (("server", "config", "persistence", "default", "sql", "maxConnLifetime"), "5 minutes"),
        (("elasticsearch", "scheme"), "ftp"),
        (("schema", "servicePrincipalArn"), "temporal-server"),
    ],
)
def test_a_wrong_value_is_refused_by_the_values_schema(make_settings: MakeSettings, path: tuple[str, ...],
                                                       value: object) -> None:  # fmt: skip
    values = chart_values(make_settings())
    target = values
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        _validate(values)


def test_the_chart_is_written_with_its_generated_parts(make_settings: MakeSettings, tmp_path: Path) -> None:
    output = write_chart(make_settings(), tmp_path / "chart")
    names = sorted(str(path.relative_to(output)) for path in output.rglob("*") if path.is_file())
    assert {
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "files/temporal.yaml",
        "templates/_environment.tpl",
        "templates/server-deployment.yaml",
        "templates/setup-jobs.yaml",
    } <= set(names)
    chart = yaml.safe_load((output / "Chart.yaml").read_text(encoding="utf-8"))
    assert (chart["apiVersion"], chart["appVersion"]) == ("v2", LATEST.version)
    assert yaml.safe_load((output / "values.yaml").read_text(encoding="utf-8")) == chart_values(make_settings())
    again = write_chart(make_settings(), output)  # its own directory is written again
    assert sorted(str(path.relative_to(again)) for path in again.rglob("*") if path.is_file()) == names


def test_a_directory_that_is_not_the_charts_is_refused(make_settings: MakeSettings, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("kept", encoding="utf-8")
    with pytest.raises(DeployError) as refused:
        write_chart(make_settings(), tmp_path)
    assert "did not write" in refused.value.problem
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "kept"
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    with pytest.raises(DeployError, match="is a file"):
        write_chart(make_settings(), tmp_path / "a-file")


def test_chart_through_invoke_refuses_a_load_past_dsqls_quotas_and_writes_nothing(project: Path) -> None:
    output = project / "chart"
    result = run_task(project, "chart", "--output", str(output), "--workflows-per-second", "5000")
    assert_clear_error(result, "10,000 per cluster", "TEMPORAL_SQL_MAX_CONNS")
    assert not output.exists()


def test_chart_through_invoke_writes_the_chart_sized_for_the_load(project: Path) -> None:
    output = project / "chart"
    result = run_task(project, "chart", "--output", str(output), "--workflows-per-second", "100")
    assert result.returncode == 0, result.stderr
    assert "plan for 100 workflows/s: hosts history 5, matching 5, frontend 3, worker 2" in result.stdout
    values = yaml.safe_load((output / "values.yaml").read_text(encoding="utf-8"))
    assert values["server"]["history"]["replicaCount"] == 5
    assert values["server"]["config"]["numHistoryShards"] == 512


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of a values file over another: maps key by key, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def test_a_peered_pair_gets_a_release_per_region_the_standby_at_no_hosts(make_settings: MakeSettings,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    peer = "zyxwvutsrqponmlkjihgfedcba.dsql.eu-central-1.on.aws"
    settings = make_settings(**DEPLOYED, STANDBY_REGION="eu-central-1", STANDBY_SQL_HOST=peer,
                             TEMPORAL_HISTORY_HOSTS="3")  # fmt: skip
    per_region = region_values(settings)
    assert sorted(per_region) == ["eu-central-1", "eu-west-1"]
    primary, standby = per_region["eu-west-1"], per_region["eu-central-1"]
    assert primary["server"]["config"]["persistence"]["default"]["sql"] == {"host": DEPLOYED["TEMPORAL_SQL_HOST"],
                                                                            "region": "eu-west-1"}  # fmt: skip
    assert standby["server"]["config"]["persistence"]["default"]["sql"] == {"host": peer, "region": "eu-central-1"}
    assert primary["server"]["history"]["replicaCount"] == 3
    assert {standby["server"][role]["replicaCount"] for role in ("history", "matching", "frontend", "worker")} == {0}
    assert (primary["schema"]["setup"]["enabled"], standby["schema"]["setup"]["enabled"]) == (True, False)
    for values in per_region.values():  # each release's values, over the chart's defaults, satisfy its schema
        _validate(_merged(chart_values(settings), values))
    assert "standby" not in json.dumps(chart_values(settings))  # values.yaml itself is one Region's
    written = write_chart(settings, tmp_path / "chart")
    assert yaml.safe_load((written / "values-eu-central-1.yaml").read_text(encoding="utf-8")) == standby
    failed_over = region_values(settings.model_copy(update={"serving_region": "eu-central-1"}))
    assert failed_over["eu-central-1"]["server"]["history"]["replicaCount"] == 3
    assert failed_over["eu-west-1"]["server"]["history"]["replicaCount"] == 0
    assert region_values(settings.model_copy(update={"standby_region": None})) == {}
