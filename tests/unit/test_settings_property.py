"""Any value of any setting, from the environment or from .env, gives valid settings or one ConfigError naming it.

Every field of `Settings` is covered, so a new setting is tested without a new test. Never another exception,
never a secret in the message.
"""

from __future__ import annotations

import string
import types
import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.settings.config import (
    SECRET_FIELDS,
    Settings,
    check_host,
    load_settings,
    parse_go_duration,
)
from temporal_dsql_deploy.settings.paths import real_path
from tests.conftest import FAKE_ACCESS_KEY_ID

SECRET = "Zq9-never-shown"  # every secret of the background carries it; no message may
# Valid settings around the one under test, so any error is that setting's: both halves of each credential pair.
BACKGROUND = {
    "TEMPORAL_SQL_PASSWORD": SECRET, "GRAFANA_ADMIN_PASSWORD": SECRET, "DSQL_LOCAL_SECRET_ACCESS_KEY": SECRET,
    "DSQL_LOCAL_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID, "TEMPORAL_ELASTICSEARCH_USERNAME": "temporal",
    "TEMPORAL_ELASTICSEARCH_PASSWORD": SECRET, "DOCKER_ARCH": "amd64",
}  # fmt: skip

SAMPLES = ["true", "false", "", " ", "/", ".", "..", "~", "127.0.0.1", "localhost", "dsql", "postgres12_pgx",
           "elasticsearch", "opensearch", "https", "arm64", "us-east-1", "default", "db.example.com", "9091", "6933",
           "8233", "301", "300", "0s", "1800s", "1801s", "0.0.0.0"]  # fmt: skip  # noqa: S104 (a value, not a bind)
# Arbitrary text an environment or a file can hold (no NUL, no lone surrogates), and the shapes settings take,
# so that both the valid and the invalid side of every rule are reached.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
shaped = st.one_of(
    st.integers(-70_000, 70_000).map(str),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(-5, 4000), st.sampled_from(["ms", "s", "m", "h", ""])),
    st.sampled_from(SAMPLES),
    st.text(string.ascii_letters + string.digits + "-_./", max_size=20),
    # Paths past the filesystem's limits: one name over 255 bytes, or a whole path that long.
    st.builds(lambda root, name, tail: f"{root}{name}{tail}", st.sampled_from(["/", "", "./"]),
              st.text("abc", min_size=200, max_size=300), st.sampled_from(["", "/ca.pem"])),
)  # fmt: skip
values = st.one_of(texts, shaped)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("property") / "project"
    root.mkdir()
    return root


def _dotenv_line(name: str, value: str) -> str:
    # Single quotes take the value literally; python-dotenv unescapes only \\ and \' inside them.
    return f"{name}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'\n"


@pytest.mark.parametrize("field", list(Settings.model_fields))
@settings(max_examples=25, deadline=None)  # ~8 ms a load (pydantic-settings inspects each field): ~20 s
@given(value=values, from_file=st.booleans())
def test_any_value_is_valid_or_a_clear_error_naming_the_setting(
    project: Path, field: str, value: str, from_file: bool
) -> None:
    variable = field.upper()
    shown_value = f"{SECRET}{value}" if field in SECRET_FIELDS else value
    env_file = project / ".env"
    with pytest.MonkeyPatch.context() as patch:
        for name in Settings.model_fields:
            patch.delenv(name.upper(), raising=False)
        for name, background in {**BACKGROUND, "CACHE_DIR": str(project.parent / "cache")}.items():
            patch.setenv(name, background)
        patch.delenv(variable, raising=False)
        if from_file:
            # Known: pydantic-settings reads .env with universal newlines, so a lone CR inside a quoted value
            # arrives as LF (a value no editor writes); not part of this property.
            shown_value = shown_value.replace("\r", "")
            env_file.write_text(_dotenv_line(variable, shown_value), encoding="utf-8")
        else:
            env_file.unlink(missing_ok=True)
            patch.setenv(variable, shown_value)
        try:
            loaded = load_settings(project)
        except ConfigError as error:
            message = str(error)
            assert variable in message, message
            assert SECRET not in message, message
        else:
            assert _taken(getattr(loaded, field)) == _documented(field, shown_value, project)


def _taken(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# How each type of setting reads its text (pydantic's words for true; any other accepted word means false).
PARSERS: dict[object, Callable[[str], object]] = {
    bool: lambda value: value.strip().lower() in {"1", "on", "t", "true", "y", "yes"},
    int: int,
    float: float,
    timedelta: parse_go_duration,
}


def _documented(field: str, value: str, project: Path) -> object:
    """What `value` means for `field`, read as the setting's type says: the result the load must give."""
    info = Settings.model_fields[field]
    kinds = set(typing.get_args(info.annotation)) if isinstance(info.annotation, types.UnionType) else {info.annotation}
    if Path in kinds:  # anchored at the project root, symlinks resolved (Settings.resolve)
        return real_path(project / value)
    if any(getattr(rule, "func", None) is check_host for rule in info.metadata):
        return value.strip()  # a host is taken without the spaces around it
    # Text, a choice or a secret is taken as given.
    return next((parse for kind, parse in PARSERS.items() if kind in kinds), str)(value)
