"""The one typed settings object: `.env` plus the environment, validated once.

Field names are the environment variable names (lower-cased), so every message and the
README's configuration reference speak the operator's language.
"""

from __future__ import annotations

import difflib
import functools
import io
import ipaddress
import os
import platform
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv.parser import parse_stream
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from temporal_dsql_deploy.errors import ConfigError, DeployError
from temporal_dsql_deploy.settings.envfile import update_env_file
from temporal_dsql_deploy.settings.environment import cache_home, format_go_duration
from temporal_dsql_deploy.settings.paths import forbidden_directory, real_path
from temporal_dsql_deploy.settings.releases import LATEST, check_temporal_version, supported_versions

Architecture = Literal["amd64", "arm64"]
SqlPlugin = Literal["postgres12", "postgres12_pgx", "dsql"]
SearchEngine = Literal["elasticsearch", "opensearch"]
# dsql-local's latency profiles (dsql-local/internal/latency: the same names, a unit test holds them together).
DsqlLatency = Literal["none", "same-az", "single-region", "multi-region"]

DSQL_MAX_CONNECTION_LIFETIME = timedelta(minutes=60)
LOCAL_SQL_MAX_CONNS = 10  # TEMPORAL_SQL_MAX_CONNS unset, against the local stack's own database
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_GO_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SECRET_FIELDS = frozenset({
    "temporal_sql_password", "temporal_elasticsearch_password", "dsql_local_secret_access_key",
    "dsql_local_backend_password", "grafana_admin_password",
})  # fmt: skip
# Variables the AWS SDKs read themselves; they may sit in .env beside the settings.
AWS_SDK_VARIABLES = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DSQL",
    "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_SDK_LOAD_CONFIG",
})  # fmt: skip
# Ports the stack derives rather than reads: Temporal's membership port is its gRPC port - 300 (7233 -> 6933), and
# each role's metrics port and the frontend's HTTP port are fixed.
MEMBERSHIP_PORT_OFFSET = 300
AWS_REGION_NAME = r"^[a-z]{2}(-[a-z]+)+-\d$"  # us-east-1, ap-southeast-2, us-gov-west-1
LOCAL_REGION = "us-east-1"  # the Region local IAM tokens are signed for when AWS_REGION is unset
ROLE_METRICS_PORTS = {"history": 9092, "matching": 9093, "frontend": 9091, "worker": 9094}
FRONTEND_HTTP_PORT = 8233
# Temporal's own rule for a namespace name: not empty, at most limit.maxIDLength (default 1000) bytes
# (temporalio/temporal common/rpc/interceptor/namespace_validator.go: ValidateName and errNamespaceNotSet).
NAMESPACE_MAX_BYTES = 1000
# Debian's official bookworm-slim image, by digest (what a pull of the tag resolved to; a digest is checked by the pull)
UPSTREAM_BASE_IMAGE = (
    "docker.io/library/debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251"
)
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def parse_go_duration(value: object) -> timedelta:
    """Parse a Go-style duration such as `30s`, `5m` or `1h30m` (Temporal's config syntax).

    Hand-written because pydantic only understands ISO 8601 and plain seconds.
    """
    if isinstance(value, timedelta):
        return value
    text = str(value).strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    position, seconds = 0, 0.0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _GO_DURATION_UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError("a duration such as 30s, 5m or 1h30m")
    return timedelta(seconds=seconds)


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host(value: str) -> str:
    """A bare host name or IP address: no scheme, port, path or spaces (the port has its own variable)."""
    text = value.strip()
    if not text:
        raise ValueError("a host name or IP address, not empty")
    if "://" in text or "/" in text:
        raise ValueError("a bare host name or IP address, without a scheme or path (e.g. 127.0.0.1)")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if len(text) > 253 or not all(_HOST_LABEL.match(label) for label in text.rstrip(".").split(".")):
            raise ValueError("a host name (letters, digits, dashes and dots) or an IP address") from None
    return text


def check_ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError("an IP address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None


def _duration_between(low: str, high: str, why: str) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if not parse_go_duration(low) <= value <= parse_go_duration(high):
            raise ValueError(f"a duration from {low} to {high}{why}")
        return value

    return AfterValidator(check)


# An IAM role or user ARN, as AWS IAM GRANT takes it (partition aws, aws-cn or aws-us-gov).
IAM_PRINCIPAL_ARN = r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/[A-Za-z0-9_+=,.@/-]+$"


# PostgreSQL's keywords that cannot name a role unquoted (its docs' appendix C: "reserved" and "reserved (can be
# function or type)"), written out because validation runs offline, before any database is reachable.
_RESERVED_WORDS = frozenset((
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "binary", "both",
    "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint", "create", "cross",
    "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch",
    "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner",
    "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
    "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer",
    "overlaps", "placing", "primary", "references", "returning", "right", "select", "session_user", "similar",
    "some", "symmetric", "system_user", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique",
    "user", "using", "variadic", "verbose", "when", "where", "window", "with",
))  # fmt: skip


def check_database_role(value: str) -> str:
    """A role name DSQL and PostgreSQL take unquoted: the schema setup writes it into GRANT statements."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise ValueError(f"{value!r} is not a plain role name; use lower-case letters, digits and _ (at most 63)")
    if value in _RESERVED_WORDS:
        raise ValueError(f"{value!r} is an SQL keyword PostgreSQL reserves; choose another name, e.g. temporal_service")
    if value.startswith("pg_") or value in {"postgres", "public", "none", "current_user", "session_user"}:
        raise ValueError(f"{value!r} is reserved by PostgreSQL; choose another name, e.g. temporal_service")
    return value


def check_namespace(value: str) -> str:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # bytes of the environment that are not UTF-8 (Python keeps them as surrogates)
        raise ValueError("UTF-8 text: the configs Temporal reads are UTF-8, and this value holds other bytes") from None
    if not value or size > NAMESPACE_MAX_BYTES:
        raise ValueError(f"a namespace name of 1 to {NAMESPACE_MAX_BYTES} bytes, e.g. default (Temporal's limit)")
    return value


def check_directory_text(value: object) -> object:
    """Refuse an empty or blank directory before it becomes Path('.'), which is the project root."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("a directory path, not empty or blank (empty would mean the project root itself)")
    return value


GoDuration = Annotated[timedelta, BeforeValidator(parse_go_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
Host = Annotated[str, AfterValidator(check_host)]
Directory = Annotated[Path, BeforeValidator(check_directory_text)]


def host_architecture() -> Architecture:
    """The architecture of this machine in Docker's platform vocabulary."""
    machine = platform.machine().lower()
    return "arm64" if machine in {"arm64", "aarch64"} else "amd64"


SYSTEM_CACHE_DIR = Path("/var/cache/temporal-dsql-deploy")


def _default_cache_dir() -> Path:
    # As root, the services run as another user (service_account.py), who may not enter root's home.
    return SYSTEM_CACHE_DIR if os.geteuid() == 0 else cache_home() / "temporal-dsql-deploy"


class Settings(BaseSettings):
    """Everything the product needs to know, with defaults that select the local embedded stack."""

    model_config = SettingsConfigDict(
        env_file=None,  # load_settings names the file; nothing reads one from the working directory
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # --- Project -----------------------------------------------------------------------
    project_name: str = Field(
        "temporal-dsql",
        pattern=r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$",
        description="Name tagged on every AWS resource (`Project` tag); cleanup only touches resources "
        "carrying it. Lower-case letters, digits and dashes.",
    )
    aws_region: str | None = Field(
        None,
        pattern=AWS_REGION_NAME,
        description="AWS Region of the DSQL cluster, e.g. us-east-1. Required when IAM auth is on.",
    )

    standby_region: str | None = Field(
        None,
        pattern=AWS_REGION_NAME,
        description="The second Region of a peered multi-Region DSQL cluster, where a standby set of Temporal hosts "
        "waits, scaled to zero, on that Region's endpoint until `invoke failover --to` it. With the Docker runtime "
        "and the local profile the stand-in serves that Region's endpoint too (DSQL_LOCAL_STANDBY_PORT). Unset: one "
        "Region.",
    )
    serving_region: str | None = Field(
        None,
        pattern=AWS_REGION_NAME,
        description="With STANDBY_REGION: the Region whose Temporal hosts serve, AWS_REGION's (unset) or "
        "STANDBY_REGION's; `invoke failover` sets it, and the other Region's hosts are scaled to zero.",
    )
    witness_region: str | None = Field(
        None,
        pattern=AWS_REGION_NAME,
        description="The witness Region of the peered pair `invoke deploy` creates with STANDBY_REGION (it keeps "
        "a copy of the journal, no endpoint): a third Region, required with STANDBY_REGION for a deploy.",
    )
    standby_sql_host: Host | None = Field(
        None,
        description="The standby Region's DSQL endpoint (the peer cluster's); `invoke deploy` writes it. The "
        "chart's values for that Region's release point at it.",
    )
    standby_frontend_port: Port = Field(
        7243, description="Where the standby Region's frontend is published (PUBLISH_ADDRESS) with STANDBY_REGION."
    )

    # --- Persistence (DSQL in AWS, or the local PostgreSQL) --------------------------------
    temporal_sql_host: Host = Field(
        "127.0.0.1",
        description="Persistence endpoint. A loopback address selects the local embedded database; "
        "a DSQL cluster endpoint looks like <id>.dsql.<region>.on.aws.",
    )
    temporal_sql_port: Port = Field(5433, description="Persistence port (DSQL listens on 5432).")
    temporal_sql_user: str = Field(
        "temporal",
        description="Database user for PostgreSQL. On DSQL the schema setup connects as `admin` and the services "
        "as DSQL_SERVICE_ROLE.",
    )
    temporal_sql_password: SecretStr | None = Field(
        None, description="Database password for non-IAM auth. Never printed or logged."
    )
    temporal_sql_database: str = Field("temporal", description="Database name (DSQL has exactly one: `postgres`).")
    temporal_sql_plugin: SqlPlugin = Field(
        "dsql",
        description="Temporal SQL plugin: dsql (Aurora DSQL; locally through the stand-in dsql-local), or "
        "postgres12_pgx/postgres12 (the local PostgreSQL straight, or any PostgreSQL).",
    )
    temporal_sql_tls_enabled: bool = Field(False, description="Connect with TLS (mandatory for DSQL).")
    temporal_sql_iam_auth: bool = Field(
        False, description="Authenticate with short-lived IAM tokens instead of a password (DSQL)."
    )
    temporal_sql_max_conns: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Pool size per Temporal service; unset, 10 when the database is the local stack's own, where "
        "every connection is a PostgreSQL backend of a few MiB on the same machine (measured: as many workflows a "
        "second as with 20, about 30 MiB less).",
    )
    temporal_sql_max_idle_conns: int | None = Field(
        None,
        ge=0,
        description="Idle connections kept per service (default: TEMPORAL_SQL_MAX_CONNS). Fewer makes the pool "
        "close connections it reopens under the next burst, and every new DSQL connection costs an IAM token, a "
        "TLS handshake and a server session.",
    )
    temporal_sql_connection_timeout: GoDuration = Field(
        timedelta(seconds=30), description="Connect timeout (Go duration, e.g. 30s)."
    )
    temporal_sql_max_conn_lifetime: GoDuration = Field(
        timedelta(seconds=300),
        description="Recycle connections after this long; DSQL closes them at 60 minutes.",
    )
    temporal_sql_token_lifetime: Annotated[GoDuration, _duration_between("1s", "168h", " (DSQL's longest token)")] = (
        Field(
            timedelta(minutes=15),
            description="How long each IAM token the dsql plugin makes stays valid (one per new connection; DSQL "
            "checks it only when a connection opens). From 1s to 168h.",
        )
    )
    temporal_sql_tls_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that verifies the endpoint's certificate (verify-full); relative to the project "
        "root. Unset: the public roots (Amazon Root CA 1 for DSQL), or the local stand-in's own CA for the local "
        "DSQL profile.",
    )

    dsql_service_role: Annotated[str, AfterValidator(check_database_role)] = Field(
        "temporal_service",
        description="The database role Temporal's services connect as on DSQL, with `dsql:DbConnect` tokens. Schema "
        "setup (as admin) creates it, maps it to DSQL_SERVICE_PRINCIPAL_ARN with AWS IAM GRANT and grants it reads "
        "and writes on Temporal's tables only: no DDL. `admin` makes the services connect as admin (not advised).",
    )
    dsql_service_principal_arn: str | None = Field(
        None,
        pattern=IAM_PRINCIPAL_ARN,
        description="The IAM role (or user) ARN Temporal's services run as, e.g. their ECS task role or EKS pod "
        "role; it needs the policy `terraform output service_connect_policy_arn`. Required for a DSQL cluster in "
        "AWS unless DSQL_SERVICE_ROLE=admin; the local profile uses dsql-local's own principal.",
    )

    # --- The local DSQL stand-in (dsql-local) --------------------------------------------------
    dsql_local_port: Port = Field(
        5432,
        description="Port of dsql-local, the stack's Aurora DSQL stand-in. With TEMPORAL_SQL_PLUGIN=dsql and a "
        "loopback TEMPORAL_SQL_HOST, Temporal and the schema tools reach the database through it (TLS, IAM "
        "tokens, DSQL's rules) as admin/postgres; TEMPORAL_SQL_PORT stays the PostgreSQL behind it.",
    )
    dsql_local_admin_port: Port = Field(5434, description="dsql-local's HTTP health and fault-injection port.")
    dsql_local_max_transaction_age: Annotated[
        GoDuration, _duration_between("1s", "1800s", " (0 would switch the limit off)")
    ] = Field(
        timedelta(seconds=300),
        description="Transactions older than this fail in dsql-local. DSQL's quotas page says 300s; the "
        "community emulator's recording of a real cluster says 1800s. From 1s to 1800s, the envelope of the two: "
        "dsql-local reads 0 as no limit, which DSQL never is.",
    )
    dsql_local_connect_rate: float = Field(
        100.0, gt=0, le=100_000, description="New connections per second dsql-local accepts (DSQL: 100, burst 1,000)."
    )
    dsql_local_standby_port: Port = Field(
        5436, description="Port of dsql-local's endpoint for STANDBY_REGION (on the stack's network only)."
    )
    dsql_local_latency: DsqlLatency = Field(
        "none",
        description="The delays dsql-local adds as a DSQL endpoint's network and commit would: none (the local "
        "stack's default), same-az, single-region or multi-region; their values and sources are in the README "
        "(Performance under DSQL latency). `invoke bench --dsql-latency` sets one for a run.",
    )
    dsql_local_access_key_id: str | None = Field(
        None,
        pattern=r"^[A-Z0-9]{16,128}$",
        description="Access key of the credentials dsql-local checks IAM tokens against. Unset: generated once "
        "and kept (0600) in STACK_DIR/data/dsql-local/.",
    )
    dsql_local_secret_access_key: SecretStr | None = Field(
        None,
        description="Secret key of those credentials; set both or neither of the pair. Never printed or logged.",
    )
    dsql_local_backend_password: SecretStr | None = Field(
        None,
        description="Password of dsql-local's role in the local PostgreSQL (dsql_local_admin: no superuser). "
        "Generated once and kept 0600 in STACK_DIR/data when unset. Never printed or logged.",
    )

    # --- Visibility (Elasticsearch / OpenSearch) -------------------------------------------
    temporal_elasticsearch_host: Host = Field("127.0.0.1", description="Search engine host.")
    temporal_elasticsearch_port: Port = Field(9200, description="Search engine HTTP port.")
    temporal_elasticsearch_scheme: Literal["http", "https"] = Field("http", description="http or https.")
    temporal_elasticsearch_index: str = Field(
        "temporal_visibility_v1_dev",
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Visibility index name (lower-case).",
    )
    temporal_elasticsearch_username: str | None = Field(
        None, description="Search engine user, if any; set together with TEMPORAL_ELASTICSEARCH_PASSWORD."
    )
    temporal_elasticsearch_password: SecretStr | None = Field(
        None, description="Search engine password (with its user). Never printed or logged."
    )
    search_engine: SearchEngine = Field(
        "elasticsearch", description="Engine the local stack runs: elasticsearch (7.10.2) or opensearch."
    )

    # --- Temporal services -------------------------------------------------------------------
    temporal_namespace: Annotated[str, AfterValidator(check_namespace)] = Field(
        "default", description="Namespace registered at start-up: 1 to 1000 bytes, Temporal's limit."
    )
    temporal_num_history_shards: int = Field(
        4,
        ge=1,
        le=16384,
        description="History shards; fixed when the schema is first used (production: 512+).",
    )
    temporal_history_hosts: int = Field(
        1,
        ge=1,
        le=256,
        description="Hosts (containers or pods) running Temporal's history role; more than one is "
        "for `--runtime docker` and the chart (the local runtime runs one of each). At most the shard count.",
    )
    temporal_matching_hosts: int = Field(1, ge=1, le=256, description="Hosts running the matching role.")
    temporal_frontend_hosts: int = Field(1, ge=1, le=256, description="Hosts running the frontend role.")
    temporal_worker_hosts: int = Field(1, ge=1, le=256, description="Hosts running the worker role.")
    temporal_frontend_host: Host = Field("127.0.0.1", description="Host clients reach the frontend at.")
    temporal_frontend_port: Port = Field(
        7233, description="Frontend gRPC port; its membership port is 300 lower (6933), so 301 or more."
    )
    temporal_history_port: Port = Field(7234, description="History gRPC port (membership: 300 lower).")
    temporal_matching_port: Port = Field(7235, description="Matching gRPC port (membership: 300 lower).")
    temporal_worker_port: Port = Field(7239, description="Worker gRPC port (membership: 300 lower).")
    temporal_ui_port: Port = Field(8080, description="Web UI port.")
    publish_address: Annotated[str, AfterValidator(check_ip_address)] = Field(
        "127.0.0.1",
        description="Host address compose publishes the frontend, UI and search-engine ports on. The default "
        "keeps them on this machine; 0.0.0.0 opens them to the network, with no authentication in front.",
    )
    temporal_log_level: Literal["debug", "info", "warn", "error"] = Field(
        "info", description="Temporal server log level."
    )

    # --- Metrics and dashboards -------------------------------------------------------------------
    metrics_port: Port = Field(
        9090,
        description="The metrics store's HTTP port: VictoriaMetrics with its UI (both runtimes), answering only with "
        "the stack's key.",
    )
    metrics_scrape_interval: Annotated[GoDuration, _duration_between("1s", "5m", ", e.g. 15s")] = Field(
        timedelta(seconds=15), description="How often the metrics store scrapes every service (1s to 5m)."
    )
    metrics_retention_days: int = Field(7, ge=1, le=3650, description="Days the metrics store keeps samples.")
    grafana_port: Port = Field(3000, description="Grafana's port (compose), published on PUBLISH_ADDRESS.")
    grafana_admin_password: SecretStr | None = Field(
        None, description="Grafana's admin password (compose; dashboards are readable without it). Never printed."
    )
    postgres_exporter_port: Port = Field(9187, description="Port of the exporter that reads the local PostgreSQL.")
    search_engine_exporter_port: Port = Field(9114, description="Port of the exporter that reads the search engine.")

    # --- Versions and images (pinned) ----------------------------------------------------------
    temporal_version: Annotated[str, AfterValidator(check_temporal_version)] = Field(
        LATEST.version, description=f"Temporal server release, one of {supported_versions()}."
    )
    temporal_ui_version: str = Field("2.56.0", description="Temporal Web UI server release.")
    elasticsearch_version: str = Field("7.10.2", description="Elasticsearch release.")
    opensearch_version: str = Field("2.19.1", description="OpenSearch release.")
    postgres_version: str = Field("15", description="PostgreSQL major version of the local database.")
    runtime_image: str = Field(
        "temporal-dsql-runtime",
        description="Repository of the runtime image `invoke build` makes; tagged with TEMPORAL_VERSION.",
    )
    docker_arch: Architecture = Field(
        default_factory=host_architecture, description="Default architecture for compose and builds."
    )
    docker_engine: Literal["auto", "user"] = Field(
        "auto",
        description="Docker engine for `--runtime docker`: `user` uses only an engine that already answers "
        "(DOCKER_HOST or the standard socket); `auto` also, where none answers and this is root on Debian, installs "
        "Debian's docker.io and runs dockerd with its data under CACHE_DIR until `invoke down --runtime docker`.",
    )
    base_images: Literal["auto", "registry", "debian"] = Field(
        "auto",
        description="Where the images' Debian bases come from: `registry` pulls BASE_IMAGE_UPSTREAM and installs the "
        "packages on it; `debian` makes them from Debian's packages with mmdebstrap (no registry needed); `auto` uses "
        "a base already built, else tries the pull and falls back to mmdebstrap, saying why.",
    )
    base_image_upstream: str = Field(
        UPSTREAM_BASE_IMAGE,
        pattern=r"^[^\s@]+:[^\s@/]+@sha256:[0-9a-f]{64}$",
        description="The upstream Debian bookworm image the bases start from when pulled, pinned by tag and digest "
        "(repository:tag@sha256:...).",
    )

    # --- Local paths -------------------------------------------------------------------------------
    stack_dir: Directory = Field(
        Path(".stack"),
        description="Data, logs and rendered config of the local stack (relative to the project root). A directory "
        "of its own: not /, the home directory, the project root or a parent of it, nor CACHE_DIR.",
    )
    cache_dir: Directory = Field(
        default_factory=_default_cache_dir,
        description="Downloaded and built components, keyed by version (default ~/.cache/temporal-dsql-deploy; as "
        "root /var/cache/temporal-dsql-deploy, which the services' unprivileged user can read). Outside the "
        "checkout, and not /, the home directory or STACK_DIR.",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        derived = {"temporal_sql_max_conns", "temporal_sql_max_idle_conns"} - self.model_fields_set
        if "temporal_sql_max_conns" in derived and self.runs_local_database:
            self.temporal_sql_max_conns = LOCAL_SQL_MAX_CONNS
        if self.temporal_sql_max_idle_conns is None:
            self.temporal_sql_max_idle_conns = self.temporal_sql_max_conns
        # Defaults worked out here are not the operator's: `invoke deploy` writes the remote ones instead.
        self.__pydantic_fields_set__ -= derived
        idle = self.temporal_sql_max_idle_conns
        problems = [*self._connection_problems(idle), *self._credential_problems(), *self._port_problems(),
                    *self._host_problems(), *self._region_problems()]  # fmt: skip
        if problems:
            raise ValueError(_JOINED.join(problems))
        return self

    def _connection_problems(self, idle: int) -> Iterable[str]:
        if idle > self.temporal_sql_max_conns:
            pool = f"TEMPORAL_SQL_MAX_CONNS={self.temporal_sql_max_conns}"
            if "temporal_sql_max_conns" not in self.model_fields_set:
                pool += " (its default against the local stack's own database)"
            yield (f"TEMPORAL_SQL_MAX_IDLE_CONNS={idle} is above {pool}; idle connections are part of the pool")
        if self.temporal_sql_iam_auth and not self.temporal_sql_tls_enabled:
            yield ("TEMPORAL_SQL_IAM_AUTH=true needs TEMPORAL_SQL_TLS_ENABLED=true; IAM tokens must not cross the "
                   "network in clear text")  # fmt: skip
        elif self.is_dsql and not self.sql_is_local and not self.temporal_sql_tls_enabled:
            yield (f"TEMPORAL_SQL_HOST={self.temporal_sql_host} is not this machine and TEMPORAL_SQL_PLUGIN=dsql, "
                   "but TEMPORAL_SQL_TLS_ENABLED=false; DSQL accepts TLS connections only")  # fmt: skip
        if self.temporal_sql_iam_auth and not self.aws_region:
            yield "TEMPORAL_SQL_IAM_AUTH=true needs AWS_REGION to sign tokens for"
        lifetime = self.temporal_sql_max_conn_lifetime
        if self.is_dsql and not timedelta(0) < lifetime < DSQL_MAX_CONNECTION_LIFETIME:
            what = "is 60 minutes or more" if lifetime > timedelta(0) else "never recycles connections"
            yield (f"TEMPORAL_SQL_MAX_CONN_LIFETIME={format_go_duration(lifetime)} {what}, and DSQL closes "
                   "connections at 60 minutes; use less, e.g. 300s")  # fmt: skip

    def _host_problems(self) -> Iterable[str]:
        if self.temporal_history_hosts > self.temporal_num_history_shards:
            yield (f"TEMPORAL_HISTORY_HOSTS={self.temporal_history_hosts} is above TEMPORAL_NUM_HISTORY_SHARDS="
                   f"{self.temporal_num_history_shards}: a history host without a shard only waits; use fewer hosts "
                   "(the shard count is fixed when the schema is first used)")  # fmt: skip

    def _region_problems(self) -> Iterable[str]:
        if self.standby_region is not None and self.standby_region == self.active_region:
            yield (f"STANDBY_REGION={self.standby_region} is the Region the stack serves from (AWS_REGION, or "
                   f"{LOCAL_REGION} locally); a peered cluster's second Region is another, e.g. us-west-2")  # fmt: skip
        if self.witness_region is not None and self.witness_region in (self.active_region, self.standby_region):
            yield (f"WITNESS_REGION={self.witness_region} is one of the pair's Regions; the witness is a third one")
        if self.serving_region is None:
            return
        if self.serving_region not in (self.active_region, self.standby_region):
            regions = " or ".join(region for region in (self.active_region, self.standby_region) if region)
            yield f"SERVING_REGION={self.serving_region} is neither of the stack's Regions: give {regions}"
        elif self.serving_region == self.standby_region and not self.has_standby_set:
            yield (f"SERVING_REGION={self.serving_region} needs the standby Region's hosts, which run on DSQL only: "
                   "the local stand-in (TEMPORAL_SQL_PLUGIN=dsql) or the peer cluster's STANDBY_SQL_HOST")  # fmt: skip

    @property
    def has_standby_set(self) -> bool:
        """Whether a standby set of Temporal hosts exists: a second Region, and its endpoint of the peered cluster
        (the local stand-in serves one; a cluster in AWS names it in STANDBY_SQL_HOST)."""
        return (self.standby_region is not None and self.is_dsql
                and (self.local_dsql or self.standby_sql_host is not None))  # fmt: skip

    @property
    def serving(self) -> str:
        """The Region whose Temporal hosts serve: SERVING_REGION, or the primary Region."""
        return self.serving_region or self.active_region

    @property
    def serves_from_standby(self) -> bool:
        """Whether the standby Region's hosts serve (after `invoke failover`), the primary Region's at none."""
        return self.has_standby_set and self.serving_region == self.standby_region

    @property
    def active_region(self) -> str:
        """The Region the stack's primary set of hosts serves from: AWS_REGION, or the local stand-in's default."""
        return self.aws_region or LOCAL_REGION

    def hosts(self, role: str) -> int:
        """How many hosts run Temporal's `role` (history, matching, frontend or worker)."""
        hosts: int = getattr(self, f"temporal_{role}_hosts")
        return hosts

    def _credential_problems(self) -> Iterable[str]:
        pairs = (("DSQL_LOCAL_ACCESS_KEY_ID", self.dsql_local_access_key_id,
                  "DSQL_LOCAL_SECRET_ACCESS_KEY", self.dsql_local_secret_access_key),
                 ("TEMPORAL_ELASTICSEARCH_USERNAME", self.temporal_elasticsearch_username,
                  "TEMPORAL_ELASTICSEARCH_PASSWORD", self.temporal_elasticsearch_password))  # fmt: skip
        for first, first_value, second, second_value in pairs:
            if (first_value is None) != (second_value is None):
                given, missing = (first, second) if second_value is None else (second, first)
                yield f"{given} is set without {missing}; set both or neither"

    def _port_problems(self) -> Iterable[str]:
        seen: dict[int, str] = {}
        for port, label in self.labelled_ports():
            if port < 1:
                yield f"{label} would be {port}; a gRPC port must be {MEMBERSHIP_PORT_OFFSET + 1} or more"
            elif port in seen:
                yield f"{seen[port]} and {label} are both {port}; every service needs its own port"
            else:
                seen[port] = label

    def labelled_ports(self) -> list[tuple[int, str]]:
        """Every port the stack listens on, derived ones included, each labelled by the setting it comes from."""
        local_database = (
            ("TEMPORAL_SQL_PORT", "DSQL_LOCAL_PORT", "DSQL_LOCAL_ADMIN_PORT", "POSTGRES_EXPORTER_PORT")
            if self.runs_local_database else ()
        )  # fmt: skip
        standby = ("STANDBY_FRONTEND_PORT", *(("DSQL_LOCAL_STANDBY_PORT",) if self.runs_local_database else ()))
        named = (*local_database, *(standby if self.standby_region else ()),
                 "TEMPORAL_FRONTEND_PORT", "TEMPORAL_HISTORY_PORT", "TEMPORAL_MATCHING_PORT",
                 "TEMPORAL_WORKER_PORT", "TEMPORAL_UI_PORT", "TEMPORAL_ELASTICSEARCH_PORT", "METRICS_PORT",
                 "GRAFANA_PORT", "SEARCH_ENGINE_EXPORTER_PORT")  # fmt: skip
        labelled = [(int(getattr(self, name.lower())), name) for name in named]
        labelled += [(self.membership_port(role), f"the {role} membership port (TEMPORAL_{role.upper()}_PORT - "
                      f"{MEMBERSHIP_PORT_OFFSET})") for role in ROLE_METRICS_PORTS]  # fmt: skip
        labelled += [(port, f"the {role} metrics port (fixed)") for role, port in ROLE_METRICS_PORTS.items()]
        labelled.append((FRONTEND_HTTP_PORT, "the frontend HTTP port (fixed)"))
        return labelled

    def membership_port(self, role: str) -> int:
        """Temporal's conventional layout: a role's membership port is its gRPC port - 300 (7233 -> 6933)."""
        grpc_port: int = getattr(self, f"temporal_{role}_port")
        return grpc_port - MEMBERSHIP_PORT_OFFSET

    @property
    def is_dsql(self) -> bool:
        """True when Temporal talks to its persistence through the `dsql` plugin."""
        return self.temporal_sql_plugin == "dsql"

    @property
    def sql_is_local(self) -> bool:
        """True when persistence is the project's own local database, not a remote endpoint."""
        return _is_loopback(self.temporal_sql_host)

    @property
    def runs_local_database(self) -> bool:
        """True when these settings describe the stack's own PostgreSQL (and its stand-in) rather than an
        endpoint: a loopback host, unless IAM auth says TEMPORAL_SQL_* name a DSQL endpoint itself (as the
        stack tells its own processes where its stand-in is)."""
        return self.sql_is_local and not (self.is_dsql and self.temporal_sql_iam_auth)

    @property
    def local_dsql(self) -> bool:
        """True for the local DSQL profile: the `dsql` plugin through the stack's own stand-in."""
        return self.is_dsql and self.runs_local_database

    @property
    def search_engine_version(self) -> str:
        return self.elasticsearch_version if self.search_engine == "elasticsearch" else self.opensearch_version

    @property
    def elasticsearch_url(self) -> str:
        return (
            f"{self.temporal_elasticsearch_scheme}://{self.temporal_elasticsearch_host}:"
            f"{self.temporal_elasticsearch_port}"
        )

    @property
    def frontend_address(self) -> str:
        """Where clients reach the serving Region's frontend."""
        port = self.standby_frontend_port if self.serves_from_standby else self.temporal_frontend_port
        return f"{self.temporal_frontend_host}:{port}"

    def resolve(self, project_root: Path) -> Settings:
        """Anchor relative paths at the project root, so tasks behave the same from any directory."""
        # Absolute paths too: a STACK_DIR that is a symlink to a bigger disk is used where it points.
        anchored = {
            name: real_path(project_root / path) for name in _PATH_FIELDS if (path := getattr(self, name)) is not None
        }
        return self.model_copy(update=anchored) if anchored else self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_KNOWN_NAMES = tuple(name.upper() for name in Settings.model_fields)  # in the order of the reference
_PATH_FIELDS = ("stack_dir", "cache_dir", "temporal_sql_tls_ca_file")
_JOINED = "\n  - "  # how one rule's several problems travel in one ValueError
_FROM_ENVIRONMENT = "the environment"


@dataclass(frozen=True)
class _Problem:
    """One line of a configuration error, and the variables the user should look at for it."""

    text: str
    variables: tuple[str, ...]


def _shown(field: str, value: object) -> str:
    return "(value hidden)" if field in SECRET_FIELDS else repr(value)[:120]


def _origin(variable: str, origins: Mapping[str, str]) -> str:
    return f"from {origins[variable]}" if variable in origins else "the default"


def _named_variables(text: str, origins: Mapping[str, str]) -> tuple[str, ...]:
    """The settings a fix should point at for a cross-field message: those the user set and those it says are
    missing ("needs X", "without X"); a derived port's setting the user never set is not the likelier cause."""
    named = tuple(name for name in _KNOWN_NAMES if re.search(rf"\b{name}\b", text))
    missing = set(re.findall(r"(?:needs|without) ([A-Z_]+)", text))
    return tuple(name for name in named if name in origins or name in missing) or named


def _describe_error(error: Any, origins: Mapping[str, str]) -> list[_Problem]:
    location = error["loc"]
    field = str(location[0]) if location else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:  # a cross-field rule: its messages already name the variables
        return [_Problem(text, _named_variables(text, origins)) for text in message.split(_JOINED)]
    variable = field.upper()
    expected = error.get("ctx", {}).get("expected")
    accepted = f"{message} ({expected})" if expected else message
    shown = _shown(field, error.get("input"))
    return [_Problem(f"{variable}={shown} ({_origin(variable, origins)}) is invalid: {accepted}", (variable,))]


def _parsed_env_file(source: Path) -> list[Any]:
    """The bindings of the .env file; a file that cannot be read as one is a ConfigError naming it."""
    fix = "make it a readable UTF-8 file of NAME=value lines (see .env.example), or remove it"
    if source.is_symlink() and not source.exists():
        raise ConfigError(f"{source} is a symbolic link to {os.readlink(source)}, which does not exist", fix)
    if not source.is_file():
        kind = "a directory" if source.is_dir() else "not a regular file"
        raise ConfigError(f"{source} is {kind}; settings are read from a file", fix)
    try:
        data = source.read_bytes()
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source} line {line} is not UTF-8 text (byte {exc.start})", "save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{source} cannot be read: {exc.strerror}", fix) from None
    return list(parse_stream(io.StringIO(text)))


_ENV_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def _env_file_problems(bindings: Iterable[Any]) -> list[str]:
    """What is wrong in the .env file: malformed lines, names that are not settings, names given twice."""
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for binding in bindings:
        line = binding.original.line
        if binding.key is None and not binding.error:  # a comment or a blank line
            continue
        # A name is shown only where it is followed by `=`: any other text of a broken line may be a secret (a
        # password wrapped onto a line of its own reads as a name without a value).
        named = _ENV_NAME.match(binding.original.string)
        if binding.error and named:
            problems.append(f"line {line}: the value of {named[1]} cannot be read (an unclosed quote?)")
            continue
        if binding.error or binding.value is None or not named:
            problems.append(f"line {line} is not NAME=value")
            continue
        name = binding.key.upper()
        if name not in _KNOWN_NAMES and name not in AWS_SDK_VARIABLES:
            close = difflib.get_close_matches(name, sorted({*_KNOWN_NAMES, *AWS_SDK_VARIABLES}), n=1)
            hint = f"did you mean {close[0]}?" if close else "no setting has this name"
            problems.append(f"line {line}: {binding.key} is not a known variable ({hint})")
        if name in first_line:
            problems.append(f"line {line}: {binding.key} is set again (first on line {first_line[name]}); "
                            "only the last would count")  # fmt: skip
        first_line.setdefault(name, line)
    return problems


@functools.lru_cache(maxsize=4096)  # the same environment is checked at every load (the property tests: thousands)
def _near_miss(name: str) -> str | None:
    """The setting `name` misspells, if it is one: same words but one, and that one a near miss of its own.

    Strict on purpose: the environment holds every other program's variables (PATH, DOCKER_HOST,
    TEMPORAL_ADDRESS, ...), and only a typo of a setting may be refused.
    """
    words = name.split("_")
    for known in _KNOWN_NAMES:
        known_words = known.split("_")
        if len(known_words) != len(words):
            continue
        differing = [(a, b) for a, b in zip(words, known_words, strict=True) if a != b]
        if len(differing) == 1 and difflib.SequenceMatcher(None, *differing[0]).ratio() >= _WORD_CUTOFF:
            return known
    return None


_WORD_CUTOFF = 0.75  # PROT~PORT, STAK~STACK, ENIGNE~ENGINE pass; PORT~HOST (0.5) and VERSION~SESSION (0.71) do not


def _environment_problems(environment: Mapping[str, str]) -> list[_Problem]:
    problems = []
    for name in sorted(environment):
        upper = name.upper()
        if upper in _KNOWN_NAMES or upper in AWS_SDK_VARIABLES:
            continue
        known = _near_miss(upper)
        if known is not None:
            problems.append(_Problem(f"{name} (from the environment) is not a setting; did you mean {known}?", (name,)))
    return problems


def _directory_problem(real: Path, root: Path, accepted: str) -> str | None:
    """Why the resolved directory `real` cannot be the product's own, or None; nothing is created or written
    (whether the disk takes writes is for `up` to find out: `down` and `status` must work on a read-only disk)."""
    if reason := forbidden_directory(real, root):
        return f"resolves to {real}, {reason}; {accepted}"
    try:
        real.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # made by `up`; a file on the way is named below
    except OSError as exc:  # e.g. a name too long for the filesystem
        return f"resolves to {real}, which cannot be used ({exc.strerror}); {accepted}"
    existing = next((each for each in (real, *real.parents) if os.path.lexists(each)), Path(real.anchor))
    if not existing.is_dir():
        where = "is a file" if existing == real else f"is under {existing}, which is a file"
        return f"resolves to {real}, which {where}; {accepted}"
    return None


def _filesystem_problems(given: Settings, project_root: Path, origins: Mapping[str, str]) -> list[_Problem]:
    """What is wrong with the paths of `given` (settings before `resolve`, so messages show the values as set)."""
    root = real_path(project_root)
    advice = "use a directory of the product's own, e.g. "
    problems = []
    directories = {"STACK_DIR": real_path(root / given.stack_dir), "CACHE_DIR": real_path(root / given.cache_dir)}
    for variable, real in directories.items():
        example = ".stack" if variable == "STACK_DIR" else str(_default_cache_dir())
        why = _directory_problem(real, root, advice + example)
        if why is None and variable == "CACHE_DIR" and root in real.parents:
            why = f"resolves to {real}, inside the checkout {root}; {advice + example}"
        if why is not None:
            shown = str(getattr(given, variable.lower()))
            problems.append(_Problem(f"{variable}={shown!r} ({_origin(variable, origins)}) {why}", (variable,)))
    stack, cache = directories.values()
    if not problems and (stack == cache or stack in cache.parents or cache in stack.parents):
        text = (f"STACK_DIR and CACHE_DIR overlap ({stack} and {cache}); cleaning one would delete the other: give "
                "each a directory of its own")  # fmt: skip
        problems.append(_Problem(text, ("STACK_DIR", "CACHE_DIR")))
    if given.temporal_sql_tls_ca_file is not None:
        real = real_path(root / given.temporal_sql_tls_ca_file)
        why = _ca_file_problem(real)
        if why is not None:
            variable = "TEMPORAL_SQL_TLS_CA_FILE"
            shown = str(given.temporal_sql_tls_ca_file)
            text = f"{variable}={shown!r} ({_origin(variable, origins)}, resolves to {real}) {why}"
            problems.append(_Problem(text, (variable,)))
    return problems


def _ca_file_problem(path: Path) -> str | None:
    """Why `path` is no PEM CA bundle a TLS client can load, or None."""
    accepted = "a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)"
    try:  # exists() too raises for some paths: a name over the filesystem's limit, a directory without access
        if not path.exists():
            return f"does not exist; give {accepted}"
        if not path.is_file():
            return f"is not a file; give {accepted}"
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror}); give {accepted}"
    if _PEM_CERTIFICATE not in data:
        return f"is {'empty' if not data.strip() else 'not PEM'}; give {accepted}"
    try:  # what the clients will do with it
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        return f"holds no certificate that parses ({exc}); give {accepted}"
    return None


def _fix(problems: Iterable[_Problem], origins: Mapping[str, str]) -> str:
    """Where to act: each variable at the place its value came from, or where to set it if it was not set."""
    places: dict[str, list[str]] = {}
    for problem in problems:
        for variable in problem.variables:
            place = (
                f"correct {{}} in {origins[variable]}" if variable in origins else "set {} in .env or the environment"
            )
            if variable not in places.setdefault(place, []):
                places[place].append(variable)
    return "; ".join(place.format(", ".join(names)) for place, names in places.items()) + (
        "; .env.example documents each setting"
    )


def _origins(environment: Mapping[str, str], file_names: Iterable[str], file_label: str) -> dict[str, str]:
    """Where each setting the user gave came from: the environment wins over the .env file (as pydantic-settings
    reads them)."""
    origins = {name.upper(): file_label for name in file_names if name.upper() in _KNOWN_NAMES}
    origins.update({name.upper(): _FROM_ENVIRONMENT for name in environment if name.upper() in _KNOWN_NAMES})
    return origins


def load_settings(project_root: Path, env_file: Path | None = None) -> Settings:
    """Load and validate settings from `<project_root>/.env` and the environment."""
    source = env_file if env_file is not None else project_root / ".env"
    present = os.path.lexists(source)
    bindings = _parsed_env_file(source) if present else []
    file_problems = _env_file_problems(bindings)
    if file_problems:
        listed = "\n".join(f"  - {problem}" for problem in file_problems)
        raise ConfigError(f"{source} has problems:\n{listed}", "correct these lines; .env.example lists every variable")
    environment = dict(os.environ)
    origins = _origins(environment, (b.key for b in bindings if b.key), source.name)
    problems = _environment_problems(environment)
    origins.update({variable: _FROM_ENVIRONMENT for problem in problems for variable in problem.variables})
    try:
        given = Settings(_env_file=source if present else None)
    except ValidationError as exc:
        problems += [problem for error in exc.errors() for problem in _describe_error(error, origins)]
    else:
        problems += _filesystem_problems(given, project_root, origins)
    if problems:
        raise _config_error(problems, origins)
    return given.resolve(project_root)


def pin_setting(project_root: Path, variable: str, value: str) -> str:
    """Make `variable=value` what the settings load from now on: written to .env, unless the environment sets the
    variable (it wins over .env); what was done or is left to do, in words."""
    given = os.environ.get(variable)
    if given == value:
        return f"{variable}={value} (from the environment)"
    if given is not None:
        return f"{variable} is {given} in the environment, which wins over .env: set it to {value}"
    source = project_root / ".env"
    try:
        changed = update_env_file(source, {variable: value})
    except DeployError as failed:  # what it was to record is done: say what is left to the operator
        return f"{failed.problem}: set {variable}={value} there yourself"
    return f"{'set' if changed else 'kept'} {variable}={value} in {source}"


def load_settings_from_environment() -> Settings:
    """Settings from the environment alone: what a process started by the stack receives."""
    origins = _origins(os.environ, (), "")
    try:
        return Settings(_env_file=None)
    except ValidationError as exc:
        raise _config_error([p for error in exc.errors() for p in _describe_error(error, origins)], origins) from None


def _config_error(problems: list[_Problem], origins: Mapping[str, str]) -> ConfigError:
    listed = "\n".join(f"  - {problem.text}" for problem in problems)
    return ConfigError(f"invalid configuration:\n{listed}", _fix(problems, origins))


def env_file_warnings(source: Path) -> list[str]:
    """Warnings about a .env that works but is unsafe: secrets readable by other users."""
    if not source.exists() or not source.stat().st_mode & 0o077:
        return []
    secrets = {variable.upper() for variable in SECRET_FIELDS}
    bindings = parse_stream(io.StringIO(source.read_text(encoding="utf-8")))
    held = sorted({b.key.upper() for b in bindings if b.key and b.value and b.key.upper() in secrets})
    if not held:
        return []
    return [f"{source} holds {', '.join(held)} and other users can read it (mode "
            f"{oct(source.stat().st_mode & 0o777)}); run `chmod 600 {source}`"]  # fmt: skip
