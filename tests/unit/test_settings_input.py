"""Settings that would destroy, half-start or mislead are refused when settings load, with one error naming them.

Most cases load settings in-process (a project directory of the test's own, only the variables it sets); one case
per class runs a task as the user does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import certifi
import pytest

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.runtime.model import temporal_roles
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings, load_settings
from tests.conftest import DSQL, FAKE_ACCESS_KEY_ID
from tests.unit.conftest import assert_clear_error, run_task

Load = Callable[..., Settings]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    return project


@pytest.fixture
def load(clean_env: pytest.MonkeyPatch, root: Path) -> Load:
    """Settings of `root` from the given variables and, if given, a .env file's text."""
    clean_env.setenv("CACHE_DIR", str(root.parent / "cache"))

    def load(env_file: str | None = None, **variables: str) -> Settings:
        if env_file is not None:
            (root / ".env").write_text(env_file, encoding="utf-8")
        for name, value in variables.items():
            clean_env.setenv(name, value)
        return load_settings(root)

    return load


def _error(load: Load, env_file: str | None = None, **variables: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(env_file, **variables)
    return caught.value


# --- STACK_DIR and CACHE_DIR ----------------------------------------------------------------------------------


def _directory_cases(root: Path) -> list[tuple[str, str, str, str]]:
    """(variable, value, resolved path shown, why) for every directory the product must never take for its own."""
    (root.parent / "a-file").write_text("x", encoding="utf-8")
    return [
        ("STACK_DIR", "", "", "empty"),
        ("STACK_DIR", "   ", "", "blank"),
        ("STACK_DIR", "/", "/", "the root directory"),
        ("STACK_DIR", str(Path.home()), str(Path.home().resolve()), "the home directory"),
        ("STACK_DIR", ".", str(root.resolve()), "the project root"),
        ("STACK_DIR", "..", str(root.parent.resolve()), "a parent of the project root"),
        ("CACHE_DIR", str(root), str(root.resolve()), "the project root"),
        ("CACHE_DIR", "cache", str(root.resolve() / "cache"), "inside the checkout"),
        ("STACK_DIR", str(root.parent / "a-file"), str(root.parent.resolve() / "a-file"), "is a file"),
        ("STACK_DIR", str(root.parent / "a-file" / "stack"), str(root.parent.resolve() / "a-file"), "which is a file"),
        ("STACK_DIR", "x" * 300, str(root.resolve() / ("x" * 300)), "File name too long"),
    ]


DIRECTORY_CASES = ["empty", "blank", "root", "home", "project root", "parent", "cache is the root",
                   "cache in the checkout", "a file", "under a file", "name too long"]  # fmt: skip


@pytest.mark.parametrize("case", range(len(DIRECTORY_CASES)), ids=DIRECTORY_CASES)
def test_a_directory_the_product_must_not_own_is_refused(load: Load, root: Path, case: int) -> None:
    variable, value, resolved, why = _directory_cases(root)[case]
    error = _error(load, **{variable: value})
    assert f"{variable}={value!r}" in error.problem
    assert resolved in error.problem
    assert why in error.problem
    assert error.fix is not None
    assert variable in error.fix


@pytest.mark.parametrize("stack", ["cache", "cache/stack"])
def test_stack_and_cache_in_one_directory_are_refused(load: Load, root: Path, stack: str) -> None:
    error = _error(load, STACK_DIR=str(root.parent / stack))
    assert "STACK_DIR and CACHE_DIR overlap" in error.problem


def test_a_directory_that_does_not_exist_yet_is_accepted_and_not_created(load: Load, root: Path) -> None:
    settings = load(STACK_DIR=str(root.parent / "new" / "stack"), CACHE_DIR=str(root.parent / "new-cache"))
    assert settings.stack_dir == root.parent.resolve() / "new" / "stack"
    assert not (root.parent / "new").exists()
    assert not (root.parent / "new-cache").exists()


def test_loading_settings_writes_nothing_so_a_read_only_disk_still_lets_the_stack_stop(
    load: Load, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only disk: any file created fails. `down` and `status` load settings first; they must still load.
    def read_only(*_args: object, **_kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("tempfile.TemporaryFile", read_only)
    monkeypatch.setattr("tempfile.NamedTemporaryFile", read_only)
    stack = root.parent / "stack"
    stack.mkdir()
    assert load(STACK_DIR=str(stack)).stack_dir == stack.resolve()


def test_an_absolute_stack_dir_that_is_a_symlink_is_used_where_it_points(load: Load, root: Path) -> None:
    bigger_disk = root.parent / "bigger-disk" / "stack"
    bigger_disk.mkdir(parents=True)
    link = root.parent / "stack-link"
    link.symlink_to(bigger_disk)
    assert load(STACK_DIR=str(link)).stack_dir == bigger_disk.resolve()


def test_cleanup_with_an_empty_stack_dir_deletes_nothing(project: Path) -> None:
    (project / "precious.txt").write_text("mine", encoding="utf-8")
    result = run_task(project, "cleanup", "--yes", env_file="STACK_DIR=\n")
    assert_clear_error(result, "STACK_DIR=''", "(from .env)", "empty")
    assert (project / "precious.txt").read_text(encoding="utf-8") == "mine"
    assert (project / "tasks.py").exists()


# --- Unknown names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "closest"), [("SEARCH_ENIGNE=opensearch", "SEARCH_ENGINE"),
                                               ("STAK_DIR=x", "STACK_DIR"), ("METRIC_PORT=9000", "METRICS_PORT"),
                                               ("OTHER_TOOL=1", None)])  # fmt: skip
def test_every_name_in_the_env_file_must_be_a_setting(load: Load, line: str, closest: str | None) -> None:
    problem = _error(load, f"PROJECT_NAME=demo\n{line}\n").problem
    assert f"line 2: {line.split('=', maxsplit=1)[0]} is not a known variable" in problem
    assert (f"did you mean {closest}?" if closest else "no setting has this name") in problem


def test_a_misspelt_setting_in_the_env_file_stops_the_task(project: Path) -> None:
    result = run_task(project, "compose", "--output", str(project / "c.yml"), env_file="SEARCH_ENIGNE=opensearch\n")
    assert_clear_error(result, ".env", "SEARCH_ENIGNE", "did you mean SEARCH_ENGINE?")
    assert not (project / "c.yml").exists()


@pytest.mark.parametrize(("name", "closest"), [("SEARCH_ENIGNE", "SEARCH_ENGINE"), ("STAK_DIR", "STACK_DIR"),
                                               ("TEMPORAL_SQL_PROT", "TEMPORAL_SQL_PORT"),
                                               ("TEMPORAL_UI_POTR", "TEMPORAL_UI_PORT")])  # fmt: skip
def test_a_near_miss_in_the_environment_is_refused(load: Load, name: str, closest: str) -> None:
    error = _error(load, **{name: "1"})
    assert f"{name} (from the environment) is not a setting; did you mean {closest}?" in error.problem
    assert error.fix is not None
    assert f"correct {name} in the environment" in error.fix


# What a developer's or a CI runner's shell holds: none of it is a setting, and none of it may trip the check.
ORDINARY_ENVIRONMENT = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/dev", "USER": "dev", "SHELL": "/bin/bash", "TERM": "xterm", "LANG": "C",
    "PWD": "/home/dev/src", "OLDPWD": "/home/dev", "SHLVL": "1", "TMPDIR": "/home/dev/tmp", "TZ": "UTC",
    "EDITOR": "vim", "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/w", "RUNNER_OS": "Linux",
    "RUNNER_TEMP": "/t", "DOCKER_HOST": "unix:///var/run/docker.sock", "DOCKER_CONFIG": "/d", "DOCKER_BUILDKIT": "1",
    "COMPOSE_PROJECT_NAME": "x", "POSTGRES_PASSWORD": "pw", "POSTGRES_USER": "u", "POSTGRES_DB": "d",
    "PGHOST": "h", "PGPORT": "5432", "PGUSER": "u", "PGPASSWORD": "pw", "PGDATABASE": "d",
    "TEMPORAL_ADDRESS": "127.0.0.1:7233", "TEMPORAL_API_KEY": "k", "TEMPORAL_TLS_CERT": "c", "TEMPORAL_TLS_KEY": "k",
    "TEMPORAL_TLS_CA": "ca", "TEMPORAL_TLS_SERVER_NAME": "s", "TEMPORAL_TLS": "true", "TEMPORAL_ENV": "prod",
    "TEMPORAL_PROFILE": "p", "TEMPORAL_CONFIG_FILE": "f", "TEMPORAL_CODEC_ENDPOINT": "e", "TEMPORAL_CODEC_AUTH": "a",
    "TEMPORAL_CLI_ADDRESS": "a", "TEMPORAL_CLI_NAMESPACE": "n", "TEMPORAL_CLI_SHOW_STACKS": "1",
    "TEMPORAL_FRONTEND_HTTP_PORT": "8233", "TEMPORAL_HISTORY_MEMBERSHIP_PORT": "6934", "TEMPORAL_METRICS_PORT": "1",
    "TEMPORAL_SERVICES": "history", "TEMPORAL_BIND_IP": "127.0.0.1", "TEMPORAL_DYNAMIC_CONFIG_FILE": "f",
    "XDG_CACHE_HOME": "/c", "XDG_CONFIG_HOME": "/c", "XDG_RUNTIME_DIR": "/r", "UV_CACHE_DIR": "/u",
    "PIP_CACHE_DIR": "/p", "VIRTUAL_ENV": "/v", "PYTHONPATH": "/p", "GOPATH": "/g", "GOCACHE": "/g",
    "GOFLAGS": "-mod=mod", "JAVA_HOME": "/j", "ES_JAVA_OPTS": "-Xmx1g", "OPENSEARCH_JAVA_OPTS": "-Xmx1g",
    "ELASTICSEARCH_HOST": "h", "ELASTICSEARCH_URL": "u", "PROJECT_ROOT": "/p", "PROJECT_DIR": "/p",
    "AWS_PAGER": "", "AWS_DEFAULT_OUTPUT": "json", "AWS_EC2_METADATA_DISABLED": "true", "GRAFANA_URL": "u",
    "GF_SECURITY_ADMIN_PASSWORD": "pw", "STACK_NAME": "s", "CACHE_HOME": "/c", "METRICS_URL": "u",
    "SSL_CERT_FILE": "/etc/ssl/cert.pem", "REQUESTS_CA_BUNDLE": "/etc/ssl/cert.pem", "DISPLAY": ":0",
}  # fmt: skip


def test_an_ordinary_environment_never_trips_the_check(clean_env: pytest.MonkeyPatch, root: Path) -> None:
    for name, value in ORDINARY_ENVIRONMENT.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CACHE_DIR", str(root.parent / "cache"))
    assert load_settings(root).project_name == "temporal-dsql"  # beside this machine's own variables, too


# --- The .env file itself ----------------------------------------------------------------------------------------


def test_a_duplicated_key_names_both_lines(load: Load) -> None:
    problem = _error(load, "TEMPORAL_UI_PORT=8081\nPROJECT_NAME=demo\n# comment\nTEMPORAL_UI_PORT=8082\n").problem
    assert ".env" in problem
    assert "line 4: TEMPORAL_UI_PORT is set again (first on line 1)" in problem


def test_a_duplicated_key_stops_the_task(project: Path) -> None:
    result = run_task(project, "compose", env_file="SEARCH_ENGINE=opensearch\nsearch_engine=elasticsearch\n")
    assert_clear_error(result, ".env", "line 2: search_engine is set again (first on line 1)")


@pytest.mark.parametrize(("make", "said"), [
    (lambda env: env.symlink_to(env.parent / "gone.env"), "is a symbolic link to"),
    (lambda env: env.mkdir(), "is a directory"),
    (lambda env: env.symlink_to("/dev/zero"), "is not a regular file"),
    (lambda env: env.symlink_to("/proc/self/mem"), "cannot be read: Input/output error"),  # unreadable, even by root
])  # fmt: skip
def test_a_damaged_env_file_is_named(load: Load, root: Path, make: Callable[[Path], None], said: str) -> None:
    make(root / ".env")
    problem = _error(load).problem
    assert f"{root / '.env'} {said}" in problem


def test_a_dangling_env_symlink_stops_the_task(project: Path) -> None:
    (project / ".env").symlink_to(project / "moved.env")
    assert_clear_error(run_task(project, "compose"), ".env", "symbolic link", "does not exist")


@pytest.mark.parametrize("line", ["TEMPORAL_SQL_PASSWORD hunter2-secret", "hunter2-secret", "  hunter2-S3cr3t!",
                                  "hunter2-secret=x", "hunter2 secret=x", "=hunter2-secret"])  # fmt: skip
def test_a_line_that_is_not_name_equals_value_shows_none_of_its_text(load: Load, line: str) -> None:
    """A password wrapped onto a line of its own (or any broken line) may be a secret: only its number is shown."""
    problem = _error(load, f"PROJECT_NAME=demo\n{line}\n").problem
    assert problem.endswith("has problems:\n  - line 2 is not NAME=value")
    assert "hunter2" not in problem


def test_a_broken_value_shows_only_the_name_before_its_equals_sign(load: Load) -> None:
    problem = _error(load, "TEMPORAL_SQL_PASSWORD='hunter2-secret\n").problem
    assert "line 1: the value of TEMPORAL_SQL_PASSWORD cannot be read (an unclosed quote?)" in problem
    assert "hunter2" not in problem


# --- Credential pairs, names and files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "missing"), [
    ("DSQL_LOCAL_ACCESS_KEY_ID", "DSQL_LOCAL_SECRET_ACCESS_KEY"),
    ("DSQL_LOCAL_SECRET_ACCESS_KEY", "DSQL_LOCAL_ACCESS_KEY_ID"),
    ("TEMPORAL_ELASTICSEARCH_USERNAME", "TEMPORAL_ELASTICSEARCH_PASSWORD"),
    ("TEMPORAL_ELASTICSEARCH_PASSWORD", "TEMPORAL_ELASTICSEARCH_USERNAME"),
])  # fmt: skip
def test_half_a_credential_pair_is_refused(load: Load, given: str, missing: str) -> None:
    value = FAKE_ACCESS_KEY_ID if given.endswith("KEY_ID") else "s3cret-value"
    error = _error(load, **{given: value})
    assert f"{given} is set without {missing}; set both or neither" in error.problem
    assert "s3cret-value" not in str(error)
    assert error.fix is not None
    assert f"set {missing} in .env or the environment" in error.fix


def test_both_halves_of_a_pair_are_accepted(load: Load) -> None:
    settings = load(TEMPORAL_ELASTICSEARCH_USERNAME="temporal", TEMPORAL_ELASTICSEARCH_PASSWORD="pw",
                    DSQL_LOCAL_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID, DSQL_LOCAL_SECRET_ACCESS_KEY="secret")  # fmt: skip
    assert settings.temporal_elasticsearch_username == "temporal"


def test_half_a_credential_pair_stops_the_task(project: Path) -> None:
    result = run_task(project, "compose", DSQL_LOCAL_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID)
    assert_clear_error(result, "DSQL_LOCAL_ACCESS_KEY_ID is set without DSQL_LOCAL_SECRET_ACCESS_KEY")


@pytest.mark.parametrize("name", ["", "n" * 1001, "é" * 501])
def test_a_namespace_temporal_refuses_is_refused(load: Load, name: str) -> None:
    problem = _error(load, TEMPORAL_NAMESPACE=name).problem
    assert "TEMPORAL_NAMESPACE=" in problem
    assert "1 to 1000 bytes" in problem


@pytest.mark.parametrize("name", ["a\udcffb", "\udce9t\udce9"])  # bytes that are not UTF-8 (0xff, latin-1 é)
def test_a_namespace_that_is_not_utf8_is_refused(load: Load, name: str) -> None:
    """The environment may hold any bytes; Python keeps non-UTF-8 ones as surrogates, which no config can carry."""
    problem = _error(load, TEMPORAL_NAMESPACE=name).problem
    assert f"TEMPORAL_NAMESPACE={name!r} (from the environment) is invalid: UTF-8 text" in problem


@pytest.mark.parametrize("name", ["default", "n" * 1000, "my.team-ns_1", "é" * 500])
def test_a_namespace_temporal_accepts_is_accepted(load: Load, name: str) -> None:
    assert load(TEMPORAL_NAMESPACE=name).temporal_namespace == name


@pytest.mark.parametrize(("content", "said"), [
    (None, "does not exist"),
    ("directory", "is not a file"),
    ("name-too-long", "cannot be read (File name too long)"),
    ("", "is empty"),
    ("just text\n", "is not PEM"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "holds no certificate that parses"),
])  # fmt: skip
def test_a_ca_file_that_is_no_pem_bundle_is_refused(load: Load, root: Path, content: str | None, said: str) -> None:
    path = root / "ca.pem"
    if content == "name-too-long":
        path = root / ("c" * 256) / "ca.pem"  # one name past the filesystem's 255 bytes
    elif content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    given = str(path.relative_to(root))
    error = _error(load, TEMPORAL_SQL_TLS_CA_FILE=given)  # relative: anchored at the project root
    assert f"TEMPORAL_SQL_TLS_CA_FILE={given!r} (from the environment, resolves to {path})" in error.problem
    assert said in error.problem
    assert "-----BEGIN CERTIFICATE-----" in error.problem


def test_a_real_ca_bundle_is_accepted(load: Load) -> None:
    assert load(TEMPORAL_SQL_TLS_CA_FILE=certifi.where()).temporal_sql_tls_ca_file == Path(certifi.where()).resolve()


def test_a_bad_ca_file_stops_up_before_anything_starts(project: Path) -> None:
    result = run_task(project, "up", STACK_DIR=str(project.parent / "stack"), TEMPORAL_SQL_TLS_CA_FILE="missing.pem")
    assert_clear_error(result, "TEMPORAL_SQL_TLS_CA_FILE", "does not exist")
    assert not (project.parent / "stack").exists()


def test_a_remote_dsql_host_without_tls_is_refused(load: Load) -> None:
    error = _error(load, TEMPORAL_SQL_HOST="abc.dsql.us-east-1.on.aws", TEMPORAL_SQL_PLUGIN="dsql")
    assert "TEMPORAL_SQL_TLS_ENABLED=false; DSQL accepts TLS connections only" in error.problem
    assert error.fix is not None
    assert "TEMPORAL_SQL_HOST" in error.fix


def test_a_remote_postgresql_without_tls_is_accepted(load: Load) -> None:
    assert not load(TEMPORAL_SQL_HOST="db.example.com", TEMPORAL_SQL_PLUGIN="postgres12_pgx").sql_is_local


# --- DSQL's rules cannot be switched off ---------------------------------------------------------------------------


@pytest.mark.parametrize("age", ["0s", "0", "500ms", "1801s", "1h"])
def test_a_transaction_age_outside_dsqls_envelope_is_refused(load: Load, age: str) -> None:
    problem = _error(load, DSQL_LOCAL_MAX_TRANSACTION_AGE=age).problem
    assert f"DSQL_LOCAL_MAX_TRANSACTION_AGE={age!r}" in problem
    assert "from 1s to 1800s" in problem


@pytest.mark.parametrize("age", ["1s", "300s", "30m"])
def test_a_transaction_age_inside_dsqls_envelope_is_accepted(load: Load, age: str) -> None:
    assert load(DSQL_LOCAL_MAX_TRANSACTION_AGE=age).dsql_local_max_transaction_age.total_seconds() > 0


def test_a_connection_lifetime_of_zero_is_refused_with_dsql(load: Load) -> None:
    problem = _error(load, **DSQL, TEMPORAL_SQL_MAX_CONN_LIFETIME="0s").problem
    assert "TEMPORAL_SQL_MAX_CONN_LIFETIME=0s never recycles connections" in problem


# --- Derived ports ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variables", "said"), [
    ({"METRICS_PORT": "9091"}, "METRICS_PORT and the frontend metrics port (fixed) are both 9091"),
    ({"TEMPORAL_UI_PORT": "6933"},
     "TEMPORAL_UI_PORT and the frontend membership port (TEMPORAL_FRONTEND_PORT - 300) are both 6933"),
    ({"GRAFANA_PORT": "8233"}, "GRAFANA_PORT and the frontend HTTP port (fixed) are both 8233"),
    ({"TEMPORAL_WORKER_PORT": "9392"},
     "the worker membership port (TEMPORAL_WORKER_PORT - 300) and the history metrics port (fixed) are both 9092"),
    ({"TEMPORAL_HISTORY_PORT": "300"},
     "the history membership port (TEMPORAL_HISTORY_PORT - 300) would be 0; a gRPC port must be 301 or more"),
])  # fmt: skip
def test_a_port_that_collides_with_a_derived_one_is_refused(load: Load, variables: dict[str, str], said: str) -> None:
    error = _error(load, **variables)
    assert said in error.problem
    assert error.fix is not None
    assert f"correct {next(iter(variables))} in the environment" in error.fix
    assert "TEMPORAL_FRONTEND_PORT" not in error.fix  # never set: not the likelier cause


def test_a_derived_port_collision_stops_up_before_anything_starts(project: Path) -> None:
    result = run_task(project, "up", STACK_DIR=str(project.parent / "stack"), TEMPORAL_UI_PORT="6933")
    assert_clear_error(result, "TEMPORAL_UI_PORT", "frontend membership port (TEMPORAL_FRONTEND_PORT - 300)")
    assert not (project.parent / "stack").exists()


@pytest.mark.parametrize("variables", [{}, DSQL, {"TEMPORAL_HISTORY_PORT": "8234", "METRICS_PORT": "9190"}])
def test_every_port_the_stack_opens_is_one_the_check_knows(load: Load, variables: dict[str, str]) -> None:
    settings = load(**variables)
    checked = {port for port, _ in settings.labelled_ports()}
    opened = {port.number for service in build_stack(settings).services for port in service.ports}
    assert opened <= checked
    assert {role.membership_port for role in temporal_roles(settings)} <= checked


# --- Where each value came from ----------------------------------------------------------------------------------


def test_each_value_is_attributed_to_where_it_came_from(load: Load) -> None:
    error = _error(load, "TEMPORAL_SQL_PORT=five\nTEMPORAL_UI_PORT=eighty\n", TEMPORAL_UI_PORT="ninety")
    assert "TEMPORAL_SQL_PORT='five' (from .env)" in error.problem
    assert "TEMPORAL_UI_PORT='ninety' (from the environment)" in error.problem  # the environment wins
    assert "eighty" not in error.problem
    assert error.fix == ("correct TEMPORAL_SQL_PORT in .env; correct TEMPORAL_UI_PORT in the environment; "
                         ".env.example documents each setting")  # fmt: skip


def test_a_default_is_never_attributed_to_the_user(load: Load) -> None:
    error = _error(load, "TEMPORAL_SQL_IAM_AUTH=true\nTEMPORAL_SQL_TLS_ENABLED=true\n")
    assert "TEMPORAL_SQL_IAM_AUTH=true needs AWS_REGION" in error.problem
    assert error.fix is not None
    assert "set AWS_REGION in .env or the environment" in error.fix
    assert "from the environment" not in str(error)
