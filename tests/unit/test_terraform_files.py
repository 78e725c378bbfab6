"""The Terraform configuration: formatted, parseable, and saying what the product relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import hcl2
import pytest

from tests.conftest import PROJECT_ROOT

TERRAFORM = PROJECT_ROOT / "terraform"


def _parse() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            for key, blocks in hcl2.load(handle).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def _unquote(value: str) -> str:
    return value.strip('"')


def _blocks(kind: str) -> dict[str, Any]:
    """`resource`/`data` blocks as {"type.name": body}; `variable`/`output` as {name: body}."""
    found: dict[str, Any] = {}
    for block in _parse().get(kind, []):
        for name, body in block.items():
            if kind in {"resource", "data"}:
                for inner, inner_body in body.items():
                    if inner != "__is_block__":
                        found[f"{_unquote(name)}.{_unquote(inner)}"] = inner_body
            else:
                found[_unquote(name)] = body
    return found


def test_terraform_fmt_check() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        if os.environ.get("CI") == "true":
            pytest.fail("terraform is not installed in CI")
        pytest.skip("terraform is not installed")
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                            capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout


def test_every_variable_and_output_is_documented() -> None:
    for kind in ("variable", "output"):
        blocks = _blocks(kind)
        assert blocks, f"no {kind} blocks"
        for name, body in blocks.items():
            assert body.get("description"), f"{kind} {name} has no description"


def test_cluster_is_protected_by_default_and_tagged() -> None:
    variables = _blocks("variable")
    assert variables["deletion_protection"]["default"] is True
    cluster = _blocks("resource")["aws_dsql_cluster.primary"]
    assert "var.deletion_protection" in str(cluster["deletion_protection_enabled"])
    locals_text = str(_parse()["locals"])
    assert "Project" in locals_text
    assert "ManagedBy" in locals_text


def test_outputs_the_deploy_task_reads() -> None:
    outputs = _blocks("output")
    assert {"identifier", "endpoint", "arn", "region"} <= set(outputs)
    assert ".dsql." in str(outputs["endpoint"]["value"])


@pytest.mark.parametrize(
    ("document", "action"),
    [("temporal_dsql_connect", "dsql:DbConnect"), ("temporal_dsql_schema_admin", "dsql:DbConnectAdmin")],
)
def test_connect_policies_are_least_privilege_and_scoped_to_this_cluster(document: str, action: str) -> None:
    statements = _blocks("data")[f"aws_iam_policy_document.{document}"]["statement"]
    assert len(statements) == 1
    assert [_unquote(each) for each in statements[0]["actions"]] == [action]
    assert str(statements[0]["resources"]) == "${local.dsql_clusters}"
    clusters = str(_blocks("locals")["dsql_clusters"])
    assert "aws_dsql_cluster.primary.arn" in clusters
    assert "*" not in clusters.replace("peer[*]", "")


def test_the_services_policy_cannot_connect_as_admin() -> None:
    services = _blocks("data")["aws_iam_policy_document.temporal_dsql_connect"]
    assert "DbConnectAdmin" not in str(services)
    outputs = _blocks("output")
    assert "temporal_dsql_connect" in str(outputs["service_connect_policy_arn"]["value"])
    assert "temporal_dsql_schema_admin" in str(outputs["schema_admin_policy_arn"]["value"])


def test_multi_region_pair_is_optional() -> None:
    resources = _blocks("resource")
    assert "aws_dsql_cluster_peering.primary" in resources
    assert "count" in resources["aws_dsql_cluster.peer"]
    assert _blocks("variable")["peer_region"]["default"] is None


def test_provider_version_supports_dsql() -> None:
    required = str(_parse()["terraform"])
    assert '"= 5.100.0"' in required  # exact (its hashes: .terraform.lock.hcl), and new enough for the peer cluster
