"""STACK_DIR owner-only: what the stack writes and what the processes it starts write, an earlier version's
world-readable files, and PostgreSQL still reaching its data through a directory no one else may list; Compose
clients see the stand-in's CA certificate only."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.database.local_postgres import (
    POSTGRES_USER,
    as_postgres_user,
    init_data_dir,
    with_local_secrets,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.private_files import owner_only_files, restrict_tree, write_private
from temporal_dsql_deploy.runtime.model import Component
from temporal_dsql_deploy.runtime.render_compose import render_compose
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.dsql_local import CLIENT_CA_DIR, CLIENT_CA_FILE
from temporal_dsql_deploy.service_account import (
    SERVICE_USER,
    check_reachable,
    ensure_service_user,
    service_group,
    share_with_services,
)
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import require

MakeSettings = Callable[..., Settings]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SCRATCH_PORT = 25433  # a throwaway PostgreSQL, off the stack's ports and test_backend_role's


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_what_the_stack_and_its_processes_create_is_owner_only(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        with owner_only_files():
            (tmp_path / "log").write_text("x", encoding="utf-8")
            (tmp_path / "data").mkdir()
            # A process started meanwhile (the supervisor, and the services it starts) inherits it.
            subprocess.run(["sh", "-c", f"echo y > {tmp_path}/child.log && mkdir {tmp_path}/child-data"], check=True)
        assert os.umask(0o022) == 0o022  # given back afterwards
    finally:
        os.umask(before)
    assert {name: _mode(tmp_path / name) for name in ("log", "data", "child.log", "child-data")} == {
        "log": 0o600, "data": 0o700, "child.log": 0o600, "child-data": 0o700,
    }  # fmt: skip


def test_private_files_get_owner_only_directories(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        write_private(tmp_path / "new" / "deeper" / "secret", "s")
    finally:
        os.umask(before)
    assert (_mode(tmp_path / "new"), _mode(tmp_path / "new" / "deeper")) == (0o700, 0o700)
    assert _mode(tmp_path / "new" / "deeper" / "secret") == 0o600


def test_an_earlier_versions_world_readable_stack_dir_is_made_owner_only(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    (stack / "logs").mkdir(parents=True)
    (stack / "logs" / "temporal-history.log").write_text("log", encoding="utf-8")
    (stack / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the stack's", encoding="utf-8")
    (stack / "link").symlink_to(outside)
    for path, mode in ((stack, 0o755), (stack / "logs", 0o777), (stack / "logs" / "temporal-history.log", 0o644),
                       (stack / "run.sh", 0o755), (outside, 0o644)):  # fmt: skip
        path.chmod(mode)
    restrict_tree(stack)
    assert _mode(stack) == 0o700
    assert _mode(stack / "logs") == 0o700
    assert _mode(stack / "logs" / "temporal-history.log") == 0o600
    assert _mode(stack / "run.sh") == 0o700  # the owner's own bits are kept
    assert _mode(outside) == 0o644  # a link is not followed out of the stack


def test_what_another_user_owns_is_not_entered() -> None:
    require(os.geteuid() == 0, "giving a directory to another user needs root")
    with tempfile.TemporaryDirectory() as scratch:
        theirs = Path(scratch) / "postgresql"
        theirs.mkdir(mode=0o750)
        (theirs / "file").write_text("x", encoding="utf-8")
        (theirs / "file").chmod(0o640)
        for path in (theirs, theirs / "file"):
            shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
        restrict_tree(Path(scratch))
        assert (_mode(theirs), _mode(theirs / "file")) == (0o750, 0o640)
        assert _mode(Path(scratch)) == 0o700


@pytest.fixture
def scratch_project() -> Iterator[Path]:
    """A directory under /tmp that `postgres` may pass through, as a project's directory is."""
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)
        yield Path(scratch)


def test_postgresql_reaches_its_data_in_an_owner_only_stack_dir(make_settings: MakeSettings,
                                                                 scratch_project: Path) -> None:  # fmt: skip
    require((PG_BIN / "postgres").exists(), "PostgreSQL 15 is not installed")
    settings = make_settings(STACK_DIR=str(scratch_project / "stack"), TEMPORAL_SQL_PORT=str(SCRATCH_PORT))
    stack = LocalStack(settings, PROJECT_ROOT)
    layout = stack.layout
    with owner_only_files():
        stack._claim_stack_dir(lambda _message: None)
        stack._restrict_stack_dir()
        settings = with_local_secrets(settings, create=True)
        data = layout.data / "postgresql"
        assert init_data_dir(data, PG_BIN, settings, project_root=PROJECT_ROOT, owner=layout.all_data)
        layout.runtime_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(layout.runtime_dir, POSTGRES_USER)
    # Nobody else may list or enter STACK_DIR; as root, the services' group (PostgreSQL's too) may only pass through.
    expected = 0o710 if os.geteuid() == 0 else 0o700
    assert [_mode(path) for path in (layout.root, layout.all_data, layout.data, layout.config)] == [expected] * 4
    assert _mode(layout.sql_password) == 0o600
    server = subprocess.Popen(as_postgres_user([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(SCRATCH_PORT),
                                                "-k", str(layout.runtime_dir), "-c", "listen_addresses=127.0.0.1"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        ready = False
        for _ in range(100):
            check = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(SCRATCH_PORT), "-q"],
                                   check=False)  # fmt: skip
            if ready := check.returncode == 0:
                break
            time.sleep(0.2)
        assert ready, "PostgreSQL did not start in the owner-only STACK_DIR"
    finally:
        server.terminate()
        server.wait(timeout=30)
    passage = {layout.root, layout.all_data, layout.data, layout.config, layout.roles}  # roles: the roles' links
    for path in layout.root.rglob("*"):  # the rest the stack made is private to its owner
        if path not in passage and not path.is_symlink() and path.stat().st_uid == os.geteuid():
            assert _mode(path) & 0o077 == 0, path


def test_compose_clients_mount_only_the_ca_certificate(make_settings: MakeSettings) -> None:
    settings = make_settings()
    stack = build_stack(settings)
    services = yaml.safe_load(render_compose(stack, settings, "amd64"))["services"]
    clients = [service.name for service in stack if "TEMPORAL_SQL_TLS_CA_FILE" in service.environment
               and service.component is not Component.DSQL_LOCAL]  # fmt: skip
    assert clients
    for name in clients:
        volumes = services[name]["volumes"]
        assert volumes == [f"dsql-local-ca:{CLIENT_CA_DIR}:ro"], name
        assert services[name]["environment"]["TEMPORAL_SQL_TLS_CA_FILE"] == CLIENT_CA_FILE
    assert CLIENT_CA_FILE.startswith(f"{CLIENT_CA_DIR}/")
    # The volume with the CA key is the stand-in's alone; it publishes the certificate into the clients' volume.
    whole = [name for name, service in services.items() for volume in service.get("volumes", [])
             if volume.startswith("dsql-local-data:")]  # fmt: skip
    assert whole == ["dsql-local"]
    command = services["dsql-local"]["command"]
    assert f"dsql-local-ca:{command[command.index('--publish-ca') + 1]}" in services["dsql-local"]["volumes"]


def test_started_by_root_the_services_read_their_config_and_own_only_their_data(tmp_path: Path) -> None:
    """What root shares with the services' account: passages (0710), read-only config (0640/0750 by group), and
    the directories they write handed over with what root made in them; a later restriction keeps all of it."""
    require(os.geteuid() == 0, "handing files to another user needs root")
    ensure_service_user(lambda _message: None)
    gid, uid = service_group(), pwd.getpwnam(SERVICE_USER).pw_uid
    stack = tmp_path / "stack"
    (stack / "config" / "ui").mkdir(parents=True)
    (stack / "config" / "temporal.yaml").write_text("x", encoding="utf-8")
    (stack / "config" / "ui" / "local.yaml").write_text("x", encoding="utf-8")
    (stack / "config" / "secrets.env").write_text("s", encoding="utf-8")
    (stack / "data" / "dsql-local").mkdir(parents=True)
    (stack / "data" / "dsql-local" / "credentials.json").write_text("{}", encoding="utf-8")
    for path in stack.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    share_with_services([stack, stack / "config"], [stack / "config" / "temporal.yaml", stack / "config" / "ui"],
                        [stack / "data" / "dsql-local", stack / "data" / "search-engine"])  # fmt: skip
    restrict_tree(stack, gid)  # what the next `up` does first: it must not take the sharing back
    assert (_mode(stack), _mode(stack / "config")) == (0o710, 0o710)
    assert (stack / "config").stat().st_gid == gid
    assert _mode(stack / "config" / "temporal.yaml") == 0o640
    assert (_mode(stack / "config" / "ui"), _mode(stack / "config" / "ui" / "local.yaml")) == (0o750, 0o640)
    assert (stack / "config" / "ui" / "local.yaml").stat().st_gid == gid
    secret = (stack / "config" / "secrets.env").stat()
    assert (secret.st_uid, secret.st_gid, _mode(stack / "config" / "secrets.env")) == (0, 0, 0o600)  # root's alone
    for owned in (stack / "data" / "dsql-local", stack / "data" / "dsql-local" / "credentials.json",
                  stack / "data" / "search-engine"):  # fmt: skip
        assert owned.stat().st_uid == uid, owned
    assert _mode(stack / "data" / "dsql-local") == 0o700


def test_started_by_root_a_place_the_services_cannot_reach_is_refused_by_name() -> None:
    """A checkout or CACHE_DIR in root's own home (0700) would leave every service failing to start: named first."""
    require(os.geteuid() == 0, "only root's stack runs its services as another user")
    ensure_service_user(lambda _message: None)
    with tempfile.TemporaryDirectory() as private:  # 0700, root's
        reachable = Path(private) / "open"
        reachable.mkdir()
        with pytest.raises(DeployError) as raised:
            check_reachable({"CACHE_DIR": reachable})
        assert f"CACHE_DIR {reachable}" in str(raised.value)
        assert raised.value.fix is not None
        assert "unprivileged user" in raised.value.fix
        Path(private).chmod(0o755)
        check_reachable({"CACHE_DIR": reachable})  # passes once the way is open


def test_handing_over_never_reaches_outside_through_links(tmp_path: Path) -> None:
    """A directory given to the services may hold links they made: handing it over again (or an earlier version's
    tree) changes nothing outside it, neither through a symbolic link nor through a hard link."""
    require(os.geteuid() == 0, "handing files to another user needs root")
    ensure_service_user(lambda _message: None)
    uid = pwd.getpwnam(SERVICE_USER).pw_uid
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root's", encoding="utf-8")
    owned = tmp_path / "stack" / "data" / "dsql-local"
    owned.mkdir(parents=True)
    (owned / "ca.pem").write_text("x", encoding="utf-8")
    (owned / "to-dir").symlink_to(outside)
    (owned / "to-file").symlink_to(outside / "secret")
    os.link(outside / "secret", owned / "hard")
    share_with_services([], [], [owned])
    assert (owned.stat().st_uid, (owned / "ca.pem").stat().st_uid) == (uid, uid)
    assert (outside.stat().st_uid, (outside / "secret").stat().st_uid) == (0, 0)
    assert (owned / "to-dir").lstat().st_uid == uid  # the link itself, not what it names
    shutil.chown(owned / "ca.pem", 0, 0)  # once theirs, a directory is not walked again
    share_with_services([], [], [owned])
    assert (owned / "ca.pem").stat().st_uid == 0


def test_an_account_without_its_own_group_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    account = pwd.struct_passwd((SERVICE_USER, "x", 999, 100, "", "/nonexistent", "/usr/sbin/nologin"))
    monkeypatch.setattr(pwd, "getpwnam", lambda _name: account)

    def no_group(name: str) -> grp.struct_group:
        raise KeyError(name)

    monkeypatch.setattr(grp, "getgrnam", no_group)
    with pytest.raises(DeployError, match="without a group of that name"):
        ensure_service_user(lambda _message: None)
