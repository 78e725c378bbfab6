"""The real local stack for integration tests: started once per session (or reused), stopped if we started it."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from temporal_dsql_deploy.database.endpoint import DSQL_LOCAL_BACKEND_ROLE, local_ca_file
from temporal_dsql_deploy.database.local_postgres import ensure_backend_role
from temporal_dsql_deploy.runtime.components import installed_paths, installed_process_compose
from temporal_dsql_deploy.runtime.installer import Installer, Paths, apt_install, can_install_packages
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.units.dsql_local import install_dsql_local
from temporal_dsql_deploy.settings.config import Settings, load_settings
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration
ISOLATED_DATABASE = "dsql_tests"  # the isolated stand-in's backend database
PEER_REGION = "us-west-2"  # the isolated stand-in's second Region (its first is the local default, us-east-1)


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is genuinely absent; in CI a missing prerequisite is a failure."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def local_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The stack under test; whatever the user had running before is as they left it afterwards. When a test failed,
    the services' logs are kept where the next profile's stack cannot overwrite them."""
    configured = load_settings(PROJECT_ROOT)
    stack = LocalStack(configured, PROJECT_ROOT)
    process_compose = installed_process_compose(configured)
    was_running = process_compose is not None and stack.running(process_compose)
    users_engine = stack.running_engine() if was_running else None
    try:  # a start that fails half-way leaves services up for `invoke logs`; the suite must not leave them
        stack.up(print)
        yield stack
    finally:
        if request.session.testsfailed:
            keep_logs(stack)
        process_compose = installed_process_compose(configured)
        if not was_running:
            stack.down(process_compose, volumes=False)
        elif users_engine and users_engine != configured.search_engine:  # put the user's own stack back
            stack.down(process_compose, volumes=False)
            LocalStack(configured.model_copy(update={"search_engine": users_engine}), PROJECT_ROOT).up(print)


def keep_logs(stack: LocalStack) -> None:
    kept = PROJECT_ROOT / ".nox" / "stack-logs" / f"{stack.settings.search_engine}-{stack.settings.temporal_sql_plugin}"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(stack.layout.logs, kept, dirs_exist_ok=True)
    print(f"\nthe services' logs of this failed run are kept in {kept}")


@pytest.fixture(scope="session")
def settings(local_stack: LocalStack) -> Settings:
    """The stack's settings, with the local database's password."""
    return local_stack.settings


@pytest.fixture(scope="session")
def paths(settings: Settings, local_stack: LocalStack) -> Paths:
    return installed_paths(settings)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed on first use where this user may install packages."""
    found = shutil.which("chromium")
    if found is None and can_install_packages():
        apt_install(("chromium",), print, recommends=True)  # the product's: it takes turns with dpkg's other users
        found = shutil.which("chromium")
    require(found is not None, "Debian's chromium is not installed and cannot be installed here")
    assert found is not None
    return found


@dataclass(frozen=True)
class StandIn:
    """A dsql-local of the tests' own, over a database of its own on the stack's PostgreSQL."""

    settings: Settings  # the local DSQL profile, pointed at this instance
    peer_settings: Settings  # the same, pointed at its second Region's endpoint (PEER_REGION, host localhost)
    admin_url: str
    admin_headers: dict[str, str]  # its admin API's control paths answer only requests with its key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def isolated_stand_in(settings: Settings) -> Iterator[StandIn]:
    """Tests that drop tables, inject faults or hammer connections do it here, never to the running stack."""
    binary = install_dsql_local(settings, Installer(print, project_root=PROJECT_ROOT)) / "dsql-local"
    port, peer, admin = _free_port(), _free_port(), _free_port()
    assert settings.dsql_local_backend_password is not None
    assert settings.dsql_local_secret_access_key is not None
    # Its backend database as the stack's own: owned by the stand-in's non-superuser role, which it runs as.
    backend_password = settings.dsql_local_backend_password.get_secret_value()
    ensure_backend_role(settings, backend_password, ISOLATED_DATABASE)
    env = {**os.environ, "DSQL_LOCAL_BACKEND_PASSWORD": backend_password,
           "AWS_ACCESS_KEY_ID": str(settings.dsql_local_access_key_id),
           "AWS_SECRET_ACCESS_KEY": settings.dsql_local_secret_access_key.get_secret_value(),
           "DSQL_LOCAL_ADMIN_KEY": (admin_key := secrets.token_urlsafe(32))}  # fmt: skip
    process = subprocess.Popen(
        [str(binary), "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--tls-dir", str(local_ca_file(settings).parent), "--backend-port", str(settings.temporal_sql_port),
         "--backend-user", DSQL_LOCAL_BACKEND_ROLE, "--backend-database", ISOLATED_DATABASE,
         # A peered cluster's second Region: its own endpoint name (its tokens are made for it) and Region.
         "--peer-listen", f"127.0.0.1:{peer}", "--peer-endpoint", "localhost", "--peer-region", PEER_REGION],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_healthy(f"http://127.0.0.1:{admin}/healthz")
        local = settings.model_copy(update={"temporal_sql_plugin": "dsql", "dsql_local_port": port})
        yield StandIn(local, local.model_copy(update={"dsql_local_port": peer, "temporal_sql_host": "localhost",
                                                      "aws_region": PEER_REGION}),
                      f"http://127.0.0.1:{admin}", {"Authorization": f"Bearer {admin_key}"})  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)


@retry(stop=stop_after_delay(30), wait=wait_fixed(0.2), retry=retry_if_exception_type(httpx.HTTPError), reraise=True)
def _wait_healthy(url: str) -> None:
    httpx.get(url, timeout=2).raise_for_status()
