"""Bad input, as a user gives it: one `error:` line naming the input, a `fix:` line, non-zero, nothing left behind.

Each task runs in a project of its own (a copy of tasks.py in a temporary directory), so the test's
`.env` is the only one read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.conftest import assert_clear_error, run_task


def test_env_file_that_is_not_utf8(project: Path) -> None:
    assert_clear_error(run_task(project, "compose", env_file=b"PROJECT_NAME=caf\xe9\n"), ".env", "UTF-8", "line 1")


def test_malformed_env_line_names_file_and_line(project: Path) -> None:
    result = run_task(project, "compose", env_file="PROJECT_NAME=ok\nthis line has no equals sign\n")
    assert_clear_error(result, ".env", "line 2", "NAME=value")


def test_misspelt_variable_names_the_closest_known_one(project: Path) -> None:
    result = run_task(project, "compose", env_file="TEMPORAL_SQL_PROT=5433\nAWS_PROFILE=dev\nOTHER_TOOL=1\n")
    assert_clear_error(result, "TEMPORAL_SQL_PROT", "did you mean TEMPORAL_SQL_PORT?")
    assert "AWS_PROFILE" not in result.stderr  # read by the AWS SDK itself: known


@pytest.mark.parametrize("host", ["", "   ", "postgres://db.example.com:5432/temporal", "http://db.example.com",
                                  "db.example.com:5432", "bad_host!"])  # fmt: skip
def test_bad_sql_host(project: Path, host: str) -> None:
    assert_clear_error(run_task(project, "compose", env_file=f"TEMPORAL_SQL_HOST={host}\n"), "TEMPORAL_SQL_HOST")


def test_bad_publish_address(project: Path) -> None:
    assert_clear_error(run_task(project, "compose", PUBLISH_ADDRESS="everywhere"), "PUBLISH_ADDRESS")


def test_compose_output_into_a_directory(project: Path) -> None:
    (project / "out").mkdir()
    assert_clear_error(run_task(project, "compose", "--output", str(project / "out")), "is a directory")


def test_compose_output_under_a_file(project: Path) -> None:
    (project / "file").write_text("x", encoding="utf-8")
    target = project / "file" / "compose.yml"
    assert_clear_error(run_task(project, "compose", "--output", str(target)), "cannot write", str(target))


def test_compose_output_somewhere_unwritable(project: Path) -> None:
    target = Path("/proc/temporal-dsql-deploy/compose.yml")  # even root cannot create files in procfs
    assert_clear_error(run_task(project, "compose", "--output", str(target)), "cannot write", str(target))


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "not an object"),
     ('{"SchemaUpdateCqlFiles": ["a.sql"]}', "not a schema manifest: CurrVersion: Field required"),
     ('{"CurrVersion": "1.0", "SchemaUpdateCqlFiles": "a.sql"}', "SchemaUpdateCqlFiles: Input should be a valid list"),
     ('{"CurrVersion": "one", "SchemaUpdateCqlFiles": ["a.sql"]}', "CurrVersion 'one' is not a schema version"),
     ('{"CurrVersion": "1.1", "SchemaUpdateCqlFiles": ["a.sql"]}', "does not match the directory name"),
     ('{"CurrVersion": "1.0", "SchemaUpdateCqlFiles": ["missing.sql"]}', "files missing or none listed")],
)  # fmt: skip
def test_schema_manifest_that_is_broken(project: Path, manifest: str, problem: str) -> None:
    version = project / "myschema" / "versioned" / "v1.0"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(manifest, encoding="utf-8")
    (version / "a.sql").write_text("CREATE TABLE t (id INT PRIMARY KEY);\n", encoding="utf-8")
    result = run_task(project, "schema.validate", "--schema-dir", str(project / "myschema"))
    assert_clear_error(result, "manifest.json", problem)


@pytest.mark.parametrize("task", ["schema.setup", "schema.update", "schema.validate"])
def test_schema_tasks_against_a_database_that_refuses(project: Path, task: str) -> None:
    # Port 9 (discard) on loopback: nothing listens, so every connection is refused.
    result = run_task(project, task, "--schema-name", "dsql/v12/temporal", TEMPORAL_SQL_PORT="9",
                      TEMPORAL_SQL_PLUGIN="postgres12_pgx")  # fmt: skip
    assert_clear_error(result, "127.0.0.1:9", "kept failing")


def test_local_dsql_profile_before_the_stack_ever_ran(project: Path) -> None:
    result = run_task(project, "check-dsql", TEMPORAL_SQL_PLUGIN="dsql")
    assert_clear_error(result, "local credentials", "invoke up")


def test_build_from_a_missing_source_leaves_nothing(project: Path) -> None:
    result = run_task(project, "build", "--source", str(project / "nonexistent"))
    assert_clear_error(result, "--source", "not a Temporal server checkout")
    assert not (project.parent / "cache").exists()


def test_deploy_preflight_lists_every_missing_prerequisite(project: Path) -> None:
    result = run_task(project, "deploy", "--dry-run", PATH="/usr/bin:/bin")
    assert_clear_error(result, "AWS_REGION is not set", "no AWS credentials", "terraform is not installed")


def test_world_readable_env_with_a_secret_draws_a_warning(project: Path) -> None:
    result = run_task(project, "compose", "--output", str(project / "c.yml"), env_file="TEMPORAL_SQL_PASSWORD=pw\n")
    assert result.returncode == 0, result.stderr
    (project / ".env").chmod(0o644)
    warned = run_task(project, "compose", "--output", str(project / "c.yml"))
    assert warned.returncode == 0, warned.stderr
    assert "warning:" in warned.stderr
    assert "chmod 600" in warned.stderr
    assert "pw" not in warned.stderr.replace("password", "")
    (project / ".env").chmod(0o600)
    assert "warning:" not in run_task(project, "compose", "--output", str(project / "c.yml")).stderr


@pytest.mark.parametrize("task", ["down", "logs all", "cleanup --yes"])
def test_stack_control_needs_only_what_it_touches(project: Path, task: str) -> None:
    result = run_task(project, *task.split())  # an empty component cache: nothing was ever installed
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("task", ["status", "restart", "upgrade --to 1.31.2", "upgrade --to 1.31.2 --dry-run"])
def test_without_an_installed_stack(project: Path, task: str) -> None:
    assert_clear_error(run_task(project, *task.split()), "not running")


@pytest.mark.parametrize(("arguments", "said"), [
    (["--to", "1.33.0"], "--to '1.33.0' is not one of: 1.30.9, 1.31.2, 1.32.2"),
    (["--to", "latest"], "--to 'latest'"),
])  # fmt: skip
def test_upgrade_names_the_releases_it_can_go_to(project: Path, arguments: list[str], said: str) -> None:
    assert_clear_error(run_task(project, "upgrade", *arguments), said, "1.30.9, 1.31.2, 1.32.2")


def test_bench_without_a_running_stack(project: Path) -> None:
    assert_clear_error(run_task(project, "bench", "--workflows", "5", STACK_DIR=str(project / "stack")),
                       "not running", "invoke up")  # fmt: skip


def test_bench_with_a_shape_it_does_not_know(project: Path) -> None:
    assert_clear_error(run_task(project, "bench", "--shape", "huge"), "--shape 'huge'", "hello, transitions")
