"""Grafana with the provisioned metrics store and dashboards (Compose; natively the metrics store's UI shows
the same dashboards)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import yaml

from temporal_dsql_deploy.observability.dashboards import DATASOURCE_UID, grafana_dashboard, load_dashboards
from temporal_dsql_deploy.runtime.control_keys import METRICS_STORE_KEY, METRICS_STORE_USER
from temporal_dsql_deploy.runtime.model import (
    Component,
    Condition,
    HealthCheck,
    HttpProbe,
    Port,
    Runtime,
    Service,
    Stack,
)
from temporal_dsql_deploy.runtime.units.base import SECRETS_MOUNT, ConfigFile, Container, ContainerOnly
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef

GRAFANA_IMAGE = "grafana/grafana-oss:12.1.1"
GRAFANA_DASHBOARDS = "/etc/grafana/dashboards"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
STORE_KEY_FILE = f"{SECRETS_MOUNT}/{METRICS_STORE_KEY.lower()}"  # Grafana reads the store's key from it


def services(settings: Settings) -> Iterator[Service]:
    yield Service(
        name="grafana",
        component=Component.DASHBOARDS,
        ports=(Port("http", settings.grafana_port, published=True),),
        depends_on={"metrics": Condition.HEALTHY},
        healthcheck=HealthCheck(HttpProbe(settings.grafana_port, "/api/health")),
        description="Grafana with the provisioned metrics store and dashboards",
        runtimes=frozenset({Runtime.DOCKER}),
    )


class GrafanaUnit(ContainerOnly):
    component = Component.DASHBOARDS

    def container(self, service: Service, settings: Settings) -> Container:
        env: dict[str, EnvValue] = {
            "GF_SERVER_HTTP_PORT": str(service.ports[0].number),
            "GF_SECURITY_ADMIN_PASSWORD": SecretRef("GRAFANA_ADMIN_PASSWORD"),
            "GF_AUTH_ANONYMOUS_ENABLED": "true",  # dashboards readable without logging in; editing needs the admin
            "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": f"{GRAFANA_DASHBOARDS}/temporal.json",
        }
        # Grafana's image, pulled: it cannot be built here, so it runs only with `--profile dashboards` (the local
        # run leaves it out; the metrics store's own UI shows the same dashboards). Its image reads NAME__FILE.
        return Container(GRAFANA_IMAGE, None, env, ("grafana-data:/var/lib/grafana",), http_client="wget",
                         memory_mb=512, secret_suffix="__FILE",  # noqa: S106 - a name suffix
                         secrets=(SecretRef(METRICS_STORE_KEY),),
                         profile="dashboards")  # fmt: skip

    def config_files(self, stack: Stack, settings: Settings) -> list[ConfigFile]:
        datasource = {"apiVersion": 1, "datasources": [{
            "name": "Metrics", "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy", "isDefault": True,
            "url": f"http://metrics:{settings.metrics_port}", "basicAuth": True,
            "basicAuthUser": METRICS_STORE_USER,
            "secureJsonData": {"basicAuthPassword": "$__file{" + STORE_KEY_FILE + "}"}}]}  # fmt: skip
        provider = {"apiVersion": 1, "providers": [{"name": "temporal-dsql-deploy", "type": "file",
                                                    "options": {"path": GRAFANA_DASHBOARDS}}]}  # fmt: skip
        files = [
            ConfigFile("grafana-datasource", f"{GRAFANA_PROVISIONING}/datasources/metrics.yaml",
                       yaml.safe_dump(datasource, sort_keys=False)),
            ConfigFile("grafana-dashboards", f"{GRAFANA_PROVISIONING}/dashboards/temporal-dsql-deploy.yaml",
                       yaml.safe_dump(provider, sort_keys=False)),
        ]  # fmt: skip
        files += [ConfigFile(f"dashboard-{dashboard.uid}", f"{GRAFANA_DASHBOARDS}/{dashboard.uid}.json",
                             json.dumps(grafana_dashboard(dashboard), indent=1) + "\n")
                  for dashboard in load_dashboards()]  # fmt: skip
        return files


UNITS = (GrafanaUnit(),)
