"""The one typed settings object: `.env` plus the environment, validated once.

Field names are the environment variable names (lower-cased), so every message and the
README's configuration reference speak the operator's language.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from temporal_dsql_deploy.errors import ConfigError

Architecture = Literal["amd64", "arm64"]
SqlPlugin = Literal["postgres12", "postgres12_pgx", "dsql"]
SearchEngine = Literal["elasticsearch", "opensearch"]

DSQL_MAX_CONNECTION_LIFETIME = timedelta(minutes=60)
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_GO_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SECRET_FIELDS = frozenset({"temporal_sql_password", "temporal_elasticsearch_password"})


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


def format_go_duration(value: timedelta) -> str:
    """Render a duration the way Temporal's YAML config expects it."""
    milliseconds = round(value.total_seconds() * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


GoDuration = Annotated[timedelta, BeforeValidator(parse_go_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]


def host_architecture() -> Architecture:
    """The architecture of this machine in Docker's platform vocabulary."""
    machine = platform.machine().lower()
    return "arm64" if machine in {"arm64", "aarch64"} else "amd64"


def _default_cache_dir() -> Path:
    # XDG's cache home, read here because config is the one module that reads the environment.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-dsql-deploy"


class Settings(BaseSettings):
    """Everything the product needs to know, with defaults that select the local embedded stack."""

    model_config = SettingsConfigDict(
        env_file=".env",
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
    temporal_sql_host: str = Field(
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
        "postgres12_pgx", description="Temporal SQL plugin: postgres12, postgres12_pgx or dsql."
    )
    temporal_sql_tls_enabled: bool = Field(False, description="Connect with TLS (mandatory for DSQL).")
    temporal_sql_iam_auth: bool = Field(
        False, description="Authenticate with short-lived IAM tokens instead of a password (DSQL)."
    )
    temporal_sql_max_conns: int = Field(20, ge=1, le=10_000, description="Pool size per Temporal service.")
    temporal_sql_max_idle_conns: int = Field(5, ge=0, description="Idle connections kept per service.")
    temporal_sql_connection_timeout: GoDuration = Field(
        timedelta(seconds=30), description="Connect timeout (Go duration, e.g. 30s)."
    )
    temporal_sql_max_conn_lifetime: GoDuration = Field(
        timedelta(seconds=300),
        description="Recycle connections after this long; DSQL closes them at 60 minutes.",
    )

    # --- Visibility (Elasticsearch / OpenSearch) -------------------------------------------
    temporal_elasticsearch_host: str = Field("127.0.0.1", description="Search engine host.")
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
    temporal_frontend_host: str = Field("127.0.0.1", description="Host clients reach the frontend at.")
    temporal_frontend_port: Port = Field(7233, description="Frontend gRPC port.")
    temporal_history_port: Port = Field(7234, description="History gRPC port.")
    temporal_matching_port: Port = Field(7235, description="Matching gRPC port.")
    temporal_worker_port: Port = Field(7239, description="Worker gRPC port.")
    temporal_ui_port: Port = Field(8080, description="Web UI port.")
    temporal_log_level: Literal["debug", "info", "warn", "error"] = Field(
        "info", description="Temporal server log level."
    )

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
        if self.temporal_sql_plugin == "dsql" and self.temporal_sql_max_conn_lifetime >= DSQL_MAX_CONNECTION_LIFETIME:
            raise ValueError(
                "TEMPORAL_SQL_MAX_CONN_LIFETIME="
                f"{format_go_duration(self.temporal_sql_max_conn_lifetime)} is 60 minutes or more, and "
                "DSQL closes connections at 60 minutes; use less, e.g. 300s"
            )
        ports = {
            "TEMPORAL_FRONTEND_PORT": self.temporal_frontend_port,
            "TEMPORAL_HISTORY_PORT": self.temporal_history_port,
            "TEMPORAL_MATCHING_PORT": self.temporal_matching_port,
            "TEMPORAL_WORKER_PORT": self.temporal_worker_port,
            "TEMPORAL_UI_PORT": self.temporal_ui_port,
            "TEMPORAL_ELASTICSEARCH_PORT": self.temporal_elasticsearch_port,
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}; every service needs its own port")
            seen[port] = name
        return self

    @property
    def sql_is_local(self) -> bool:
        """True when persistence is the project's own local database, not a remote endpoint."""
        return _is_loopback(self.temporal_sql_host)

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
    shown = "(value hidden)" if field in _SECRET_FIELDS else repr(error.get("input"))
    accepted = str(error["msg"]).removeprefix("Value error, ")
    expected = error.get("ctx", {}).get("expected")
    if expected:
        accepted = f"{accepted} ({expected})"
    return f"{variable}={shown} is invalid: {accepted}"


def load_settings(project_root: Path, env_file: Path | None = None) -> Settings:
    """Load and validate settings from `<project_root>/.env` and the environment."""
    source = env_file if env_file is not None else project_root / ".env"
    try:
        settings = Settings(_env_file=source if source.exists() else None)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe_error(error)}" for error in exc.errors())
        raise ConfigError(
            f"invalid configuration (from {source.name} and the environment):\n{problems}",
            "correct the variables above in .env or the environment; .env.example documents each one",
        ) from None
    return settings.resolve(project_root)


def inherited_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment for child processes, plus `extra` (this module owns environment access)."""
    return {**os.environ, **(extra or {})}
