"""The chart installed with helm into a real API server (v1.37.2, with its controller-manager and scheduler, kwok's
fake nodes in three zones): every object admitted by server-side apply with strict field validation, the hooks run in
the model's order around the release, the Deployments available with their pods bound to nodes, an upgrade spreading
each role over the zones."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_dsql_deploy.kubernetes.chart import chart_values
from temporal_dsql_deploy.kubernetes.render import NAMESPACE, RELEASE, example_values, helm_command, helm_environment
from temporal_dsql_deploy.process import run_program
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.settings.config import Settings
from tests.kube.control_plane import ZONES, ControlPlane

pytestmark = pytest.mark.kube
ROLES = ("history", "matching", "frontend", "worker")
HELM_WAIT = "5m"


def _helm(settings: Settings, installer: Installer, cluster: ControlPlane, *args: str) -> str:
    env = {**helm_environment(settings), "KUBECONFIG": str(cluster.kubeconfig)}
    result = run_program([*helm_command(settings, installer), *args], what=f"helm {args[0]}", fix="see helm's output",
                         timeout_s=600, env=env)  # fmt: skip
    assert result.returncode == 0, result.tail()
    return result.stdout


def _items(cluster: ControlPlane, path: str) -> list[dict[str, Any]]:
    return list(cluster.api("GET", path)["items"])


@pytest.fixture(scope="module")
def release(settings: Settings, installer: Installer, cluster: ControlPlane, chart: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """The release installed with the example values for what only a user knows; the values file."""
    values = tmp_path_factory.mktemp("values") / "examples.yaml"
    values.write_text(yaml.safe_dump(example_values(chart_values(settings))), encoding="utf-8")
    _helm(settings, installer, cluster, "install", RELEASE, str(chart), "--namespace", NAMESPACE, "--create-namespace",
          "--values", str(values), "--wait", "--timeout", HELM_WAIT)  # fmt: skip
    return values


def test_the_release_is_deployed_with_every_object_admitted(settings: Settings, installer: Installer,
                                                             cluster: ControlPlane, release: Path) -> None:  # fmt: skip
    status = json.loads(_helm(settings, installer, cluster, "status", RELEASE, "--namespace", NAMESPACE, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    manifest = [d for d in yaml.safe_load_all(status["manifest"]) if d]
    assert len(manifest) >= 15
    paths = {"Deployment": "/apis/apps/v1", "PodDisruptionBudget": "/apis/policy/v1",
             "NetworkPolicy": "/apis/networking.k8s.io/v1"}  # fmt: skip
    for document in manifest:
        kind, name = document["kind"], document["metadata"]["name"]
        base = paths.get(kind, "/api/v1")
        plural = {"NetworkPolicy": "networkpolicies"}.get(kind, kind.lower() + "s")
        stored = cluster.api("GET", f"{base}/namespaces/{NAMESPACE}/{plural}/{name}")
        assert stored["metadata"]["name"] == name
    frontend = cluster.api("GET", f"/api/v1/namespaces/{NAMESPACE}/services/temporal-temporal-dsql-frontend")
    assert frontend["spec"]["clusterIP"].startswith("10.96.")  # defaulted by the API server


def test_the_hooks_ran_in_order_around_the_release(cluster: ControlPlane, release: Path) -> None:
    jobs = {job["metadata"]["name"].split("temporal-dsql-", 1)[1]: job
            for job in _items(cluster, f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")}  # fmt: skip
    assert sorted(jobs) == ["es-setup", "namespace-setup", "schema-setup"]
    for name, job in jobs.items():
        assert job["status"].get("succeeded") == 1, name
    created = {name: job["metadata"]["creationTimestamp"] for name, job in jobs.items()}
    done = {name: job["status"]["completionTime"] for name, job in jobs.items()}
    deployments = _items(cluster, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
    first_deployment = min(d["metadata"]["creationTimestamp"] for d in deployments)
    assert done["es-setup"] <= created["schema-setup"]
    assert done["schema-setup"] <= first_deployment <= created["namespace-setup"]


def test_the_roles_are_available_with_their_pods_on_nodes(cluster: ControlPlane, release: Path) -> None:
    deployments = {d["metadata"]["name"].rsplit("-", 1)[1]: d
                   for d in _items(cluster, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")}  # fmt: skip
    assert sorted(deployments) == sorted(ROLES)
    for role, deployment in deployments.items():
        assert deployment["status"].get("availableReplicas") == 1, role
    pods = [p for p in _items(cluster, f"/api/v1/namespaces/{NAMESPACE}/pods") if p["status"]["phase"] == "Running"]
    assert len(pods) == len(ROLES)
    assert all(pod["spec"].get("nodeName", "").startswith("fake-node-") for pod in pods)


def test_an_upgrade_to_three_hosts_a_role_spreads_each_over_the_zones(settings: Settings, installer: Installer,
                                                                       cluster: ControlPlane, chart: Path,
                                                                       release: Path) -> None:  # fmt: skip
    hosts = [f"--set=server.{role}.replicaCount=3" for role in ROLES]
    _helm(settings, installer, cluster, "upgrade", RELEASE, str(chart), "--namespace", NAMESPACE, "--values",
          str(release), *hosts, "--wait", "--timeout", HELM_WAIT)  # fmt: skip
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
             for n in _items(cluster, "/api/v1/nodes")}  # fmt: skip
    pods = [p for p in _items(cluster, f"/api/v1/namespaces/{NAMESPACE}/pods") if p["status"]["phase"] == "Running"]
    for role in ROLES:
        zones = sorted(nodes[p["spec"]["nodeName"]] for p in pods
                       if p["metadata"]["labels"]["app.kubernetes.io/component"] == role)  # fmt: skip
        assert zones == sorted(ZONES), role


def test_the_api_server_refuses_an_unknown_field(cluster: ControlPlane, release: Path) -> None:
    """What makes the admissions above mean something: the same kind of object with a misspelt field is refused."""
    deployment = cluster.api("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/temporal-temporal-dsql-worker")
    wrong = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "misspelt", "namespace": NAMESPACE},
             "spec": {**{k: v for k, v in deployment["spec"].items() if k != "replicas"}, "replica": 1}}  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        cluster.api("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments?fieldValidation=Strict", wrong)
    assert refused.value.code == 400
    assert "replica" in refused.value.read().decode()
