"""Damaged local state is seen before it is used: cached components, generated secrets, a STACK_DIR that cannot
be written, a shard count the data was not made with, a program that cannot be executed."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from pydantic import SecretStr

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import dsql_local_dir, persistence_endpoint
from temporal_dsql_deploy.database.local_postgres import (
    PG_AUTHID_FILE,
    as_postgres_user,
    check_data_dir,
    init_data_dir,
    with_local_secrets,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import MARKER, make_owned_dir
from temporal_dsql_deploy.private_files import probe_writable, state_writes, write_private
from temporal_dsql_deploy.runtime.components import check_programs, installed_temporal_server
from temporal_dsql_deploy.runtime.installer import COMPLETE_MARKER, Installer
from temporal_dsql_deploy.runtime.preflight import (
    SHARDS_RECORD,
    check_local_state,
    record_history_shards,
    repair_local_secrets,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import Layout
from tests.conftest import fake_paths
from tests.integration.conftest import require
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]
PROGRAM = b"#!/bin/sh\nexit 0\n" + b"#" * 4096


class Builds:
    """A component build that writes one program and one data file, counting how often it ran."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, staging: Path) -> None:
        self.count += 1
        (staging / "tool").write_bytes(PROGRAM)
        (staging / "tool").chmod(0o755)
        (staging / "share").mkdir()
        (staging / "share" / "data.txt").write_text("data\n", encoding="utf-8")


@pytest.fixture
def component(tmp_path: Path) -> tuple[Path, Builds, list[str]]:
    """An installed component (built once) and the lines its installer reported."""
    target = tmp_path / "cache" / "components" / "tool" / "v1"
    build = Builds()
    lines: list[str] = []
    Installer(lines.append, project_root=tmp_path).once(target, "tool v1", build, ("tool",))
    return target, build, lines


def _install_again(component: tuple[Path, Builds, list[str]], project_root: Path, *, build: bool = True) -> None:
    target, builds, lines = component
    Installer(lines.append, build=build, project_root=project_root).once(target, "tool v1", builds, ("tool",))


def test_an_intact_component_is_not_rebuilt(component: tuple[Path, Builds, list[str]], tmp_path: Path) -> None:
    _install_again(component, tmp_path)
    target, builds, lines = component
    assert builds.count == 1
    # What it does, then how long it took: the build here is instant.
    assert lines[0] == f"installing tool v1 (first time only; cached in {target})"
    assert re.fullmatch(r"installed tool v1 in \d+s", lines[1])
    assert len(lines) == 2
    recorded = json.loads((target / COMPLETE_MARKER).read_text(encoding="utf-8"))["files"]
    assert sorted(recorded) == ["share/data.txt", "tool"]


def test_of_two_installs_at_once_one_builds_and_the_other_waits_for_it(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "components" / "tool" / "v1"
    building, release = threading.Event(), threading.Event()
    builds = Builds()

    def slow_build(staging: Path) -> None:
        building.set()
        assert release.wait(30), "the test never let the build end"
        builds(staging)

    first = threading.Thread(
        target=lambda: Installer(lambda _line: None, project_root=tmp_path).once(
            target, "tool v1", slow_build, ("tool",)
        )
    )
    first.start()
    assert building.wait(30), "the first install never started building"
    second_lines: list[str] = []
    waiting = threading.Event()

    def second_report(line: str) -> None:
        second_lines.append(line)
        waiting.set()

    second = threading.Thread(
        target=lambda: Installer(second_report, project_root=tmp_path).once(target, "tool v1", builds, ("tool",))
    )
    second.start()
    assert waiting.wait(30), "the second install never said it waits"
    assert second.is_alive()  # it waits on the first; it does not build beside it
    assert builds.count == 0
    release.set()
    first.join(30)
    second.join(30)
    assert builds.count == 1
    assert second_lines == [f"waiting for another install of tool v1 into {target} to end"]
    assert (target / "tool").read_bytes() == PROGRAM


def test_a_cache_that_refuses_the_install_lock_is_named(tmp_path: Path) -> None:
    # A file where a directory of the cache must be: refused even to root, before any build or lock.
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "components").write_text("not a directory", encoding="utf-8")
    target = tmp_path / "cache" / "components" / "tool" / "v1"
    builds = Builds()
    with pytest.raises(DeployError) as refused:
        Installer(lambda _line: None, project_root=tmp_path).once(target, "tool v1", builds, ("tool",))
    assert str(refused.value).startswith(f"cannot write {tmp_path / 'cache' / 'components'}")
    assert "a file stands where a directory must be" in refused.value.problem
    assert "CACHE_DIR" in str(refused.value.fix)
    assert builds.count == 0


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _strip_executable_bit(path: Path) -> None:
    path.chmod(0o644)


@pytest.mark.parametrize(
    ("name", "damage", "said"),
    [
        ("tool", _delete, "tool is missing"),
        ("tool", _truncate, f"tool has {len(PROGRAM) // 2} bytes instead of {len(PROGRAM)}"),
        ("tool", _strip_executable_bit, "tool is not executable"),
        ("share/data.txt", _delete, "share/data.txt is missing"),
        ("share/data.txt", _truncate, "share/data.txt has 2 bytes instead of 5"),
    ],
    ids=["program-deleted", "program-truncated", "program-not-executable", "file-deleted", "file-truncated"],
)
def test_a_damaged_component_is_named_and_rebuilt(
    component: tuple[Path, Builds, list[str]], tmp_path: Path, name: str, damage: Callable[[Path], None], said: str
) -> None:
    target, builds, lines = component
    damage(target / name)
    _install_again(component, tmp_path)
    assert builds.count == 2
    assert lines[-2] == f"tool v1 in {target} is damaged: {said}; rebuilding it"
    assert re.fullmatch(r"installed tool v1 in \d+s", lines[-1])
    assert os.access(target / "tool", os.X_OK)
    assert (target / "tool").read_bytes() == PROGRAM
    _install_again(component, tmp_path)  # the rebuilt one is intact again
    assert builds.count == 2


def test_a_damaged_component_is_named_when_only_locating(
    component: tuple[Path, Builds, list[str]], tmp_path: Path
) -> None:
    target, builds, _ = component
    _truncate(target / "tool")
    with pytest.raises(DeployError) as caught:
        _install_again(component, tmp_path, build=False)
    assert (
        caught.value.problem
        == f"tool v1 in {target} is damaged: tool has {len(PROGRAM) // 2} bytes instead of {len(PROGRAM)}"
    )
    assert caught.value.fix == "run `invoke up`, which reinstalls it"
    assert builds.count == 1


def test_a_marker_from_before_the_file_list_is_upgraded_without_a_rebuild(
    component: tuple[Path, Builds, list[str]], tmp_path: Path
) -> None:
    target, builds, lines = component
    (target / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
    _install_again(component, tmp_path)
    assert builds.count == 1
    assert "tool" in json.loads((target / COMPLETE_MARKER).read_text(encoding="utf-8"))["files"]
    _truncate(target / "share" / "data.txt")  # now seen, as the files are listed
    _install_again(component, tmp_path)
    assert builds.count == 2
    assert "share/data.txt has 2 bytes instead of 5" in lines[-2]


def test_a_marker_from_before_the_file_list_with_a_program_gone_is_rebuilt(
    component: tuple[Path, Builds, list[str]], tmp_path: Path
) -> None:
    target, builds, lines = component
    (target / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
    _strip_executable_bit(target / "tool")
    _install_again(component, tmp_path)
    assert builds.count == 2
    assert lines[-2] == f"tool v1 in {target} is damaged: tool is not executable; rebuilding it"


DOCKERFILE = Path(__file__).parents[2] / "docker" / "Dockerfile"
# The image's step that marks its Temporal server installed, as the Dockerfile writes it.
IMAGE_MARKER_STEP = re.search(r"&& (\S.*/\.complete\")(?:\s*\\)?\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.M)


@pytest.mark.parametrize(
    "marker_step",
    [
        IMAGE_MARKER_STEP and IMAGE_MARKER_STEP[1],
        'touch "$CACHE_DIR/components/temporal-server/v$TEMPORAL_VERSION/.complete"',
    ],
    ids=["image", "older-image"],
)
def test_the_images_temporal_server_is_found_by_the_one_shot_commands(
    make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory, marker_step: str | None
) -> None:
    """The one-shot jobs (es-setup, schema-setup) locate the server tools in the image's cache, laid out as the
    Dockerfile lays it out: the build's temporal-server/ directory copied in, then marked by the RUN step."""
    assert marker_step is not None, f"no step writing the .complete marker found in {DOCKERFILE}"
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("image") / "cache"))  # outside the project
    root = settings.cache_dir / "components" / "temporal-server" / f"v{settings.temporal_version}"
    (root / "schema" / "elasticsearch").mkdir(parents=True)
    (root / "schema" / "elasticsearch" / "index.json").write_text("{}\n", encoding="utf-8")
    for program in ("server", "sql", "elasticsearch"):
        (root / program).write_bytes(PROGRAM)
        (root / program).chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "CACHE_DIR": str(settings.cache_dir),
        "TEMPORAL_VERSION": settings.temporal_version,
    }
    subprocess.run(["sh", "-c", marker_step], env=env, check=True)
    assert installed_temporal_server(settings).sql_tool == root / "sql"
    (root / "sql").unlink()  # the programs are still checked
    with pytest.raises(DeployError, match="sql is missing"):
        installed_temporal_server(settings)


def test_directories_an_earlier_version_left_in_the_cache_are_replaced(tmp_path: Path) -> None:
    """A half-built `.partial` and an unmarked component directory of an earlier version are the Installer's."""
    target = tmp_path / "cache" / "components" / "tool" / "v1"
    (target.with_name("v1.partial") / "half").mkdir(parents=True)
    target.mkdir()
    (target / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")  # its program is gone
    builds = Builds()
    Installer(lambda _line: None, project_root=tmp_path).once(target, "tool v1", builds, ("tool",))
    assert builds.count == 1
    assert not target.with_name("v1.partial").exists()
    assert (target / "tool").read_bytes() == PROGRAM


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Real tmpfs mounts with the given options (e.g. `size=1m`, `ro,size=2g`), unmounted afterwards."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(options: str, point: Path | None = None) -> Path:
        point = point or tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def _fill(directory: Path) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={directory / 'filler'}", "bs=64k"], capture_output=True, check=False)
    assert shutil.disk_usage(directory).free == 0


def test_a_build_into_a_full_cache_names_the_path(tmpfs: Callable[..., Path]) -> None:
    cache = tmpfs("size=1m")
    target = cache / "components" / "tool" / "v1"

    def big(staging: Path) -> None:
        (staging / "tool").write_bytes(b"\0" * (2 << 20))

    with pytest.raises(DeployError) as caught:
        Installer(lambda _line: None, project_root=cache).once(target, "tool v1", big, ("tool",))
    assert caught.value.problem == f"cannot write {target.with_name('v1.partial')}: the filesystem is full"
    assert caught.value.fix == "free space there, or set CACHE_DIR to another directory"
    assert not target.with_name("v1.partial").exists()  # the space the failed build took is free again


def test_a_read_only_stack_dir_is_named(tmpfs: Callable[..., Path]) -> None:
    stack = tmpfs("ro,size=2g")
    with pytest.raises(DeployError) as caught:
        probe_writable(stack, "STACK_DIR")
    assert caught.value.problem == f"cannot write {stack}: the filesystem is read-only"
    assert caught.value.fix == "make it writable, or set STACK_DIR to another directory"


def test_a_full_stack_dir_is_named(tmpfs: Callable[..., Path]) -> None:
    stack = tmpfs("size=1m")
    _fill(stack)
    with pytest.raises(DeployError) as caught:
        probe_writable(stack, "STACK_DIR")
    assert caught.value.problem == f"cannot write {stack}: the filesystem is full"
    with pytest.raises(DeployError) as caught, state_writes("STACK_DIR", stack / "config"):
        write_private(stack / "config" / "secrets.env", "A='b'\n" * 10_000)
    assert caught.value.problem == f"cannot write {stack / 'config'}: the filesystem is full"  # write(2) names none


def test_up_with_a_read_only_data_directory_starts_and_installs_nothing(
    project: Path, tmp_path: Path, tmpfs: Callable[..., Path]
) -> None:
    stack = make_owned_dir(tmp_path / "stack", project_root=project)  # as an earlier `up` made it
    tmpfs("ro,size=2g", stack / "data")  # room enough for the disk-space check: only the write is refused
    result = run_task(project, "up", STACK_DIR=str(stack), CACHE_DIR=str(tmp_path / "cache"))
    assert_clear_error(
        result, f"cannot write {stack / 'data'}: the filesystem is read-only", "set STACK_DIR to another"
    )
    assert not (tmp_path / "cache").exists()
    assert not (stack / "config").exists()


def test_a_file_where_a_state_directory_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("not a directory\n", encoding="utf-8")
    with pytest.raises(DeployError) as caught:
        probe_writable(tmp_path / "config", "STACK_DIR")
    assert caught.value.problem == f"cannot write {tmp_path / 'config'}: a file stands where a directory must be"
    assert caught.value.fix == "move that file away, or set STACK_DIR to another directory"


# --- generated secrets ---------------------------------------------------------------------------------------


@pytest.fixture
def local(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """The default local DSQL profile, its stack in tmp_path/stack."""
    return make_settings(STACK_DIR=str(tmp_path / "stack"))


def _layout(settings: Settings) -> Layout:
    return Layout(settings.stack_dir, settings.search_engine)


DAMAGED_CREDENTIALS = [b"", b'{"access_key_id": "LOCALABC', b"not json\n", b"\xff\xfe\x00", b"[]",
                       b'{"access_key_id": "", "secret_access_key": "s"}',
                       b'{"access_key_id": "LOCALABC"}']  # fmt: skip


@pytest.mark.parametrize("content", DAMAGED_CREDENTIALS)
def test_damaged_dsql_local_credentials_are_made_anew(local: Settings, content: bytes) -> None:
    kept = dsql_local_dir(local) / "credentials.json"
    write_private(kept, "")
    kept.write_bytes(content)
    loaded = with_local_secrets(local, create=False)  # what `down` and `status` read: no crash, no credentials
    assert loaded.dsql_local_access_key_id is None
    lines: list[str] = []
    repair_local_secrets(loaded, running=False, report=lines.append)
    assert lines == [f"{kept} was damaged (not the JSON `invoke up` wrote); making it anew (nothing reads it "
                     "before the stack starts)"]  # fmt: skip
    made = with_local_secrets(loaded, create=True)
    assert made.dsql_local_access_key_id is not None
    assert made.dsql_local_access_key_id.startswith("LOCAL")
    assert json.loads(kept.read_text(encoding="utf-8"))["access_key_id"] == made.dsql_local_access_key_id


@examples(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_kept_credentials_file_is_either_used_or_made_anew(local: Settings, content: bytes) -> None:
    kept = dsql_local_dir(local) / "credentials.json"
    write_private(kept, "")
    kept.write_bytes(content)
    loaded = with_local_secrets(local, create=False)
    lines: list[str] = []
    repair_local_secrets(loaded, running=False, report=lines.append)
    assert kept.exists() == (loaded.dsql_local_access_key_id is not None)
    assert bool(lines) == (not kept.exists())
    assert with_local_secrets(loaded, create=True).dsql_local_access_key_id


def test_a_client_is_told_the_credentials_are_damaged(local: Settings) -> None:
    kept = dsql_local_dir(local) / "credentials.json"
    write_private(kept, '{"access_key_id": ')
    settings = with_local_secrets(local, create=False)
    with pytest.raises(DeployError) as caught:
        dsql.require_local_credentials(settings, persistence_endpoint(settings))
    assert caught.value.problem == f"the local DSQL credentials file {kept} is damaged"
    assert caught.value.fix == "run `invoke down`, then `invoke up`, which makes new ones"


def test_damaged_secrets_under_a_stack_that_may_run_are_not_replaced(local: Settings) -> None:
    kept = dsql_local_dir(local) / "credentials.json"
    write_private(kept, "")
    with pytest.raises(DeployError) as caught:
        repair_local_secrets(local, running=True, report=lambda _line: None)
    assert caught.value.problem.startswith(f"{kept} is damaged")
    assert "may still be running" in caught.value.problem
    assert caught.value.fix == "run `invoke down`, then `invoke up`, which makes it anew"
    assert kept.exists()


@pytest.mark.parametrize("content", ["", "\n", "  \n", "\udcff"], ids=["empty", "newline", "blank", "not-text"])
def test_a_damaged_password_without_a_database_is_made_anew(local: Settings, content: str) -> None:
    password_file = _layout(local).sql_password
    write_private(password_file, "")
    password_file.write_bytes(content.encode("utf-8", "surrogateescape"))
    loaded = with_local_secrets(local, create=False)
    assert loaded.temporal_sql_password is None
    lines: list[str] = []
    repair_local_secrets(loaded, running=False, report=lines.append)
    assert lines == [f"{password_file} was damaged (empty or not text); making it anew (nothing reads it before "
                     "the stack starts)"]  # fmt: skip
    made = with_local_secrets(loaded, create=True).temporal_sql_password
    assert made is not None
    assert len(made.get_secret_value()) == 32


def test_a_damaged_password_of_an_existing_database_is_named_with_the_fix(local: Settings) -> None:
    password_file = _layout(local).sql_password
    write_private(password_file, "\n")
    cluster = _layout(local).data / "postgresql"
    cluster.mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("15\n", encoding="utf-8")
    with pytest.raises(DeployError) as caught:
        repair_local_secrets(with_local_secrets(local, create=False), running=False, report=lambda _line: None)
    assert caught.value.problem == (f"the local PostgreSQL password file {password_file} is damaged (empty or not "
                                    f"text); the local PostgreSQL in {cluster} was set up with it, so it cannot be "
                                    "made anew")  # fmt: skip
    assert "restore that file, set TEMPORAL_SQL_PASSWORD" in (caught.value.fix or "")
    assert "invoke down --volumes" in (caught.value.fix or "")
    assert password_file.read_text(encoding="utf-8") == "\n"  # kept: it may be restored over


CLUSTER_PASSWORD = "kept-password-0123456789abcdefgh"  # as long as a generated one


@pytest.fixture(scope="module")
def authid_catalog() -> Iterator[Path]:
    """pg_authid's file of a real cluster whose superuser has CLUSTER_PASSWORD (initdb takes ~2 s: made once)."""
    initdb = Path("/usr/lib/postgresql/15/bin/initdb")
    require(initdb.exists(), "PostgreSQL 15 is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        root.chmod(0o755)  # initdb runs as `postgres` when we are root
        (root / "pw").write_text(CLUSTER_PASSWORD + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            for path in (root, root / "pw"):
                shutil.chown(path, "postgres", "postgres")
        argv = [str(initdb), "-D", str(root / "data"), "-U", "temporal", "--auth=scram-sha-256",
                f"--pwfile={root / 'pw'}", "--no-sync"]  # fmt: skip
        subprocess.run(as_postgres_user(argv), check=True, capture_output=True)
        yield root / "data" / PG_AUTHID_FILE


def _with_cluster(settings: Settings, catalog: Path) -> Path:
    """The parts of a real cluster the password check reads, in the stack's data directory."""
    cluster = _layout(settings).data / "postgresql"
    (cluster / "global").mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("15\n", encoding="utf-8")
    shutil.copyfile(catalog, cluster / PG_AUTHID_FILE)
    return cluster


def test_the_password_the_cluster_was_made_with_passes(local: Settings, authid_catalog: Path) -> None:
    _with_cluster(local, authid_catalog)
    write_private(_layout(local).sql_password, CLUSTER_PASSWORD + "\n")
    lines: list[str] = []
    check_local_state(_layout(local), with_local_secrets(local, create=False), lines.append)
    assert lines == []


def test_a_truncated_password_of_an_existing_database_is_named(local: Settings, authid_catalog: Path) -> None:
    cluster = _with_cluster(local, authid_catalog)
    password_file = _layout(local).sql_password
    write_private(password_file, CLUSTER_PASSWORD[:12])
    with pytest.raises(DeployError) as caught:
        check_local_state(_layout(local), with_local_secrets(local, create=False), lambda _line: None)
    assert caught.value.problem == (f"the password in {password_file} is not the one the local PostgreSQL in "
                                    f"{cluster} was set up with (the file was changed or truncated)")  # fmt: skip
    assert caught.value.fix is not None
    assert caught.value.fix.startswith("restore that file, set TEMPORAL_SQL_PASSWORD to the password, or delete")
    assert CLUSTER_PASSWORD[:12] not in str(caught.value)


def test_a_wrong_temporal_sql_password_for_an_existing_database_is_named(
    make_settings: MakeSettings, tmp_path: Path, authid_catalog: Path
) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_SQL_PASSWORD="not-the-one-it-was-made-with")
    cluster = _with_cluster(settings, authid_catalog)
    with pytest.raises(DeployError) as caught:
        check_local_state(_layout(settings), settings, lambda _line: None)
    assert (
        caught.value.problem
        == f"TEMPORAL_SQL_PASSWORD is not the password the local PostgreSQL in {cluster} was set up with"
    )
    assert "not-the-one" not in str(caught.value)
    right = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_SQL_PASSWORD=CLUSTER_PASSWORD)
    check_local_state(_layout(right), right, lambda _line: None)


def _make_ca(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    """A CA as dsql-local makes it: a P-256 EC key (PEM `EC PRIVATE KEY`) and its self-signed certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    key, certificate = directory / f"{name}-key.pem", directory / f"{name}.pem"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", "/CN=dsql-local CA", "-days", "1",
                    "-out", str(certificate)], check=True, capture_output=True)  # fmt: skip
    return certificate, key


def test_a_usable_ca_is_kept(local: Settings) -> None:
    certificate, key = _make_ca(dsql_local_dir(local))
    before = certificate.read_bytes(), key.read_bytes()
    lines: list[str] = []
    repair_local_secrets(local, running=False, report=lines.append)
    assert lines == []
    assert (certificate.read_bytes(), key.read_bytes()) == before


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("not-pem", "the CA's certificate or key is not PEM"),
        ("empty-key", "the CA's certificate or key is not PEM"),
        ("key-of-another-ca", "the CA's key does not belong to its certificate"),
        ("encrypted-key", "the CA's key is encrypted (dsql-local reads it without a passphrase)"),  # not prompted for
    ],
)
def test_a_damaged_ca_is_removed_for_dsql_local_to_make_anew(
    local: Settings, tmp_path: Path, damage: str, said: str
) -> None:
    certificate, key = _make_ca(dsql_local_dir(local))
    if damage == "not-pem":
        certificate.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n", encoding="utf-8")
    elif damage == "empty-key":
        key.write_bytes(b"")
    elif damage == "encrypted-key":
        subprocess.run(["openssl", "ec", "-in", str(key), "-aes256", "-passout", "pass:kept", "-out", str(key)],
                       check=True, capture_output=True)  # fmt: skip
    else:
        key.write_bytes(_make_ca(tmp_path / "other")[1].read_bytes())
    lines: list[str] = []
    repair_local_secrets(local, running=False, report=lines.append)
    assert not certificate.exists()
    assert not key.exists()
    assert lines == [f"{path} was damaged ({said}); making it anew (nothing reads it before the stack starts)"
                     for path in (certificate, key)]  # fmt: skip


@pytest.mark.parametrize("name", ["postgresql.password", "credentials.json"])
def test_a_kept_secret_that_cannot_be_read_is_named(local: Settings, name: str) -> None:
    """A directory where a generated secret file belongs: every task reads it, so a traceback would be in all."""
    kept = _layout(local).sql_password if name == "postgresql.password" else dsql_local_dir(local) / name
    kept.mkdir(parents=True)
    with pytest.raises(DeployError) as caught:
        with_local_secrets(local, create=False)
    assert caught.value.problem == f"the generated secret file {kept} cannot be read (Is a directory)"
    assert f"make {kept} a file the user running invoke can read" in caught.value.fix


def test_a_task_with_an_unreadable_password_file_names_it(project: Path, tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    (stack / "data" / "postgresql.password").mkdir(parents=True)
    result = run_task(project, "status", STACK_DIR=str(stack))
    assert_clear_error(result, f"{stack / 'data' / 'postgresql.password'} cannot be read", "TEMPORAL_SQL_PASSWORD")


# --- the PostgreSQL data directory ------------------------------------------------------------------------------


def _data_dir(settings: Settings) -> Path:
    return _layout(settings).data / "postgresql"


@pytest.mark.parametrize("left", [("global/pg_control", "base"), ("base",), ("pg_wal",), ("global/pg_control",)])
def test_a_cluster_that_lost_pg_version_is_named_not_wiped(local: Settings, left: tuple[str, ...]) -> None:
    data = _data_dir(local)
    for name in ("global", "base/1"):
        (data / name).mkdir(parents=True)
    (data / "base" / "1" / "16384").write_bytes(b"rows")
    (data / "global" / "pg_control").write_bytes(b"\0" * 16)
    (data / "pg_wal").mkdir()
    for name in {"global/pg_control", "base", "pg_wal"} - set(left):
        (data / name).unlink() if name == "global/pg_control" else shutil.rmtree(data / name)
    before = sorted(str(path.relative_to(data)) for path in data.rglob("*"))
    for attempt in (
        lambda: check_data_dir(data, local.postgres_version),
        lambda: init_data_dir(
            data, Path("/nonexistent"), local, project_root=Path.cwd(), owner=_layout(local).all_data
        ),
    ):
        with pytest.raises(DeployError) as caught:
            attempt()
        assert caught.value.problem.startswith(f"the local PostgreSQL data directory {data} is damaged: PG_VERSION")
        assert "invoke down --volumes" in caught.value.fix
    assert sorted(str(path.relative_to(data)) for path in data.rglob("*")) == before  # nothing deleted


def test_a_data_directory_holding_files_but_no_cluster_is_named_not_wiped(local: Settings) -> None:
    data = _data_dir(local)
    data.mkdir(parents=True)
    (data / "postgresql.conf").write_text("port = 5432\n", encoding="utf-8")
    with pytest.raises(DeployError, match=r"is damaged: PG_VERSION missing, but it holds postgresql\.conf"):
        check_data_dir(data, local.postgres_version)
    assert (data / "postgresql.conf").exists()


def test_an_unfinished_data_directory_is_made_anew(local: Settings) -> None:
    """What `init_data_dir` made before initdb wrote a file (directories only) is removed and initdb runs again."""
    all_data = make_owned_dir(_layout(local).all_data, project_root=Path.cwd())  # as `up` marks it first
    data = _data_dir(local)
    (data / "pg_commit_ts").mkdir(parents=True)
    check_data_dir(data, local.postgres_version)
    settings = local.model_copy(update={"temporal_sql_password": SecretStr("pw")})
    with pytest.raises(DeployError, match="initdb of"):  # no initdb in this bin directory: it fails after the removal
        init_data_dir(data, all_data / "no-bin", settings, project_root=Path.cwd(), owner=all_data)
    assert not data.exists()  # and what the failed run made is removed again


# --- the shard count --------------------------------------------------------------------------------------------


def test_a_shard_count_other_than_the_data_was_made_with_is_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_NUM_HISTORY_SHARDS="8")
    layout = _layout(settings)
    layout.data.mkdir(parents=True)
    (layout.data / SHARDS_RECORD).write_text("4\n", encoding="utf-8")
    with pytest.raises(DeployError) as caught:
        check_local_state(layout, settings, lambda _line: None)
    assert caught.value.problem == (f"TEMPORAL_NUM_HISTORY_SHARDS=8 but the data in {layout.data} was created with 4 "
                                    "shards; Temporal fixes the shard count when the schema is first used")  # fmt: skip
    assert caught.value.fix == "set it back to 4, or start over with `invoke down --volumes` (its workflows are lost)"


def test_the_shard_count_is_recorded_once_and_kept(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_NUM_HISTORY_SHARDS="4")
    layout = _layout(settings)
    layout.data.mkdir(parents=True)
    check_local_state(layout, settings, lambda _line: None)  # no record yet: nothing to compare with
    lines: list[str] = []
    record_history_shards(layout, settings, lines.append)
    assert (layout.data / SHARDS_RECORD).read_text(encoding="utf-8") == "4\n"
    assert lines == [f"the data in {layout.data} is now recorded as made with TEMPORAL_NUM_HISTORY_SHARDS=4 "
                     "(changing it later needs `invoke down --volumes`)"]  # fmt: skip
    changed = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_NUM_HISTORY_SHARDS="16")
    record_history_shards(layout, changed, lines.append)  # an existing record is never overwritten
    assert (layout.data / SHARDS_RECORD).read_text(encoding="utf-8") == "4\n"
    with pytest.raises(DeployError):
        check_local_state(layout, changed, lambda _line: None)


def test_up_with_another_shard_count_starts_and_installs_nothing(project: Path, tmp_path: Path) -> None:
    stack = make_owned_dir(tmp_path / "stack", project_root=project)  # as an earlier `up` made it
    data = make_owned_dir(stack / "data", project_root=project) / "elasticsearch"
    data.mkdir()
    (data / SHARDS_RECORD).write_text("4\n", encoding="utf-8")
    result = run_task(project, "up", STACK_DIR=str(stack), CACHE_DIR=str(tmp_path / "cache"),
                      TEMPORAL_NUM_HISTORY_SHARDS="8")  # fmt: skip
    assert_clear_error(result, "TEMPORAL_NUM_HISTORY_SHARDS=8", "created with 4 shards", "set it back to 4")
    assert not (tmp_path / "cache").exists()
    assert sorted(p.name for p in stack.iterdir()) == sorted([MARKER, "data"])


# --- programs the stack executes ----------------------------------------------------------------------------------


def test_a_program_that_cannot_be_executed_is_named(tmp_path: Path) -> None:
    paths = fake_paths(tmp_path)
    programs = [paths.temporal_server, paths.temporal_es_tool, paths.ui_server, paths.process_compose,
                paths.grpc_health_probe, paths.postgres_bin / "postgres", paths.postgres_bin / "initdb",
                paths.temporal_cli, paths.dsql_local, paths.victoria_metrics, paths.postgres_exporter,
                paths.search_engine_exporter]  # fmt: skip
    for program in programs:
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_bytes(PROGRAM)
        program.chmod(0o755)
    check_programs(paths)
    paths.grpc_health_probe.chmod(0o644)
    with pytest.raises(DeployError) as caught:
        check_programs(paths)
    assert caught.value.problem == f"{paths.grpc_health_probe} is not executable"
    assert f"chmod +x {paths.grpc_health_probe}" in (caught.value.fix or "")
    paths.grpc_health_probe.unlink()
    with pytest.raises(DeployError) as caught:
        check_programs(paths)
    assert caught.value.problem == f"{paths.grpc_health_probe} is missing"


def test_a_cache_mounted_noexec_is_named_not_rebuilt_again_and_again(tmpfs: Callable[..., Path]) -> None:
    cache = tmpfs("noexec,size=8m")
    target = cache / "components" / "tool" / "v1"
    builds = Builds()
    for _ in range(2):
        Installer(lambda _line: None, project_root=cache).once(target, "tool v1", builds, ("tool",))
    assert builds.count == 1
    with pytest.raises(DeployError) as caught:
        check_programs(dataclasses.replace(fake_paths(cache), temporal_server=target / "tool"))
    assert caught.value.problem == f"{target / 'tool'} is not executable"
    assert "mounted noexec, set CACHE_DIR to a directory on one that is not" in (caught.value.fix or "")


def test_starting_on_damaged_credentials_outside_the_local_up_names_them(local: Settings) -> None:
    """The Docker runtime makes its secrets without the local preflight: it is told what to do."""
    kept = dsql_local_dir(local) / "credentials.json"
    write_private(kept, "{")
    with pytest.raises(DeployError) as caught:
        with_local_secrets(local, create=True)
    assert caught.value.problem == f"the local DSQL credentials file {kept} is damaged (not the JSON `invoke up` wrote)"
    assert f"delete {kept}" in (caught.value.fix or "")
