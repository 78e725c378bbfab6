"""The one typed settings object: `.env` plus the environment, validated once.

Field names are the environment variable names (lower-cased), so every message and the
README's configuration reference speak the operator's language.
"""

from __future__ import annotations

import difflib
import io
import ipaddress
import platform
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv.parser import parse_stream
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.settings.environment import cache_home, format_go_duration

Architecture = Literal["amd64", "arm64"]
SqlPlugin = Literal["postgres12", "postgres12_pgx", "dsql"]
SearchEngine = Literal["elasticsearch", "opensearch"]

DSQL_MAX_CONNECTION_LIFETIME = timedelta(minutes=60)
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_GO_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SECRET_FIELDS = frozenset({
    "temporal_sql_password", "temporal_elasticsearch_password", "dsql_local_secret_access_key", "grafana_admin_password"
})  # fmt: skip
# Variables the AWS SDKs read themselves; they may sit in .env beside the settings.
AWS_SDK_VARIABLES = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DSQL",
    "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_SDK_LOAD_CONFIG",
})  # fmt: skip
_CHECKED_PREFIXES = ("TEMPORAL_", "AWS_", "DSQL_LOCAL_")


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


GoDuration = Annotated[timedelta, BeforeValidator(parse_go_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
Host = Annotated[str, AfterValidator(check_host)]


def host_architecture() -> Architecture:
    """The architecture of this machine in Docker's platform vocabulary."""
    machine = platform.machine().lower()
    return "arm64" if machine in {"arm64", "aarch64"} else "amd64"


def _default_cache_dir() -> Path:
    return cache_home() / "temporal-dsql-deploy"


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
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS Region of the DSQL cluster, e.g. us-east-1. Required when IAM auth is on.",
    )

    # --- Persistence (DSQL in AWS, or the local PostgreSQL) --------------------------------
    temporal_sql_host: Host = Field(
        "127.0.0.1",
        description="Persistence endpoint. A loopback address selects the local embedded database; "
        "a DSQL cluster endpoint looks like <id>.dsql.<region>.on.aws.",
    )
    temporal_sql_port: Port = Field(5433, description="Persistence port (DSQL listens on 5432).")
    temporal_sql_user: str = Field("temporal", description="Database user (`admin` for DSQL).")
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
    temporal_sql_max_conns: int = Field(20, ge=1, le=10_000, description="Pool size per Temporal service.")
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
    temporal_sql_token_lifetime: GoDuration = Field(
        timedelta(minutes=15),
        description="How long each IAM token the dsql plugin makes stays valid (one per new connection; DSQL "
        "checks it only when a connection opens). From 1s to 168h.",
    )
    temporal_sql_tls_ca_file: Path | None = Field(
        None,
        description="CA bundle that verifies the endpoint's certificate (verify-full). Unset: the public roots "
        "(Amazon Root CA 1 for DSQL), or the local stand-in's own CA for the local DSQL profile.",
    )

    # --- The local DSQL stand-in (dsql-local) --------------------------------------------------
    dsql_local_port: Port = Field(
        5432,
        description="Port of dsql-local, the stack's Aurora DSQL stand-in. With TEMPORAL_SQL_PLUGIN=dsql and a "
        "loopback TEMPORAL_SQL_HOST, Temporal and the schema tools reach the database through it (TLS, IAM "
        "tokens, DSQL's rules) as admin/postgres; TEMPORAL_SQL_PORT stays the PostgreSQL behind it.",
    )
    dsql_local_admin_port: Port = Field(5434, description="dsql-local's HTTP health and fault-injection port.")
    dsql_local_max_transaction_age: GoDuration = Field(
        timedelta(seconds=300),
        description="Transactions older than this fail in dsql-local. DSQL's quotas page says 300s; the "
        "community emulator's recording of a real cluster says 1800s.",
    )
    dsql_local_connect_rate: float = Field(
        100.0, gt=0, le=100_000, description="New connections per second dsql-local accepts (DSQL: 100, burst 1,000)."
    )
    dsql_local_access_key_id: str | None = Field(
        None,
        pattern=r"^[A-Z0-9]{16,128}$",
        description="Access key of the credentials dsql-local checks IAM tokens against. Unset: generated once "
        "and kept (0600) in STACK_DIR/data/dsql-local/.",
    )
    dsql_local_secret_access_key: SecretStr | None = Field(
        None, description="Secret key of those credentials. Never printed or logged."
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
    temporal_elasticsearch_username: str | None = Field(None, description="Search engine user, if any.")
    temporal_elasticsearch_password: SecretStr | None = Field(
        None, description="Search engine password. Never printed or logged."
    )
    search_engine: SearchEngine = Field(
        "elasticsearch", description="Engine the local stack runs: elasticsearch (7.10.2) or opensearch."
    )

    # --- Temporal services -------------------------------------------------------------------
    temporal_namespace: str = Field("default", description="Namespace registered at start-up.")
    temporal_num_history_shards: int = Field(
        4,
        ge=1,
        le=16384,
        description="History shards; fixed when the schema is first used (production: 512+).",
    )
    temporal_frontend_host: Host = Field("127.0.0.1", description="Host clients reach the frontend at.")
    temporal_frontend_port: Port = Field(7233, description="Frontend gRPC port.")
    temporal_history_port: Port = Field(7234, description="History gRPC port.")
    temporal_matching_port: Port = Field(7235, description="Matching gRPC port.")
    temporal_worker_port: Port = Field(7239, description="Worker gRPC port.")
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
        description="The metrics store's HTTP port: VictoriaMetrics with its UI and dashboards (local stack), "
        "Prometheus (compose).",
    )
    metrics_scrape_interval: GoDuration = Field(
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
    temporal_version: str = Field("1.32.2", description="Temporal server release (Go module version).")
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

    # --- Local paths -------------------------------------------------------------------------------
    stack_dir: Path = Field(
        Path(".stack"),
        description="Data, logs and rendered config of the local stack (relative to the project root).",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloaded and built components, keyed by version (outside the checkout).",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.temporal_sql_max_idle_conns is None:
            self.temporal_sql_max_idle_conns = self.temporal_sql_max_conns
        if self.temporal_sql_max_idle_conns > self.temporal_sql_max_conns:
            raise ValueError(
                f"TEMPORAL_SQL_MAX_IDLE_CONNS={self.temporal_sql_max_idle_conns} is above "
                f"TEMPORAL_SQL_MAX_CONNS={self.temporal_sql_max_conns}; idle connections are part of the pool"
            )
        if self.temporal_sql_iam_auth and not self.temporal_sql_tls_enabled:
            raise ValueError(
                "TEMPORAL_SQL_IAM_AUTH=true needs TEMPORAL_SQL_TLS_ENABLED=true; IAM tokens must not cross "
                "the network in clear text"
            )
        if self.temporal_sql_iam_auth and not self.aws_region:
            raise ValueError("TEMPORAL_SQL_IAM_AUTH=true needs AWS_REGION to sign tokens for")
        if self.is_dsql and self.temporal_sql_max_conn_lifetime >= DSQL_MAX_CONNECTION_LIFETIME:
            raise ValueError(
                "TEMPORAL_SQL_MAX_CONN_LIFETIME="
                f"{format_go_duration(self.temporal_sql_max_conn_lifetime)} is 60 minutes or more, and "
                "DSQL closes connections at 60 minutes; use less, e.g. 300s"
            )
        if not timedelta(seconds=1) <= self.metrics_scrape_interval <= timedelta(minutes=5):
            raise ValueError(
                f"METRICS_SCRAPE_INTERVAL={format_go_duration(self.metrics_scrape_interval)} is outside 1s to 5m; "
                "use e.g. 15s"
            )
        if not timedelta(seconds=1) <= self.temporal_sql_token_lifetime <= timedelta(hours=168):
            raise ValueError(
                f"TEMPORAL_SQL_TOKEN_LIFETIME={format_go_duration(self.temporal_sql_token_lifetime)} is outside "
                "1s to 168h (DSQL's longest token); use e.g. 15m"
            )
        local_database = (
            {"TEMPORAL_SQL_PORT": self.temporal_sql_port, "DSQL_LOCAL_PORT": self.dsql_local_port,
             "DSQL_LOCAL_ADMIN_PORT": self.dsql_local_admin_port} if self.runs_local_database else {}
        )  # fmt: skip
        ports = {
            **local_database,
            "TEMPORAL_FRONTEND_PORT": self.temporal_frontend_port,
            "TEMPORAL_HISTORY_PORT": self.temporal_history_port,
            "TEMPORAL_MATCHING_PORT": self.temporal_matching_port,
            "TEMPORAL_WORKER_PORT": self.temporal_worker_port,
            "TEMPORAL_UI_PORT": self.temporal_ui_port,
            "TEMPORAL_ELASTICSEARCH_PORT": self.temporal_elasticsearch_port,
            "METRICS_PORT": self.metrics_port,
            "GRAFANA_PORT": self.grafana_port,
            "SEARCH_ENGINE_EXPORTER_PORT": self.search_engine_exporter_port,
            **({"POSTGRES_EXPORTER_PORT": self.postgres_exporter_port} if self.runs_local_database else {}),
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}; every service needs its own port")
            seen[port] = name
        return self

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
        return f"{self.temporal_frontend_host}:{self.temporal_frontend_port}"

    def resolve(self, project_root: Path) -> Settings:
        """Anchor relative paths at the project root, so tasks behave the same from any directory."""
        if self.stack_dir.is_absolute():
            return self
        return self.model_copy(update={"stack_dir": (project_root / self.stack_dir).resolve()})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe_error(error: Any) -> str:
    location = error["loc"]
    field = str(location[0]) if location else ""
    if not field:  # a cross-field rule: its message already names the variables
        return str(error["msg"]).removeprefix("Value error, ")
    variable = field.upper()
    shown = "(value hidden)" if field in SECRET_FIELDS else repr(error.get("input"))
    accepted = str(error["msg"]).removeprefix("Value error, ")
    expected = error.get("ctx", {}).get("expected")
    if expected:
        accepted = f"{accepted} ({expected})"
    return f"{variable}={shown} is invalid: {accepted}"


def _env_file_problems(source: Path) -> list[str]:
    """What is wrong with the .env file itself: encoding, malformed lines, misspelt names."""
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source.read_bytes()[: exc.start].count(b"\n") + 1
        return [f"line {line} is not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
    except OSError as exc:
        return [f"cannot be read: {exc.strerror}"]
    problems = []
    known = {name.upper() for name in Settings.model_fields}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            shown = binding.original.string.strip()[:60].split("=", 1)[0]
            problems.append(f"line {line} is not NAME=value: {shown!r}")
            continue
        name = (binding.key or "").upper()
        if name.startswith(_CHECKED_PREFIXES) and name not in known and name not in AWS_SDK_VARIABLES:
            close = difflib.get_close_matches(name, sorted(known | AWS_SDK_VARIABLES), n=1)
            hint = f"did you mean {close[0]}?" if close else "no setting has this name"
            problems.append(f"line {line}: {binding.key} is not a known variable ({hint})")
    return problems


def load_settings(project_root: Path, env_file: Path | None = None) -> Settings:
    """Load and validate settings from `<project_root>/.env` and the environment."""
    source = env_file if env_file is not None else project_root / ".env"
    if source.exists():
        problems = _env_file_problems(source)
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise ConfigError(
                f"{source} has problems:\n{listed}", "correct these lines; .env.example lists every variable"
            )
    return _validated(source if source.exists() else None, source.name).resolve(project_root)


def load_settings_from_environment() -> Settings:
    """Settings from the environment alone: what a process started by the stack receives."""
    return _validated(None, "the environment")


def _validated(env_file: Path | None, origin: str) -> Settings:
    try:
        return Settings(_env_file=env_file)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe_error(error)}" for error in exc.errors())
        where = f"from {origin} and the environment" if env_file else f"from {origin}"
        raise ConfigError(
            f"invalid configuration ({where}):\n{problems}",
            "correct the variables above in .env or the environment; .env.example documents each one",
        ) from None


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
