"""The one path from settings to a process's environment, and the only reader of this process's own.

Names come from the settings model (`temporal_sql_port` -> `TEMPORAL_SQL_PORT`), values are rendered
the way the consumers parse them (Go durations, lower-case booleans). Secrets are never rendered:
they become a `SecretRef` that each runtime fills in at start from `secret_values`, so a password
never lands in a command line, a rendered file or a log. It takes the settings as the pydantic model they are
(config.py builds on this module, not the other way round).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, SecretStr

# What a supervised service may inherit from the shell that started the stack; everything else
# (AWS keys, tokens, the operator's own variables) is withheld.
_SERVICE_BASELINE = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "JAVA_HOME")


@dataclass(frozen=True)
class HostOf:
    """An environment value naming another service's host; renderers resolve it. `pattern` puts the host in
    a longer value, such as a URL."""

    service: str
    pattern: str = "{host}"


@dataclass(frozen=True)
class SecretRef:
    """A secret's variable: rendered as a reference (`${NAME}`), supplied by the runtime at start.

    `field` names the setting that holds the value when it is not NAME lower-cased.
    """

    name: str
    field: str = ""

    @property
    def source(self) -> str:
        return self.field or self.name.lower()


EnvValue = str | HostOf | SecretRef


def variable_name(field: str) -> str:
    return field.upper()


def format_go_duration(value: timedelta) -> str:
    """Render a duration the way Temporal's YAML config expects it."""
    milliseconds = round(value.total_seconds() * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def format_value(value: object) -> str:
    """A settings value as its consumers read it from the environment."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return format_go_duration(value)
    return str(value)


def settings_environment(settings: BaseModel, fields: Iterable[str]) -> dict[str, EnvValue]:
    """The variables for `fields` of `settings`: unset fields are left out, secrets become references."""
    environment: dict[str, EnvValue] = {}
    for field in fields:
        if field not in type(settings).model_fields:
            raise KeyError(f"{field} is not a setting")
        value = getattr(settings, field)
        if value is None:
            continue
        name = variable_name(field)
        environment[name] = SecretRef(name) if isinstance(value, SecretStr) else format_value(value)
    return environment


def secret_values(settings: BaseModel, environment: Iterable[Mapping[str, EnvValue]]) -> dict[str, str]:
    """The values of the secrets these environments refer to (for the runtime, never for a file others read)."""
    wanted = {value for env in environment for value in env.values() if isinstance(value, SecretRef)}
    values: dict[str, str] = {}
    for reference in sorted(wanted, key=lambda ref: ref.name):
        secret = getattr(settings, reference.source)
        if isinstance(secret, SecretStr):
            values[reference.name] = secret.get_secret_value()
        elif isinstance(secret, str):
            values[reference.name] = secret
    return values


def service_baseline() -> dict[str, str]:
    """The few variables of this process that a supervised service inherits."""
    return {name: os.environ[name] for name in _SERVICE_BASELINE if name in os.environ}


def tool_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """For an operator's tool (go, terraform, docker): this process's environment plus `extra`."""
    return {**os.environ, **(extra or {})}


def docker_host() -> str | None:
    """The engine the operator's shell names (DOCKER_HOST), if any: the docker tools read it themselves."""
    return os.environ.get("DOCKER_HOST") or None


def cache_home() -> Path:
    """XDG's cache home."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def render_environment(
    environment: Mapping[str, EnvValue], host: Callable[[HostOf], str], secret: Callable[[SecretRef], str]
) -> dict[str, str]:
    """Plain strings for a rendered file: hosts resolved, secrets as references, sorted by name.

    A `$` in a plain value is doubled: Compose and process-compose both expand `${...}` in their files.
    """
    rendered: dict[str, str] = {}
    for name, value in sorted(environment.items()):
        if isinstance(value, HostOf):
            rendered[name] = value.pattern.replace("{host}", host(value))
        elif isinstance(value, SecretRef):
            rendered[name] = secret(value)
        else:
            rendered[name] = value.replace("$", "$$")
    return rendered
