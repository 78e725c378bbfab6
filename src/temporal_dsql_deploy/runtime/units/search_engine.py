"""The visibility store (Elasticsearch or OpenSearch) and the job that creates Temporal's index in it."""

from __future__ import annotations

from collections.abc import Iterator

from temporal_dsql_deploy.runtime.model import (
    Component,
    Condition,
    HealthCheck,
    HttpProbe,
    Port,
    Service,
    admin_environment,
    visibility_environment,
)
from temporal_dsql_deploy.runtime.units.base import Container, Host, Native, Unit
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue

# The engine's JVM options in both runtimes: message lookups off whatever log4j the engine loads (the images bring
# their own), so no request that reaches a log line can trigger a JNDI lookup.
SEARCH_ENGINE_JVM_OPTIONS = ("-Xms512m", "-Xmx512m", "-Dlog4j2.formatMsgNoLookups=true")


def services(settings: Settings) -> Iterator[Service]:
    es_port = settings.temporal_elasticsearch_port
    yield Service(
        name="elasticsearch",
        component=Component.SEARCH_ENGINE,
        ports=(Port("http", es_port, published=True),),
        healthcheck=HealthCheck(
            HttpProbe(es_port, "/_cluster/health?wait_for_status=yellow&timeout=5s"), retries=60, start_period_s=20
        ),
        description=f"{settings.search_engine} {settings.search_engine_version}: visibility store",
    )
    yield Service(
        name="es-setup",
        component=Component.ADMIN,
        args=("es-setup",),
        environment=admin_environment(settings, visibility_environment(settings)),
        depends_on={"elasticsearch": Condition.HEALTHY},
        one_shot=True,
        description="creates the visibility index template and index from Temporal's own schema",
    )


class SearchEngine(Unit):
    component = Component.SEARCH_ENGINE

    def native(self, service: Service, host: Host) -> Native:
        # The engine's own test runner from Maven: one node, its HTTP port one above the base it is given.
        paths = host.paths
        return Native([
            "java", *SEARCH_ENGINE_JVM_OPTIONS, "-cp", f"{paths.search_engine_lib}/*", paths.search_engine_main_class,
            "-basePath", str(host.layout.data / "search-engine"), "-numOfNode", "1",
            "-baseHttpPort", str(service.ports[0].number - 1), "-clusterName", host.settings.project_name,
        ])  # fmt: skip

    def container(self, service: Service, settings: Settings) -> Container:
        heap = " ".join(SEARCH_ENGINE_JVM_OPTIONS)
        env: dict[str, EnvValue]
        if settings.search_engine == "elasticsearch":
            # The OSS image: the Apache-2.0 build, without X-Pack.
            image = f"docker.elastic.co/elasticsearch/elasticsearch-oss:{settings.elasticsearch_version}"
            env = {"discovery.type": "single-node", "ES_JAVA_OPTS": heap}
            data = "/usr/share/elasticsearch/data"
        else:
            image = f"opensearchproject/opensearch:{settings.opensearch_version}"
            env = {"discovery.type": "single-node", "plugins.security.disabled": "true",
                   "DISABLE_INSTALL_DEMO_CONFIG": "true", "OPENSEARCH_JAVA_OPTS": heap}  # fmt: skip
            data = "/usr/share/opensearch/data"
        return Container(image, None, env, (f"search-data:{data}",))


UNITS = (SearchEngine(),)
