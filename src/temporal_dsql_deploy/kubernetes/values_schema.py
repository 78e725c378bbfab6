"""values.schema.json: Helm checks every install, upgrade, lint and template against it, so a wrong value is refused
with the key's path before anything reaches the cluster. Only the keys the chart reads are described; unknown keys
are refused where a typo would otherwise be silently ignored."""

from __future__ import annotations

from typing import Any

from temporal_dsql_deploy.settings.config import IAM_PRINCIPAL_ARN

ROLES = ("history", "matching", "frontend", "worker")
STATELESS = ("matching", "frontend", "worker")
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
# A connection's lifetime DSQL allows: under 60 minutes (1-59m or 1-3599s).
UNDER_AN_HOUR = r"^(([1-9]|[1-5][0-9])m|([1-9][0-9]{0,2}|[1-2][0-9]{3}|3[0-5][0-9]{2})s)$"
K8S_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"


def _object(properties: dict[str, Any], *, required: tuple[str, ...] = (), closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _int(low: int, high: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, "description": description}


PORT = _int(1, 65535, "a TCP port")
FREE = {"type": "object"}  # a Kubernetes structure passed through as given (validated by the API server)
LIST = {"type": "array"}


def _role(role: str) -> dict[str, Any]:
    service = {"port": PORT, "membershipPort": PORT}
    if role == "frontend":
        service |= {"httpPort": PORT, "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "annotations": FREE}
    properties: dict[str, Any] = {
        "replicaCount": _int(0, 256, f"hosts running {role} (0: a standby Region's release)"),
        "service": _object(service, required=("port", "membershipPort")),
        "metrics": _object({"port": PORT}, required=("port",)),
        "health": _object({"service": {"type": "string"}, "httpPath": {"type": "string"}}),
        "resources": FREE,
        "podDisruptionBudget": FREE,
        "terminationGracePeriodSeconds": _int(0, 3600, "seconds a stopping host has to hand its work over"),
        "podAnnotations": FREE,
        "podLabels": FREE,
        "nodeSelector": FREE,
        "tolerations": LIST,
        "affinity": FREE,
        "topologySpreadConstraints": LIST,
        "additionalEnv": LIST,
    }
    if role in STATELESS:
        properties["autoscaling"] = _object(
            {
                "enabled": {"type": "boolean"},
                "minReplicas": _int(1, 256, "fewest hosts"),
                "maxReplicas": _int(1, 256, "most hosts"),
                "targetCPUUtilizationPercentage": _int(1, 100, "average CPU use the autoscaler aims at"),
            }
        )
    return _object(properties, required=("replicaCount", "service", "metrics"))


def _service_account() -> dict[str, Any]:
    return _object(
        {"create": {"type": "boolean"}, "name": {"type": "string", "pattern": K8S_NAME}, "extraAnnotations": FREE}
    )


def _search() -> dict[str, Any]:
    schema = _object({
        "engine": {"enum": ["elasticsearch", "opensearch"]},
        "host": {"type": "string"},
        "port": PORT,
        "scheme": {"enum": ["http", "https"]},
        "visibilityIndex": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]*$"},
        "username": {"type": "string"},
        "existingSecret": {"type": "string", "pattern": K8S_NAME, "description": "a Secret holding the password"},
        "secretKey": {"type": "string", "minLength": 1},
    })  # fmt: skip
    # A password goes with a user (basic auth): the settings refuse one without the other.
    schema["if"] = {"properties": {"existingSecret": {"minLength": 1}}, "required": ["existingSecret"]}
    schema["then"] = {"properties": {"username": {"minLength": 1}}, "required": ["username"]}
    return schema


def values_schema() -> dict[str, Any]:
    sql = _object(
        {
            "pluginName": {"enum": ["dsql", "postgres12", "postgres12_pgx"]},
            "host": {"type": "string"},
            "port": PORT,
            "database": {"type": "string", "minLength": 1},
            "user": {"type": "string", "minLength": 1, "description": "the role the services connect as"},
            "adminUser": {"type": "string", "minLength": 1, "description": "the user the schema job connects as"},
            "region": {"type": "string", "pattern": r"^([a-z]{2}(-[a-z]+)+-\d)?$"},
            "iamAuth": {
                "type": "boolean",
                "description": "the setup jobs' IAM tokens (the dsql plugin always uses them)",
            },
            "tls": _object(
                {
                    "enabled": {"type": "boolean"},
                    "caConfigMap": {"type": "string", "pattern": K8S_NAME},
                    "caKey": {"type": "string"},
                }
            ),
            "maxConns": _int(1, 10000, "connections per host's pool"),
            "maxIdleConns": _int(0, 10000, "idle connections kept per host"),
            "maxConnLifetime": {
                "type": "string",
                "pattern": UNDER_AN_HOUR,
                "description": "recycle connections after this long: DSQL closes them at 60 minutes",
            },
            "connectTimeout": {
                "type": "string",
                "pattern": GO_DURATION,
                "description": "the setup jobs' connect timeout",
            },
            "tokenLifetime": {"type": "string", "pattern": GO_DURATION},
            "existingSecret": {"type": "string", "pattern": K8S_NAME, "description": "a Secret holding the password"},
            "secretKey": {"type": "string", "minLength": 1},
        }
    )
    server = _object(
        {
            "image": _object(
                {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": {"type": "string"},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                }
            ),
            "config": _object(
                {
                    "logLevel": {"enum": ["debug", "info", "warn", "error"]},
                    "numHistoryShards": _int(1, 16384, "history shards: fixed when the schema is first used"),
                    "persistence": _object({"default": _object({"sql": sql})}),
                }
            ),
            "dynamicConfig": FREE,
            **{role: _role(role) for role in ROLES},
        }
    )
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **_object(
            {
                "global": FREE,  # what an umbrella chart or Argo CD passes to every subchart
                "nameOverride": {"type": "string"},
                "fullnameOverride": {"type": "string"},
                "imagePullSecrets": LIST,
                "serviceAccount": _service_account(),
                "server": server,
                "elasticsearch": _search(),
                "schema": _object(
                    {
                        "setup": _object(
                            {
                                "enabled": {"type": "boolean"},
                                "backoffLimit": _int(0, 100, "retries"),
                                "activeDeadlineSeconds": _int(60, 86400, "longest a job may run"),
                            }
                        ),
                        # The settings' own rule: schema setup maps the services' role to an IAM role or user.
                        "servicePrincipalArn": {"type": "string", "pattern": f"({IAM_PRINCIPAL_ARN})|^$"},
                        "serviceAccount": _service_account(),
                        "resources": FREE,
                    }
                ),
                "namespace": _object({"name": {"type": "string", "minLength": 1, "maxLength": 1000}}),
                "podSecurityContext": FREE,
                "containerSecurityContext": FREE,
                "networkPolicy": _object({"enabled": {"type": "boolean"}, "frontendFrom": LIST, "metricsFrom": LIST}),
            }
        ),
    }
