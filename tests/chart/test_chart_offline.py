"""The chart, strictly and offline: `helm lint --strict` and `helm template` for several value sets, every manifest
validated against Kubernetes' own schemas in strict mode (an unknown field is an error) for the current minor
release and the two before it, and what a release must hold checked in the manifests themselves."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.kubernetes.chart import chart_values, region_values
from temporal_dsql_deploy.kubernetes.render import EXAMPLES, example_values, lint_and_template, render
from temporal_dsql_deploy.kubernetes.tools import HELM_UNITTEST
from temporal_dsql_deploy.process import run_program
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import LATEST
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.chart
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")  # kubernetes-validate's newest and the two minors before
ROLES = ("history", "matching", "frontend", "worker")
SQL = ("server", "config", "persistence", "default", "sql")
# Value sets a user is likely to install, over the example values: name -> values.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "one-host-each": {},
    "worker-probed-over-http": {"server": {"worker": {"health": {"httpPath": "/metrics"}}}},  # as 1.30's worker
    "3-2-2-1": {"server": {"history": {"replicaCount": 3}, "matching": {"replicaCount": 2},
                           "frontend": {"replicaCount": 2}, "worker": {"replicaCount": 1}}},
    "opensearch": {"elasticsearch": {"engine": "opensearch", "port": 443, "scheme": "https",
                                     "username": "temporal", "existingSecret": "search-credentials"}},
    "autoscaling-tls-secrets": {
        "server": {"frontend": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}},
                   "matching": {"autoscaling": {"enabled": True}},
                   "config": {"persistence": {"default": {"sql": {
                       "tls": {"caConfigMap": "dsql-ca"}, "existingSecret": "sql-credentials"}}}}},
        "serviceAccount": {"extraAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}},
    },
    "postgresql-password": {"server": {"config": {"persistence": {"default": {"sql": {
        "pluginName": "postgres12_pgx", "iamAuth": False, "user": "temporal", "adminUser": "temporal",
        "existingSecret": "pg-credentials"}}}}}},
}  # fmt: skip


def _write(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _examples(chart: Path, settings: Settings, tmp_path: Path) -> Path:
    return _write(tmp_path / "examples.yaml", example_values(chart_values(settings)))


def _documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def _render(settings: Settings, installer: Installer, chart: Path, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    examples = _examples(chart, settings, tmp_path)
    given = _write(tmp_path / f"{name}.yaml", VALUE_SETS[name])
    return _documents(lint_and_template(settings, chart, installer, (examples, given)))


def _of_kind(documents: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (document for document in documents if document["kind"] == kind)


def _named(documents: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    matches = [d for d in _of_kind(documents, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in _of_kind(documents, kind)]}"
    return matches[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_a_role_without_grpc_health_is_probed_on_its_metrics_endpoint(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    documents = _render(settings, installer, chart, tmp_path, "worker-probed-over-http")
    [container] = _named(documents, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, container[probe]
        assert "grpc" not in container[probe]
    [history] = _named(documents, "Deployment", "-history")["spec"]["template"]["spec"]["containers"]
    assert history["readinessProbe"]["grpc"]["service"] == "temporal.api.workflowservice.v1.HistoryService"


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_each_value_set_renders_manifests_kubernetes_admits_strictly(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path, name: str
) -> None:
    documents = _render(settings, installer, chart, tmp_path, name)
    kinds = sorted({document["kind"] for document in documents})
    assert {"Deployment", "Service", "ConfigMap", "Job", "ServiceAccount", "PodDisruptionBudget",
            "NetworkPolicy"} <= set(kinds)  # fmt: skip
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as invalid:
                pytest.fail(f"{document['kind']} {document['metadata']['name']} is not valid for Kubernetes "
                            f"{version} (strict): {invalid.message} at {list(invalid.path)}")  # fmt: skip


def test_a_manifest_with_an_unknown_field_is_refused_by_the_strict_schemas(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    """The validation above can fail: the same Deployment with one misspelt field is refused."""
    deployment = _named(_render(settings, installer, chart, tmp_path, "one-host-each"), "Deployment", "-history")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_hosts_per_role_and_autoscalers_follow_the_values(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    documents = _render(settings, installer, chart, tmp_path, "3-2-2-1")
    replicas = {role: _named(documents, "Deployment", f"-{role}")["spec"]["replicas"] for role in ROLES}
    assert replicas == {"history": 3, "matching": 2, "frontend": 2, "worker": 1}
    assert list(_of_kind(documents, "HorizontalPodAutoscaler")) == []
    scaled = _render(settings, installer, chart, tmp_path, "autoscaling-tls-secrets")
    autoscalers = {d["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[1]: d["spec"]
                   for d in _of_kind(scaled, "HorizontalPodAutoscaler")}  # fmt: skip
    assert sorted(autoscalers) == ["frontend", "matching"]
    assert (autoscalers["frontend"]["minReplicas"], autoscalers["frontend"]["maxReplicas"]) == (2, 6)
    assert "replicas" not in _named(scaled, "Deployment", "-frontend")["spec"]  # the autoscaler owns it
    assert _named(scaled, "Deployment", "-history")["spec"]["replicas"] == 1


def test_every_variable_the_server_configuration_requires_is_set_on_every_role(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    """The image's entrypoint refuses to start a role missing one: the chart sets each, on each role."""
    required = set(re.findall(r'template "required" "([A-Z_]+)"', (chart / "files" / "temporal.yaml").read_text()))
    assert len(required) > 20
    documents = _render(settings, installer, chart, tmp_path, "one-host-each")
    for role in ROLES:
        (container,) = _named(documents, "Deployment", f"-{role}")["spec"]["template"]["spec"]["containers"]
        env = _env(container)
        assert required <= set(env), f"{role} lacks {sorted(required - set(env))}"
        assert env["TEMPORAL_SERVICES"] == role
        assert env["TEMPORAL_SQL_HOST"] == EXAMPLES[(*SQL, "host")]
        assert env["TEMPORAL_SQL_USER"] == "temporal_service"  # its own DSQL role, never admin
        assert env["TEMPORAL_BROADCAST_ADDRESS"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_pods_run_unprivileged_and_read_only_with_grpc_probes_and_zone_spread(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    documents = _render(settings, installer, chart, tmp_path, "one-host-each")
    for role in ROLES:
        pod = _named(documents, "Deployment", f"-{role}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
        assert container["readinessProbe"]["grpc"]["port"] == container["ports"][0]["containerPort"]
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    frontend = _named(documents, "Deployment", "-frontend")["spec"]["template"]["spec"]["containers"][0]
    assert frontend["readinessProbe"]["grpc"]["service"] == "temporal.api.workflowservice.v1.WorkflowService"
    worker = _named(documents, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["livenessProbe"]["grpc"]["service"] == "temporal.api.workflowservice.v1.WorkerService"
    assert _env(frontend)["GOMEMLIMIT"] == {"resourceFieldRef": {"resource": "limits.memory"}}


def test_the_network_policies_open_the_frontend_to_the_namespace_and_the_rest_to_the_release(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    documents = _render(settings, installer, chart, tmp_path, "one-host-each")
    release = _named(documents, "NetworkPolicy", "-release")["spec"]
    frontend = _named(documents, "NetworkPolicy", "-frontend")["spec"]
    assert release["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "temporal"
    assert release["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "temporal"
    assert release["ingress"][1]["ports"] == [{"port": "metrics"}]
    assert frontend["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "frontend"
    assert frontend["ingress"] == [{"ports": [{"port": "grpc"}, {"port": "http"}], "from": [{"podSelector": {}}]}]
    named_ports = {port["name"] for pod in _pods(documents).values() for port in pod["containers"][0].get("ports", [])}
    assert {"grpc", "http", "metrics"} <= named_ports


def test_setup_jobs_are_hooks_in_order_as_the_admin_identity(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    documents = _render(settings, installer, chart, tmp_path, "one-host-each")
    jobs = {d["metadata"]["name"].split("temporal-dsql-", 1)[1]: d for d in _of_kind(documents, "Job")}
    hooks = {name: (job["metadata"]["annotations"]["helm.sh/hook"], int(job["metadata"]["annotations"]
             ["helm.sh/hook-weight"])) for name, job in jobs.items()}  # fmt: skip
    assert hooks["schema-setup"][0] == hooks["es-setup"][0] == "pre-install,pre-upgrade"
    assert hooks["es-setup"][1] < hooks["schema-setup"][1]  # the model's order
    assert hooks["namespace-setup"][0] == "post-install,post-upgrade"
    namespace_pod = jobs["namespace-setup"]["spec"]["template"]["spec"]
    frontend_service = _named(documents, "Service", "-frontend")["metadata"]["name"]
    assert _env(namespace_pod["containers"][0])["TEMPORAL_FRONTEND_HOST"] == frontend_service
    assert namespace_pod["serviceAccountName"] == _named(documents, "ServiceAccount", "-server")["metadata"]["name"]
    account = _named(documents, "ServiceAccount", "-setup")
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < min(w for _, w in hooks.values())
    schema_pod = jobs["schema-setup"]["spec"]["template"]["spec"]
    assert schema_pod["serviceAccountName"] == account["metadata"]["name"]
    env = _env(schema_pod["containers"][0])
    assert env["TEMPORAL_SQL_USER"] == "admin"
    assert env["DSQL_SERVICE_PRINCIPAL_ARN"] == EXAMPLES[("schema", "servicePrincipalArn")]
    server_pod = _named(documents, "Deployment", "-history")["spec"]["template"]["spec"]
    assert server_pod["serviceAccountName"] != account["metadata"]["name"]


def _pods(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each Deployment's and Job's pod spec by its name less the release's prefix (history, schema-setup, ...)."""
    return {d["metadata"]["name"].split("temporal-dsql-", 1)[1]: d["spec"]["template"]["spec"]
            for d in documents if d["kind"] in ("Deployment", "Job")}  # fmt: skip


def test_the_service_principal_defaults_to_the_services_irsa_role(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    role = "arn:aws:iam::123456789012:role/temporal-server-irsa"
    examples = example_values(chart_values(settings))
    del examples["schema"]
    values = {"serviceAccount": {"extraAnnotations": {"eks.amazonaws.com/role-arn": role}}}
    documents = _documents(lint_and_template(settings, chart, installer, (
        _write(tmp_path / "examples.yaml", examples), _write(tmp_path / "irsa.yaml", values))))  # fmt: skip
    schema_job = _named(documents, "Job", "-schema-setup")["spec"]["template"]["spec"]
    assert _env(schema_job["containers"][0])["DSQL_SERVICE_PRINCIPAL_ARN"] == role


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("postgresql-password", {"schema-setup": {"pg-credentials"}, "es-setup": set(), "namespace-setup": set(),
                                 "history": {"pg-credentials"}, "worker": {"pg-credentials"}}),
        ("opensearch", {"schema-setup": set(), "es-setup": {"search-credentials"}, "namespace-setup": set(),
                        "frontend": {"search-credentials"}}),
    ],
)  # fmt: skip
def test_secrets_are_only_referenced_and_only_where_needed(settings: Settings, installer: Installer, chart: Path,
                                                           tmp_path: Path, name: str,
                                                           needs: dict[str, set[str]]) -> None:  # fmt: skip
    documents = _render(settings, installer, chart, tmp_path, name)
    assert list(_of_kind(documents, "Secret")) == []
    pods = _pods(documents)
    for workload, secrets in needs.items():
        pod = pods[workload]
        env = _env(pod["containers"][0])
        assert not any(key.endswith("PASSWORD") for key in env), sorted(env)
        mounted = {volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
        assert mounted == secrets, workload
        files = [value for key, value in env.items() if key.endswith("PASSWORD_FILE")]
        assert len(files) == len(secrets), workload
        assert all(value.startswith("/run/secrets/") for value in files)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_workloads_environment_is_one_its_program_accepts(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path, name: str
) -> None:
    """What each container gets (its variables, the image's own, a file's secret as the entrypoint reads it) loaded
    the way `temporal-dsql-deploy` and the server's settings load it: accepted, or the release would fail at the
    cluster. Pods take no variables from the namespace's Services (TEMPORAL_FRONTEND_PORT=tcp://... would be read)."""
    image = {"TEMPORAL_VERSION": chart_values(settings)["server"]["image"]["tag"],
             "CACHE_DIR": "/opt/temporal-dsql-deploy/cache", "PATH": "/usr/bin:/bin"}  # fmt: skip
    for workload, pod in _pods(_render(settings, installer, chart, tmp_path, name)).items():
        assert pod["enableServiceLinks"] is False, workload
        variables = {key: value for key, value in _env(pod["containers"][0]).items() if isinstance(value, str)}
        for key in [key for key in variables if key.endswith("_FILE") and variables[key].startswith("/run/secrets/")]:
            variables[key.removesuffix("_FILE")] = "a-password"
            del variables[key]
        loaded = subprocess.run([sys.executable, "-c", "from temporal_dsql_deploy.settings.config import "
                                 "load_settings_from_environment as load; load()"],
                                env={**image, **variables}, cwd=tmp_path, capture_output=True, text=True,
                                check=False, timeout=60)  # fmt: skip
        assert loaded.returncode == 0, f"{name}: {workload}'s environment is refused:\n{loaded.stderr[-1500:]}"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"server": {"history": {"replicaCount": 200}, "config": {"numHistoryShards": 100}}},
         "server.history.replicaCount 200 is more than server.config.numHistoryShards 100"),
        ({"server": {"history": {"replicas": 3}}}, "additional properties 'replicas' not allowed"),  # a typo
        ({"server": {"config": {"persistence": {"default": {"sql": {"host": ""}}}}}},
         "set server.config.persistence.default.sql.host"),
        ({"schema": {"servicePrincipalArn": ""}}, "set schema.servicePrincipalArn"),
        ({"elasticsearch": {"existingSecret": "search-credentials"}}, "/elasticsearch"),  # a password with no user
        ({"server": {"config": {"persistence": {"default": {"sql": {"maxConnLifetime": "2h"}}}}}}, "maxConnLifetime"),
        ({"server": {"config": {"persistence": {"default": {"sql": {"maxIdleConns": 30}}}}}},
         "maxIdleConns 30 is more than maxConns 20"),
        ({"server": {"image": {"tag": "latest"}}}, f"server.image.tag latest is not Temporal {LATEST.version}"),
    ],
)  # fmt: skip
def test_a_values_mistake_is_refused_by_helm_naming_the_value(settings: Settings, installer: Installer, chart: Path,
                                                              tmp_path: Path, values: dict[str, Any],
                                                              named: str) -> None:  # fmt: skip
    examples = _examples(chart, settings, tmp_path)
    with pytest.raises(DeployError) as refused:
        lint_and_template(settings, chart, installer, (examples, _write(tmp_path / "wrong.yaml", values)))
    assert named in refused.value.problem


def test_render_writes_the_manifests_and_the_example_values_it_used(
    settings: Settings, installer: Installer, chart: Path
) -> None:
    rendered = render(settings, chart, installer)
    assert rendered.examples is not None
    assert yaml.safe_load(rendered.examples.read_text(encoding="utf-8")) == example_values(chart_values(settings))
    assert rendered.documents == len(_documents(rendered.manifests.read_text(encoding="utf-8")))
    assert (chart / ".helmignore").read_text(encoding="utf-8").splitlines()[-1] == "rendered/"


def test_the_template_unit_tests_pass(settings: Settings, installer: Installer, chart: Path, tmp_path: Path) -> None:
    """helm-unittest's suites (tests/chart/unittest) on the generated chart: the parts a user changes most."""
    binary = HELM_UNITTEST.install(settings, installer)
    copy = tmp_path / "temporal-dsql"
    shutil.copytree(chart, copy)
    shutil.copytree(PROJECT_ROOT / "tests" / "chart" / "unittest", copy / "tests")
    result = run_program([str(binary), "--strict", "--file", "tests/*_test.yaml", str(copy)], what="helm-unittest",
                         fix="see the failing assertion", timeout_s=300)  # fmt: skip
    assert result.returncode == 0, result.tail()
    passed = re.search(r"Tests:\s+(\d+) passed", result.stdout)
    assert passed is not None, result.stdout[-2000:]
    assert int(passed.group(1)) >= 10, result.stdout[-2000:]


def test_a_standby_regions_release_renders_with_no_hosts_and_no_jobs(
    settings: Settings, installer: Installer, chart: Path, tmp_path: Path
) -> None:
    """values-<region>.yaml of a peered pair's standby Region, as `invoke chart` writes it, over the examples."""
    peer = "zyxwvutsrqponmlkjihgfedcba.dsql.us-west-2.on.aws"
    pair = settings.model_copy(update={"standby_region": "us-west-2", "serving_region": None, "aws_region": "us-east-1",
                                       "standby_sql_host": peer})  # fmt: skip
    standby = _write(tmp_path / "values-us-west-2.yaml", region_values(pair)["us-west-2"])
    documents = _documents(lint_and_template(settings, chart, installer, (_examples(chart, settings, tmp_path),
                                                                          standby)))  # fmt: skip
    assert {role: _named(documents, "Deployment", f"-{role}")["spec"]["replicas"] for role in ROLES} == dict.fromkeys(
        ROLES, 0)  # fmt: skip
    assert list(_of_kind(documents, "Job")) == []  # the serving Region's release runs the setup jobs
    [history] = _named(documents, "Deployment", "-history")["spec"]["template"]["spec"]["containers"]
    assert _env(history)["TEMPORAL_SQL_HOST"] == peer
    assert _env(history)["AWS_REGION"] == "us-west-2"
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
