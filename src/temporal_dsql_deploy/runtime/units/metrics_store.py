"""The metrics store: it scrapes every service. VictoriaMetrics in both runtimes (with its UI and, natively, the
dashboards; Grafana shows them in Compose)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.runtime.control_keys import METRICS_STORE_KEY, METRICS_STORE_USER
from temporal_dsql_deploy.runtime.installer import Installer, component_dir, go_install
from temporal_dsql_deploy.runtime.model import Component, HealthCheck, HttpProbe, Port, Scrape, Service, Stack
from temporal_dsql_deploy.runtime.render_scrape import scrape_config
from temporal_dsql_deploy.runtime.units.base import (
    ALL_INTERFACES,
    LOCALHOST,
    ConfigFile,
    Container,
    Host,
    Native,
    Unit,
    runtime_image,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef

CONTAINER_DATA = "/var/lib/victoria-metrics"  # the runtime image's, owned by its user
CONTAINER_SCRAPE_CONFIG = "/etc/victoria-metrics/scrape.yml"
# VictoriaMetrics reads the flags below from variables named VM_<flag, dots as underscores> (-envflag.enable), so
# its key is never on a command line. Basic auth locks everything but its health pages (queries, imports, remote
# write, vmui, its own /metrics); each *AuthKey flag locks its path (delete, snapshots, merges, reload, flags,
# profiles, the scrape config) to a request that also names the key as `authKey`.
VICTORIA_METRICS_ENV_PREFIX = "VM_"
VICTORIA_METRICS_KEY_FLAGS = (
    "httpAuth.password", "deleteAuthKey", "snapshotAuthKey", "forceMergeAuthKey", "forceFlushAuthKey", "reloadAuthKey",
    "flagsAuthKey", "pprofAuthKey", "configAuthKey", "search.resetCacheAuthKey", "metricNamesStatsResetAuthKey",
    "logNewSeriesAuthKey",
)  # fmt: skip

# The local stack's metrics store; v1.151.0 is the newest the pinned Go toolchain builds.
VICTORIA_METRICS_VERSION = "v1.151.0"


def victoria_metrics_variable(flag: str) -> str:
    """The environment variable VictoriaMetrics reads `-flag` from (its envflag rule, with our prefix)."""
    return VICTORIA_METRICS_ENV_PREFIX + flag.replace(".", "_")


def victoria_metrics_environment() -> dict[str, EnvValue]:
    """The store's user name, and its key under every flag that takes it."""
    environment: dict[str, EnvValue] = {victoria_metrics_variable("httpAuth.username"): METRICS_STORE_USER}
    environment.update({victoria_metrics_variable(flag): SecretRef(METRICS_STORE_KEY)
                        for flag in VICTORIA_METRICS_KEY_FLAGS})  # fmt: skip
    return environment


def store_scrape_auth() -> dict[str, str]:
    """The store scraping its own /metrics authenticates like any client; the password is expanded by VictoriaMetrics
    from its environment (`%{...}`), so the rendered scrape config holds no secret."""
    return {"username": METRICS_STORE_USER, "password": "%{" + victoria_metrics_variable("httpAuth.password") + "}"}


def services(settings: Settings) -> Iterator[Service]:
    yield Service(
        name="metrics",
        component=Component.METRICS_STORE,
        ports=(Port("http", settings.metrics_port, published=True),),
        healthcheck=HealthCheck(HttpProbe(settings.metrics_port, "/-/healthy")),
        description="the metrics store: scrapes every service",
        scrape=Scrape(settings.metrics_port, of_the_store=True),
    )


# The memory VictoriaMetrics' caches may take: by default 60% of the machine's, so on a large host they grow far
# past what one stack's few thousand series need.
METRICS_STORE_CACHES = "64MiB"


class MetricsStoreUnit(Unit):
    component = Component.METRICS_STORE

    def native(self, service: Service, host: Host) -> Native:
        layout = host.layout
        return Native([
            str(host.paths.victoria_metrics), f"-httpListenAddr={LOCALHOST}:{service.ports[0].number}",
            "-envflag.enable", f"-envflag.prefix={VICTORIA_METRICS_ENV_PREFIX}",
            f"-storageDataPath={layout.metrics_data}", f"-retentionPeriod={host.settings.metrics_retention_days}d",
            f"-promscrape.config={layout.scrape_config}", f"-vmui.customDashboardsPath={layout.dashboards}",
            f"-memory.allowedBytes={METRICS_STORE_CACHES}",
        ], victoria_metrics_environment())  # fmt: skip

    def container(self, service: Service, settings: Settings) -> Container:
        # The same program and flags as natively, from the runtime image; its data in a volume.
        command = [
            "victoria-metrics", f"-httpListenAddr={ALL_INTERFACES}:{service.ports[0].number}", "-envflag.enable",
            f"-envflag.prefix={VICTORIA_METRICS_ENV_PREFIX}", f"-storageDataPath={CONTAINER_DATA}",
            f"-retentionPeriod={settings.metrics_retention_days}d", f"-promscrape.config={CONTAINER_SCRAPE_CONFIG}",
            f"-memory.allowedBytes={METRICS_STORE_CACHES}",
        ]  # fmt: skip
        return Container(runtime_image(settings), command, victoria_metrics_environment(),
                         (f"metrics-data:{CONTAINER_DATA}",))  # fmt: skip

    def config_files(self, stack: Stack, settings: Settings) -> list[ConfigFile]:
        text = scrape_config(stack, lambda service: service, settings.metrics_scrape_interval, store_scrape_auth())
        return [ConfigFile("scrape", CONTAINER_SCRAPE_CONFIG, text)]


def install_victoria_metrics(settings: Settings, installer: Installer) -> Path:
    def build(staging: Path) -> None:
        package = f"github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@{VICTORIA_METRICS_VERSION}"
        go_install([package], staging, f"building VictoriaMetrics {VICTORIA_METRICS_VERSION}")

    target = component_dir(settings, "victoria-metrics", VICTORIA_METRICS_VERSION)
    return installer.once(target, f"VictoriaMetrics {VICTORIA_METRICS_VERSION} (the metrics store)", build,
                          ("victoria-metrics",))  # fmt: skip


UNITS = (MetricsStoreUnit(),)
