"""`invoke deploy` and `invoke cleanup`: the DSQL cluster through Terraform, guarded at every step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporal_dsql_deploy.cloud import aws
from temporal_dsql_deploy.cloud.terraform import (
    CLUSTER_TYPE,
    Terraform,
    find_terraform,
    require_terraform,
    variables,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import check_owned, remove_owned
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime import docker_runtime
from temporal_dsql_deploy.runtime.components import installed_process_compose
from temporal_dsql_deploy.runtime.render_compose import CONFIG_DIR
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import DSQL_MAX_CONNECTION_LIFETIME, Settings
from temporal_dsql_deploy.settings.envfile import generated_by_deploy, update_env_file
from temporal_dsql_deploy.settings.environment import settings_environment

Confirm = Callable[[str], bool]
DSQL_PORT = 5432
DSQL_ADMIN_USER = "admin"
DSQL_DATABASE = "postgres"  # DSQL has exactly one database
DEFAULT_CONN_LIFETIME = timedelta(seconds=300)
DEFAULT_STS_REGION = "us-east-1"  # credentials can be checked before a Region is chosen


@dataclass
class DeployResult:
    steps: list[str] = field(default_factory=list)
    applied: bool = False
    env_changed: bool = False
    endpoint: str = ""


def _preflight(settings: Settings) -> list[str]:
    """Everything that would stop a deploy, all of it at once, found before anything is created."""
    problems = []
    if find_terraform() is None:
        problems.append("terraform is not installed (not on PATH): install Terraform 1.5 or newer")
    if not settings.aws_region:
        problems.append("AWS_REGION is not set: set it (e.g. us-east-1) in .env or the environment")
    elif region := aws.region_problem(settings.aws_region):
        problems.append(region)
    credentials = aws.credential_problem(settings.aws_region or DEFAULT_STS_REGION)
    if credentials:
        problems.append(f"{credentials.problem}: {credentials.fix}")
    elif settings.aws_region and not problems and (service := aws.dsql_problem(settings.aws_region)):
        problems.append(service)
    if settings.standby_region and not settings.witness_region:
        problems.append(f"STANDBY_REGION={settings.standby_region} makes a peered pair, which needs a witness: set "
                        "WITNESS_REGION to a third Region (e.g. us-east-2)")  # fmt: skip
    return problems


# Fields `invoke deploy` writes to .env: what points the stack at the cluster (no secrets: auth is IAM).
DEPLOYED_FIELDS = (
    "project_name", "aws_region", "temporal_sql_host", "temporal_sql_port", "temporal_sql_user",
    "temporal_sql_database", "temporal_sql_plugin", "temporal_sql_tls_enabled", "temporal_sql_iam_auth",
    "temporal_sql_max_conns", "temporal_sql_max_idle_conns", "temporal_sql_max_conn_lifetime",
)  # fmt: skip


def as_cluster(settings: Settings, region: str, endpoint: str) -> Settings:
    """The settings as Temporal on a DSQL cluster in AWS sees them: its endpoint, IAM tokens over TLS as admin (the
    services as their own role), the remote pool unless the operator set one (the local stack's smaller one stays
    local), and a connection lifetime DSQL allows."""
    lifetime = settings.temporal_sql_max_conn_lifetime
    pool: dict[str, object] = {}
    if "temporal_sql_max_conns" not in settings.model_fields_set:
        pool["temporal_sql_max_conns"] = Settings.model_fields["temporal_sql_max_conns"].default
    if "temporal_sql_max_idle_conns" not in settings.model_fields_set:
        pool["temporal_sql_max_idle_conns"] = pool.get("temporal_sql_max_conns", settings.temporal_sql_max_conns)
    return settings.model_copy(
        update={
            **pool,
            "aws_region": region,
            "temporal_sql_host": endpoint,
            "temporal_sql_port": DSQL_PORT,
            "temporal_sql_user": DSQL_ADMIN_USER,
            "temporal_sql_database": DSQL_DATABASE,
            "temporal_sql_plugin": "dsql",
            "temporal_sql_tls_enabled": True,
            "temporal_sql_iam_auth": True,
            # The operator's lifetime stays if DSQL allows it (it closes connections at 60 minutes).
            "temporal_sql_max_conn_lifetime": lifetime if lifetime < DSQL_MAX_CONNECTION_LIFETIME else
            DEFAULT_CONN_LIFETIME,
        }
    )  # fmt: skip


def dsql_env(settings: Settings, outputs: dict[str, Any]) -> dict[str, str]:
    """The .env entries that point the stack at the deployed cluster (and its peer's endpoint, for a pair), rendered
    from settings like any process's."""
    deployed = as_cluster(settings, str(outputs["region"]), str(outputs["endpoint"]))
    fields: tuple[str, ...] = DEPLOYED_FIELDS
    if outputs.get("peer_endpoint"):
        deployed = deployed.model_copy(update={"standby_sql_host": str(outputs["peer_endpoint"])})
        fields = (*fields, "standby_region", "witness_region", "standby_sql_host")
    rendered = settings_environment(deployed, fields)
    return {name: value for name, value in rendered.items() if isinstance(value, str)}


def deploy(settings: Settings, project_root: Path, *, yes: bool, dry_run: bool, confirm: Confirm,
           report: Reporter) -> DeployResult:  # fmt: skip
    result = DeployResult()
    problems = _preflight(settings)
    if dry_run:
        result.steps = [
            "terraform init", f"terraform plan ({' '.join(variables(settings)) if settings.aws_region else '...'})",
            "confirm the plan" + (" (skipped: --yes)" if yes else ""), "terraform apply",
            "wait for the cluster to be ACTIVE", f"write {project_root / '.env'} from terraform outputs",
        ]  # fmt: skip
    if problems:
        raise DeployError(
            "cannot deploy; nothing was created:\n" + "\n".join(f"  - {p}" for p in problems),
            "fix the problems above and run `invoke deploy` again (`--dry-run` checks without changing anything)",
        )
    if dry_run:
        return result
    terraform = Terraform(require_terraform(), project_root / "terraform")
    report("terraform init")
    terraform.init()
    summary = terraform.plan(variables(settings))
    report(summary.describe())
    if not summary.no_changes:
        if not yes and not confirm("apply this plan?"):
            raise DeployError("deploy cancelled; nothing was applied", "run `invoke deploy --yes` to skip the question")
        report("terraform apply")
        terraform.apply_plan()
        result.applied = True
    terraform.plan_file().unlink(missing_ok=True)
    outputs = terraform.outputs()
    report(f"waiting for cluster {outputs['identifier']} to be ACTIVE")
    aws.wait_until_active(str(outputs["identifier"]), str(outputs["region"]))
    result.endpoint = str(outputs["endpoint"])
    result.env_changed = update_env_file(project_root / ".env", dsql_env(settings, outputs))
    return result


def _clusters_in_state(resources: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every DSQL cluster the state holds (the primary and, for a multi-Region pair, the peer): address, values."""
    return [(str(resource.get("address", "?")), resource.get("values", {})) for resource in resources
            if resource.get("type", str(resource.get("address", "")).split(".")[0]) == CLUSTER_TYPE]  # fmt: skip


def _tag_problem(settings: Settings, source: str, tags: dict[str, str]) -> str | None:
    if tags.get("Project") == settings.project_name:
        return None
    return f"the {source} tags it Project={tags.get('Project')!r}, but PROJECT_NAME is {settings.project_name!r}"


def _destroy_problems(settings: Settings, values: dict[str, Any]) -> list[str]:
    """Why one cluster of the state may not be destroyed: its tag or deletion protection, in the state or live."""
    identifier = str(values.get("identifier", "?"))
    problems = [_tag_problem(settings, "Terraform state", values.get("tags_all") or values.get("tags") or {})]
    protected = ["Terraform state"] if values.get("deletion_protection_enabled") else []
    # The live cluster counts too (tags or protection may have changed outside Terraform), read in its own
    # Region: the peer of a multi-Region pair is not in AWS_REGION.
    arn = str(values.get("arn", "")).split(":")
    region = arn[3] if len(arn) > 3 and arn[3] else settings.aws_region
    if region:
        try:
            live = aws.describe_cluster(identifier, region)
        except DeployError as unreadable:
            problems.append(unreadable.problem)
        else:
            problems.append(_tag_problem(settings, "live cluster", live.tags))
            protected += ["live cluster"] if live.deletion_protection else []
    if protected:
        problems.append(f"deletion protection is on (per the {' and the '.join(protected)})")
    return [problem for problem in problems if problem]


def check_destroy_allowed(settings: Settings, resources: list[dict[str, Any]]) -> list[str]:
    """The identifiers of the state's clusters, every one checked destroyable; else one error listing each that is
    not and why, raised before anything is planned, asked or changed."""
    refused, allowed = [], []
    for address, values in _clusters_in_state(resources):
        identifier = str(values.get("identifier", "?"))
        problems = _destroy_problems(settings, values)
        if problems:
            refused.append(f"  - cluster {identifier} ({address}): " + "; ".join(problems))
        else:
            allowed.append(identifier)
    if refused:
        raise DeployError(
            f"refusing to destroy {len(refused)} of the {len(refused) + len(allowed)} DSQL clusters in the "
            "Terraform state; nothing was changed:\n" + "\n".join(refused),
            "set PROJECT_NAME to the project that owns a cluster tagged for another, or destroy that one by hand; "
            "turn deletion protection off first: terraform -chdir=terraform apply -var deletion_protection=false "
            f"-var project_name={settings.project_name} -var region={settings.aws_region}",
        )
    return allowed


def _generated_files(project_root: Path, settings: Settings) -> list[Path]:
    """What cleanup deletes; each checked to be the product's before anything is asked or deleted."""
    compose = docker_runtime.compose_file(project_root)
    candidates = [settings.stack_dir, compose, compose.parent / CONFIG_DIR, project_root / "terraform" / "tfplan"]
    if generated_by_deploy(project_root / ".env"):
        candidates.append(project_root / ".env")
    files = [path for path in candidates if path.exists() or path.is_symlink()]
    for path in files:
        check_owned(path, project_root=project_root)
    return files


def cleanup(settings: Settings, project_root: Path, *, destroy_infra: bool, yes: bool, confirm: Confirm,
            report: Reporter) -> list[str]:  # fmt: skip
    """Stop the stack, remove its data and generated files; with `destroy_infra`, destroy the cluster."""
    terraform = Terraform(require_terraform(), project_root / "terraform") if destroy_infra else None
    resources = terraform.resources() if terraform is not None else []
    clusters = check_destroy_allowed(settings, resources)
    stack = LocalStack(settings, project_root)
    stack.check_runs_from_here()
    files = _generated_files(project_root, settings)
    what = [f"stop the stack and delete {', '.join(str(f) for f in files) or 'nothing else'}"]
    if resources and terraform is not None:
        # The destroy plan is shown before the question, and the very plan shown is the one applied.
        plan = terraform.plan(variables(settings), destroy=True)
        report(plan.describe())
        what.append(f"destroy the {len(plan.delete)} resources above (DSQL clusters: {', '.join(clusters) or 'none'})")
    if not yes and not confirm("This will " + " and ".join(what) + ". Continue?"):
        if terraform is not None:
            terraform.plan_file().unlink(missing_ok=True)
        raise DeployError("cleanup cancelled; nothing was changed", "run `invoke cleanup --yes` to skip the question")
    done = []
    # Its processes are stopped, orphans included, before anything under them is deleted.
    stopped = stack.down(installed_process_compose(settings), volumes=True)
    if stopped.anything:
        done.append("stopped the local stack" + (f" ({len(stopped.leftovers)} processes without their supervisor)"
                                                  if stopped.leftovers else ""))  # fmt: skip
    if docker_runtime.compose_file(project_root).exists():
        done.extend(line for line in docker_runtime.down(settings, project_root, volumes=True)
                    if line != docker_runtime.NOTHING_RUNNING)  # fmt: skip
    if resources and terraform is not None:  # before the files: the plan file is among them
        report("destroying: terraform apply (the destroy plan above)")
        terraform.apply_plan()
        terraform.plan_file().unlink(missing_ok=True)
        done.extend(f"destroyed DSQL cluster {identifier}" for identifier in clusters)
    for path in files:
        if path.exists() or path.is_symlink():  # the plan file went with the destroy
            remove_owned(path, project_root=project_root)
            done.append(f"removed {path}")
    return done
