"""A thin wrapper over the terraform CLI for `terraform/`: init, plan with a summary, apply, outputs, state."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.settings.config import Settings

PLAN_FILE = "tfplan"
TIMEOUT_S = 1800
CLUSTER_TYPE = "aws_dsql_cluster"


def find_terraform() -> str | None:
    return shutil.which("terraform")


def require_terraform() -> str:
    found = find_terraform()
    if found is None:
        raise DeployError("terraform is not installed (not on PATH)", "install Terraform 1.5 or newer and run again")
    return found


def variables(settings: Settings) -> list[str]:
    """-var arguments from the settings; the region must be set."""
    if not settings.aws_region:
        raise DeployError("AWS_REGION is not set", "set AWS_REGION (e.g. us-east-1) in .env or the environment")
    given = ["-var", f"project_name={settings.project_name}", "-var", f"region={settings.aws_region}"]
    if settings.standby_region:  # a peered multi-Region pair: the second cluster, and the witness both name
        given += ["-var", f"peer_region={settings.standby_region}"]
        if settings.witness_region:  # required with a peer: Terraform says so, naming the variable, if it is not set
            given += ["-var", f"witness_region={settings.witness_region}"]
    return given


@dataclass(frozen=True)
class PlanSummary:
    create: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def no_changes(self) -> bool:
        return not (self.create or self.update or self.replace or self.delete)

    def describe(self) -> str:
        if self.no_changes:
            return "no changes: the infrastructure matches the configuration"
        parts = [f"{len(self.create)} to create", f"{len(self.update)} to change", f"{len(self.replace)} to replace",
                 f"{len(self.delete)} to destroy"]  # fmt: skip
        lines = [f"plan: {', '.join(parts)}"]
        for verb, addresses in (("+", self.create), ("~", self.update), ("-/+", self.replace), ("-", self.delete)):
            lines.extend(f"  {verb} {address}" for address in addresses)
        return "\n".join(lines)


def summarize_plan(plan: dict[str, Any]) -> PlanSummary:
    """Sort `terraform show -json PLAN`'s resource changes by what will happen to each."""
    summary = PlanSummary()
    for change in plan.get("resource_changes", []):
        actions = change.get("change", {}).get("actions", [])
        address = str(change.get("address", "?"))
        if actions == ["create"]:
            summary.create.append(address)
        elif actions == ["update"]:
            summary.update.append(address)
        elif actions == ["delete"]:
            summary.delete.append(address)
        elif set(actions) == {"delete", "create"}:
            summary.replace.append(address)
    return summary


class Terraform:
    """Runs terraform in the project's terraform/ directory."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir

    def _run(self, *args: str, what: str) -> str:
        argv = [self.binary, f"-chdir={self.workdir}", *args]
        return run_tool(argv, what=what, fix="see terraform's message above", timeout_s=TIMEOUT_S)

    def init(self) -> None:
        self._run("init", "-input=false", "-no-color", what="terraform init")

    def plan(self, var_args: list[str], *, destroy: bool = False) -> PlanSummary:
        mode = ["-destroy"] if destroy else []
        self._run("plan", "-input=false", "-no-color", *mode, f"-out={PLAN_FILE}", *var_args, what="terraform plan")
        return summarize_plan(json.loads(self._run("show", "-json", PLAN_FILE, what="terraform show")))

    def apply_plan(self) -> None:
        self._run("apply", "-input=false", "-no-color", PLAN_FILE, what="terraform apply")

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self._run("output", "-json", what="terraform output"))
        return {name: entry.get("value") for name, entry in raw.items()}

    def resources(self) -> list[dict[str, Any]]:
        """Resources recorded in the state (empty when nothing is deployed)."""
        state = json.loads(self._run("show", "-json", what="terraform show (state)"))
        resources: list[dict[str, Any]] = state.get("values", {}).get("root_module", {}).get("resources", [])
        return resources

    def plan_file(self) -> Path:
        return self.workdir / PLAN_FILE
