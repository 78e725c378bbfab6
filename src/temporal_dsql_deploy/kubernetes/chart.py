"""A Helm chart of the Temporal services and their setup jobs, generated from the service model.

What the model knows becomes the chart's defaults and generated templates: the roles and their ports, health
services, memory and hosts; each workload's environment, every variable taken from a value (`_environment.tpl`);
which one-shot jobs run before the services and which after (the hooks, `_jobs.tpl`); the server and dynamic
configuration the image carries. The rest (Deployments, Services, policies) are the chart's own templates in
`chart/templates`, laid out like the official temporalio/helm-charts values where the two overlap. The databases
are not in the chart: DSQL and the search engine are endpoints outside the cluster.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from temporal_dsql_deploy.cloud.infra import as_cluster
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.kubernetes.sizing import AUTOSCALING_FACTOR, Plan
from temporal_dsql_deploy.kubernetes.values_schema import values_schema
from temporal_dsql_deploy.owned_paths import MARKER
from temporal_dsql_deploy.runtime.model import (
    Component,
    GrpcProbe,
    HttpProbe,
    Service,
    Stack,
    persistence_environment,
    temporal_roles,
)
from temporal_dsql_deploy.runtime.units import build_stack, unit_of
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef

CHART_NAME = "temporal-dsql"
RENDERED_DIR = "rendered"  # `invoke chart --render`'s output in the chart's directory, not part of the package
GENERATED = ("templates", "files", RENDERED_DIR, "Chart.yaml", "values.yaml", "values.schema.json", ".helmignore")
CHART_VERSION = "0.1.0"  # the product's version (pyproject)
# Production defaults where the local stack's differ: shards are fixed when the schema is first used.
PRODUCTION_SHARDS = 512
PRINCIPAL_PLACEHOLDER = "arn:aws:iam::000000000000:role/set-schema-servicePrincipalArn"
# The local stack's one matching host takes one partition per task queue; a chart runs several: Temporal's default.
LOCAL_ONLY_DYNAMIC_CONFIG = ("matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions")
SERVER_CPU_REQUEST = "500m"  # no CPU limit: throttling a gRPC server shows up as latency, not as errors
SQL = ".Values.server.config.persistence.default.sql"
ES = ".Values.elasticsearch"
FULLNAME = '(include "temporal-dsql.fullname" .)'
# Variables the chart's own helpers set (secrets by reference, optional credentials and CA): not per workload.
SET_BY_HELPERS = frozenset(
    {
        "TEMPORAL_SQL_PASSWORD",
        "TEMPORAL_ELASTICSEARCH_PASSWORD",
        "TEMPORAL_ELASTICSEARCH_USERNAME",
        "TEMPORAL_SQL_TLS_CA_FILE",
    }
)
# Variables that are facts of the workload, the same in every release.
CONSTANTS = frozenset({"TEMPORAL_SERVICES", "TEMPORAL_BIND_IP", "TEMPORAL_DYNAMIC_CONFIG_FILE"})
# Facts of the image, which sets them itself (docker/Dockerfile): the release it holds and where its tools are, so
# an image pushed under any tag is described by itself, not by the chart.
SET_BY_IMAGE = frozenset({"TEMPORAL_VERSION", "CACHE_DIR", "TEMPORAL_SERVER_CONFIG_FILE"})
# Variables left out when their value is empty (the settings would refuse an empty one).
OMITTED_WHEN_EMPTY = frozenset({"DSQL_SERVICE_PRINCIPAL_ARN"})
# The Secrets a workload mounts, by the variables it has: a job that reads neither mounts neither.
SECRET_USES = {"sql": "TEMPORAL_SQL_", "search": "TEMPORAL_ELASTICSEARCH_"}
# History's memory in the chart: its caches grow with the shards a host owns (the events cache alone holds up to
# 512 KiB per shard), and the chart's default is 512 shards where the local stack has 4.
HISTORY_MEMORY_MB = 2048
ENDPOINT_HELP = "the DSQL cluster endpoint (`terraform output` endpoint, or TEMPORAL_SQL_HOST after `invoke deploy`)"


def _required(path: str, what: str) -> str:
    return f'required "set {path.removeprefix(".Values.")} to {what}" {path}'


def _value_of(variable: str, workload: Workload, roles: tuple[str, ...]) -> str:
    """The Helm expression a workload's variable takes its value from (every setting is a value of the chart)."""
    per_role = {f"TEMPORAL_{each.upper()}_PORT": f".Values.server.{each}.service.port" for each in roles}
    per_role |= {
        f"TEMPORAL_{each.upper()}_MEMBERSHIP_PORT": f".Values.server.{each}.service.membershipPort" for each in roles
    }
    fixed = {
        "TEMPORAL_SQL_PLUGIN": f"{SQL}.pluginName",
        "TEMPORAL_SQL_HOST": _required(f"{SQL}.host", ENDPOINT_HELP),
        "TEMPORAL_SQL_PORT": f"{SQL}.port",
        "TEMPORAL_SQL_DATABASE": f"{SQL}.database",
        "TEMPORAL_SQL_TLS_ENABLED": f"{SQL}.tls.enabled",
        "TEMPORAL_SQL_IAM_AUTH": f"{SQL}.iamAuth",
        "TEMPORAL_SQL_MAX_CONNS": f"{SQL}.maxConns",
        "TEMPORAL_SQL_MAX_IDLE_CONNS": f"{SQL}.maxIdleConns",
        "TEMPORAL_SQL_CONNECTION_TIMEOUT": f"{SQL}.connectTimeout",
        "TEMPORAL_SQL_MAX_CONN_LIFETIME": f"{SQL}.maxConnLifetime",
        "TEMPORAL_SQL_TOKEN_LIFETIME": f"{SQL}.tokenLifetime",
        "AWS_REGION": _required(f"{SQL}.region", "the cluster's AWS Region, e.g. us-east-1"),
        "DSQL_SERVICE_ROLE": f"{SQL}.user",
        "DSQL_SERVICE_PRINCIPAL_ARN": 'include "temporal-dsql.servicePrincipalArn" .',
        "TEMPORAL_ELASTICSEARCH_HOST": _required(f"{ES}.host", "the search engine's host name"),
        "TEMPORAL_ELASTICSEARCH_PORT": f"{ES}.port",
        "TEMPORAL_ELASTICSEARCH_SCHEME": f"{ES}.scheme",
        "TEMPORAL_ELASTICSEARCH_INDEX": f"{ES}.visibilityIndex",
        "SEARCH_ENGINE": f"{ES}.engine",
        "TEMPORAL_LOG_LEVEL": ".Values.server.config.logLevel",
        "TEMPORAL_NUM_HISTORY_SHARDS": ".Values.server.config.numHistoryShards",
        "TEMPORAL_FRONTEND_HOST": f'printf "%s-frontend" {FULLNAME}',
        "TEMPORAL_FRONTEND_HTTP_PORT": ".Values.server.frontend.service.httpPort",
        "TEMPORAL_NAMESPACE": ".Values.namespace.name",
        # The services connect as their own role, the setup jobs as the admin user.
        "TEMPORAL_SQL_USER": f"{SQL}.user" if workload.role else f"{SQL}.adminUser",
        **per_role,
    }
    if variable == "TEMPORAL_METRICS_PORT" and workload.role:
        return f".Values.server.{workload.role}.metrics.port"
    if variable not in fixed:
        raise DeployError(
            f"the chart has no value for {variable} of {workload.name}",
            "map it in kubernetes/chart.py (_value_of) or list it among the constants",
        )
    return fixed[variable]


def role_names(settings: Settings) -> tuple[str, ...]:
    """Temporal's roles in the model's order (names only: their ports are values of the chart)."""
    return tuple(each.role for each in temporal_roles(settings))


@dataclass(frozen=True)
class Workload:
    """A service of the model the chart runs: a role's Deployment or a hook Job."""

    service: Service
    role: str | None  # history, matching, ...; None for a job

    @property
    def name(self) -> str:
        return self.service.name


def chart_settings(settings: Settings) -> Settings:
    """The settings the chart's defaults come from: the deployed cluster's when they point at one, else a cluster's
    shape with its endpoint and Region left for the user (the local stack's own database is no cluster)."""
    shaped = settings if settings.is_dsql and not settings.sql_is_local else as_cluster(settings, "", "")
    update: dict[str, object] = {"standby_region": None, "serving_region": None}  # a release serves one Region
    if "temporal_num_history_shards" not in settings.model_fields_set:
        update["temporal_num_history_shards"] = PRODUCTION_SHARDS
    if shaped.dsql_service_principal_arn is None:  # so the model names the variable; its value is the chart's
        update["dsql_service_principal_arn"] = PRINCIPAL_PLACEHOLDER
    return shaped.model_copy(update=update)


def workloads(stack: Stack, settings: Settings) -> Iterator[Workload]:
    """The roles and the one-shot jobs around them; the local stack's own stores and tools are not the chart's."""
    roles = {f"temporal-{each}": each for each in role_names(settings)}
    around = {name for service in stack if service.name in roles for name in service.depends_on}
    around |= {service.name for service in stack if set(service.depends_on) & set(roles)}
    for service in stack:
        if service.name in roles:
            yield Workload(service, roles[service.name])
        elif service.component is Component.ADMIN and service.name in around:
            yield Workload(service, None)


def _environment(workload: Workload, settings: Settings) -> list[str]:
    container = unit_of(workload.service).container(workload.service, settings)
    variables: dict[str, EnvValue] = {**workload.service.environment, **container.environment}
    roles = role_names(settings)
    lines = []
    for name, value in sorted(variables.items()):
        if name in SET_BY_HELPERS or name in SET_BY_IMAGE:
            continue
        if name in OMITTED_WHEN_EMPTY:
            expression = _value_of(name, workload, roles)
            lines += [f"{{{{- with {expression} }}}}", f"- name: {name}", "  value: {{ . | quote }}", "{{- end }}"]
            continue
        if name in CONSTANTS and isinstance(value, str):
            expression = json.dumps(value)
        elif isinstance(value, SecretRef):
            raise DeployError(
                f"{workload.name}'s secret {name} has no reference in the chart", "add it to the chart's secret helpers"
            )
        else:
            expression = _value_of(name, workload, roles)
        lines += [f"- name: {name}", f"  value: {{{{ {expression} | quote }}}}"]
    return lines


def environment_templates(settings: Settings) -> str:
    """`_environment.tpl`: the roles, each workload's variables and the hook jobs, from the model."""
    stack = build_stack(settings)
    chosen = list(workloads(stack, settings))
    roles = " ".join(w.role for w in chosen if w.role)
    out = [
        "{{/* Generated by `invoke chart` from the service model: do not edit, render the chart again. */}}",
        f'{{{{- define "temporal-dsql.roles" -}}}}{roles}{{{{- end }}}}',
    ]
    for workload in chosen:
        uses = " ".join(kind for kind, prefix in SECRET_USES.items()
                        if any(name.startswith(prefix) for name in workload.service.environment))  # fmt: skip
        out.append(f'{{{{- define "temporal-dsql.uses.{workload.name}" -}}}}{uses}{{{{- end }}}}')
        out += [
            f'{{{{- define "temporal-dsql.env.{workload.name}" }}}}',
            *_environment(workload, settings),
            "{{- end }}",
        ]
    jobs = []
    order = stack.startup_order()
    role_services = {w.name for w in chosen if w.role}
    for workload in chosen:
        if workload.role:
            continue
        after = bool(set(workload.service.depends_on) & role_services)
        jobs.append(
            {
                "name": workload.name,
                "args": list(unit_of(workload.service).container(workload.service, settings).command or []),
                "hook": "post-install,post-upgrade" if after else "pre-install,pre-upgrade",
                # Before install only a hook's own account exists; after it, a job that needs no database role runs as
                # the services do, never as the schema's admin identity.
                "serviceAccount": "server" if after else "setup",
                "weight": order.index(workload.name) - len(order),
            }
        )
    out += ['{{- define "temporal-dsql.jobs" }}', yaml.safe_dump(jobs, sort_keys=False).rstrip(), "{{- end }}"]
    return "\n".join(out) + "\n"


def _memory(mb: int) -> str:
    return f"{mb}Mi"


def _role_values(workload: Workload, settings: Settings) -> dict[str, Any]:
    service = workload.service
    ports = {port.name: port.number for port in service.ports}
    probe = service.healthcheck.probe if service.healthcheck else None
    # A role's own gRPC health where it serves one, else an HTTP path on its metrics port (1.30's worker).
    health = {"service": probe.service if isinstance(probe, GrpcProbe) else ""}
    if isinstance(probe, HttpProbe):
        health = {"httpPath": probe.path}
    memory_mb = unit_of(service).container(service, settings).memory_mb
    memory = _memory(HISTORY_MEMORY_MB if workload.role == "history" else memory_mb)
    values: dict[str, Any] = {
        "replicaCount": service.replicas,
        "service": {"port": ports["grpc"], "membershipPort": ports["membership"]},
        "metrics": {"port": ports["metrics"]},
        "health": health,
        # Memory requested as limited: a role over its request is the first evicted under pressure.
        "resources": {"requests": {"cpu": SERVER_CPU_REQUEST, "memory": memory}, "limits": {"memory": memory}},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "terminationGracePeriodSeconds": 60,
        "podAnnotations": {},
        "podLabels": {},
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
        "topologySpreadConstraints": [],
        "additionalEnv": [],
    }
    if workload.role == "frontend":
        values["service"] |= {"httpPort": ports["http"], "type": "ClusterIP", "annotations": {}}
    if workload.role != "history":
        values["autoscaling"] = {
            "enabled": False,
            "minReplicas": service.replicas,
            "maxReplicas": service.replicas * AUTOSCALING_FACTOR,
            "targetCPUUtilizationPercentage": 70,
        }
    return values


def chart_values(settings: Settings, sized: Plan | None = None) -> dict[str, Any]:
    """values.yaml: the model's defaults for a cluster, keys laid out like the official chart's where they overlap;
    hosts, shards and pools from `sized` when given."""
    shaped = chart_settings(settings)
    if sized is not None:
        shaped = shaped.model_copy(
            update={
                **{f"temporal_{role}_hosts": count for role, count in sized.hosts.items()},
                "temporal_num_history_shards": sized.shards,
                "temporal_sql_max_conns": sized.pool_per_host,
                "temporal_sql_max_idle_conns": sized.pool_per_host,
            }
        )
    stack = build_stack(shaped)
    dynamic = yaml.safe_load(
        resources.files("temporal_dsql_deploy").joinpath("templates/dynamicconfig.yaml").read_text(encoding="utf-8")
    )
    server: dict[str, Any] = {
        "image": {"repository": shaped.runtime_image, "tag": shaped.temporal_version, "pullPolicy": "IfNotPresent"},
        "config": {
            "logLevel": shaped.temporal_log_level,
            "numHistoryShards": shaped.temporal_num_history_shards,
            "persistence": {
                "default": {
                    "sql": {
                        "pluginName": shaped.temporal_sql_plugin,
                        "host": shaped.temporal_sql_host,
                        "port": shaped.temporal_sql_port,
                        "database": shaped.temporal_sql_database,
                        "user": shaped.dsql_service_role if shaped.is_dsql else shaped.temporal_sql_user,
                        "adminUser": shaped.temporal_sql_user,
                        "region": shaped.aws_region or "",
                        "iamAuth": shaped.temporal_sql_iam_auth,
                        "tls": {"enabled": shaped.temporal_sql_tls_enabled, "caConfigMap": "", "caKey": "ca.pem"},
                        "maxConns": shaped.temporal_sql_max_conns,
                        "maxIdleConns": shaped.temporal_sql_max_idle_conns,
                        "maxConnLifetime": _environment_value(shaped, "TEMPORAL_SQL_MAX_CONN_LIFETIME"),
                        "connectTimeout": _environment_value(shaped, "TEMPORAL_SQL_CONNECTION_TIMEOUT"),
                        "tokenLifetime": _environment_value(shaped, "TEMPORAL_SQL_TOKEN_LIFETIME"),
                        "existingSecret": "",
                        "secretKey": "password",
                    }
                }
            },
        },
        "dynamicConfig": {key: value for key, value in dynamic.items() if key not in LOCAL_ONLY_DYNAMIC_CONFIG},
    }
    for workload in workloads(stack, shaped):
        if workload.role:
            server[workload.role] = _role_values(workload, shaped)
    remote_search = shaped.temporal_elasticsearch_host not in ("127.0.0.1", "localhost", "::1")
    return {
        "nameOverride": "",
        "fullnameOverride": "",
        "imagePullSecrets": [],
        "serviceAccount": {"create": True, "name": "", "extraAnnotations": {}},
        "server": server,
        "elasticsearch": {
            "engine": shaped.search_engine,
            "host": shaped.temporal_elasticsearch_host if remote_search else "",
            "port": shaped.temporal_elasticsearch_port if remote_search else 443,
            "scheme": shaped.temporal_elasticsearch_scheme if remote_search else "https",
            "visibilityIndex": shaped.temporal_elasticsearch_index,
            "username": shaped.temporal_elasticsearch_username or "",
            "existingSecret": "",
            "secretKey": "password",
        },
        "schema": {
            "setup": {"enabled": True, "backoffLimit": 3, "activeDeadlineSeconds": 900},
            "servicePrincipalArn": ""
            if shaped.dsql_service_principal_arn == PRINCIPAL_PLACEHOLDER
            else shaped.dsql_service_principal_arn,
            "serviceAccount": {"create": True, "name": "", "extraAnnotations": {}},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
        },
        "namespace": {"name": shaped.temporal_namespace},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The frontend has no authorizer or TLS in this chart: only the release's own namespace reaches it by default.
        "networkPolicy": {
            "enabled": True,
            "frontendFrom": [{"podSelector": {}}],
            "metricsFrom": [{"namespaceSelector": {}}],
        },
    }


def _environment_value(settings: Settings, name: str) -> str:
    """A setting as the services read it (a Go duration as Temporal writes it)."""
    return str(persistence_environment(settings)[name])


def region_values(settings: Settings) -> dict[str, dict[str, Any]]:
    """For a peered pair (STANDBY_REGION): values-<region>.yaml of each Region's release, over values.yaml. Each
    release reaches its own Region's endpoint with tokens signed for that Region; the serving Region's runs the hosts
    and the setup jobs, the other's waits at no hosts until `invoke failover` (whose --dry-run prints the commands)."""
    if settings.standby_region is None:
        return {}
    serving = settings.serving
    local = settings.sql_is_local  # the local stand-in is no cluster: the endpoints are left for the user
    endpoints = {settings.active_region: "" if local else settings.temporal_sql_host,
                 settings.standby_region: settings.standby_sql_host or ""}  # fmt: skip
    return {
        region: {
            "server": {
                "config": {"persistence": {"default": {"sql": {"host": endpoint, "region": region}}}},
                **{
                    role: {"replicaCount": settings.hosts(role) if region == serving else 0}
                    for role in role_names(settings)
                },
            },
            "schema": {"setup": {"enabled": region == serving}},
        }
        for region, endpoint in endpoints.items()
    }


def chart_metadata(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": CHART_NAME,
        "description": "Temporal on Amazon Aurora DSQL (persistence) and Elasticsearch or OpenSearch (visibility), "
        "generated from temporal-dsql-deploy's service model",
        "type": "application",
        "version": CHART_VERSION,
        "appVersion": settings.temporal_version,
        "kubeVersion": ">=1.27.0-0",  # grpc probes are GA from 1.27
    }


def write_chart(settings: Settings, output: Path, sized: Plan | None = None) -> Path:
    """The chart in `output` (a directory this product owns, or a new one), sized by `sized` if given; its path."""
    if output.exists() and not output.is_dir():
        raise DeployError(f"--output {output} is a file", "name a directory for the chart")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).is_file():
        raise DeployError(
            f"--output {output} holds files this product did not write",
            "name a new or empty directory, or one `invoke chart` wrote",
        )
    templates = resources.files("temporal_dsql_deploy").joinpath("kubernetes/chart/templates")
    try:
        for generated in GENERATED:  # only what this task writes: a values file of the user's beside it stays
            target = output / generated
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        (output / "templates").mkdir(parents=True, exist_ok=True)
        (output / "files").mkdir(exist_ok=True)
        (output / MARKER).touch()
        for template in templates.iterdir():
            (output / "templates" / template.name).write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
        (output / "templates" / "_environment.tpl").write_text(
            environment_templates(chart_settings(settings)), encoding="utf-8"
        )
        server_config = resources.files("temporal_dsql_deploy").joinpath("templates/temporal.yaml")
        (output / "files" / "temporal.yaml").write_text(server_config.read_text(encoding="utf-8"), encoding="utf-8")
        (output / "Chart.yaml").write_text(yaml.safe_dump(chart_metadata(settings), sort_keys=False), encoding="utf-8")
        header = "# Generated by `invoke chart` from the service model; override values with -f or --set.\n"
        (output / "values.yaml").write_text(
            header + yaml.safe_dump(chart_values(settings, sized), sort_keys=False), encoding="utf-8"
        )
        (output / "values.schema.json").write_text(json.dumps(values_schema(), indent=2) + "\n", encoding="utf-8")
        for region, values in region_values(settings).items():
            header = f"# Generated by `invoke chart`: the release in {region}, over values.yaml (`-f` this file).\n"
            (output / f"values-{region}.yaml").write_text(header + yaml.safe_dump(values, sort_keys=False),
                                                          encoding="utf-8")  # fmt: skip
        (output / ".helmignore").write_text(f"{MARKER}\n{RENDERED_DIR}/\n", encoding="utf-8")
    except OSError as exc:
        raise DeployError(
            f"cannot write the chart to {output}: {exc.strerror}", "choose an --output directory you can write to"
        ) from None
    return output
