"""Prometheus exporters for the stores that have no metrics endpoint of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from temporal_dsql_deploy.runtime.installer import (
    Installer,
    Paths,
    build_step,
    component_dir,
    go_env,
    newest_build,
    source_digest,
)
from temporal_dsql_deploy.runtime.model import Component, Condition, HealthCheck, HttpProbe, Port, Scrape, Service
from temporal_dsql_deploy.runtime.units.base import LOCALHOST, Container, Host, Native, Unit, runtime_image
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import HostOf, SecretRef


def services(settings: Settings) -> Iterator[Service]:
    if settings.sql_is_local:
        # The `postgres` database is there in both profiles; the statistics cover every database.
        uri = HostOf("postgresql", "{host}:" + str(settings.temporal_sql_port) + "/postgres?sslmode=disable")
        yield Service(
            name="postgresql-exporter",
            component=Component.POSTGRES_EXPORTER,
            environment={
                "DATA_SOURCE_URI": uri,
                "DATA_SOURCE_USER": settings.temporal_sql_user,
                "DATA_SOURCE_PASS": SecretRef("TEMPORAL_SQL_PASSWORD"),
            },
            ports=(Port("metrics", settings.postgres_exporter_port),),
            depends_on={"postgresql": Condition.HEALTHY},
            healthcheck=HealthCheck(HttpProbe(settings.postgres_exporter_port, "/")),
            description="postgres_exporter: PostgreSQL's statistics as Prometheus metrics",
            scrape=Scrape(settings.postgres_exporter_port),
        )
    yield Service(
        name="elasticsearch-exporter",
        component=Component.SEARCH_ENGINE_EXPORTER,
        args=("--es.indices",),
        environment={"ES_URI": HostOf("elasticsearch", "http://{host}:" + str(settings.temporal_elasticsearch_port))},
        ports=(Port("metrics", settings.search_engine_exporter_port),),
        depends_on={"elasticsearch": Condition.HEALTHY},
        healthcheck=HealthCheck(HttpProbe(settings.search_engine_exporter_port, "/")),
        description="elasticsearch_exporter: cluster health, index size and query times as Prometheus metrics",
        scrape=Scrape(settings.search_engine_exporter_port),
    )


class ExporterUnit(Unit):
    """An exporter: the same program and flags natively and in the runtime image (which holds both exporters)."""

    def __init__(self, component: Component, name: str, program: Callable[[Paths], Path],
                 target_flag: str | None = None) -> None:  # fmt: skip
        self.component, self.name, self.program = component, name, program
        self.target_flag = target_flag  # the flag naming what it reads, when its variable is not honoured

    def _target(self, service: Service, *, native: bool) -> list[str]:
        """The flag naming the store it reads, from the model's variable (ES_URI): loopback natively, the store's
        service name in Compose."""
        if self.target_flag is None:
            return []
        (target,) = [value for value in service.environment.values() if isinstance(value, HostOf)]
        host = LOCALHOST if native else target.service
        return [f"{self.target_flag}={target.pattern.replace('{host}', host)}"]

    def native(self, service: Service, host: Host) -> Native:
        listen = f"--web.listen-address={LOCALHOST}:{service.ports[0].number}"
        return Native([str(self.program(host.paths)), listen, *self._target(service, native=True), *service.args])

    def container(self, service: Service, settings: Settings) -> Container:
        command = [self.name, f"--web.listen-address=:{service.ports[0].number}",
                   *self._target(service, native=False), *service.args]  # fmt: skip
        return Container(runtime_image(settings), command, memory_mb=128)


def install_exporters(settings: Settings, installer: Installer) -> Path:
    """postgres_exporter and elasticsearch_exporter, at the versions components/exporters/go.mod pins."""
    if installer.project_root is None:
        return newest_build(settings, "exporters", "the Prometheus exporters", EXPORTERS)
    module = installer.project_root / "components" / "exporters"

    def build(staging: Path) -> None:
        argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{staging}/", *EXPORTER_PACKAGES]
        build_step(argv, "building the Prometheus exporters", env=go_env(staging), cwd=module)

    target = component_dir(settings, "exporters", source_digest(module))
    return installer.once(target, "the PostgreSQL and search-engine exporters", build, EXPORTERS)


EXPORTERS = ("postgres_exporter", "elasticsearch_exporter")
EXPORTER_PACKAGES = ("github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter",
                     "github.com/prometheus-community/elasticsearch_exporter")  # fmt: skip
UNITS = (
    ExporterUnit(Component.POSTGRES_EXPORTER, EXPORTERS[0], lambda paths: paths.postgres_exporter),
    # elasticsearch_exporter v1.9.0 reads its target from --es.uri only (ES_URI is not honoured).
    ExporterUnit(
        Component.SEARCH_ENGINE_EXPORTER,
        EXPORTERS[1],
        lambda paths: paths.search_engine_exporter,
        target_flag="--es.uri",
    ),
)
