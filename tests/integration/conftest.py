"""The real local stack for integration tests: started once per session (or reused), stopped if we started it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from temporal_dsql_deploy.components import Paths, installed_paths, installed_process_compose
from temporal_dsql_deploy.config import Settings, load_settings
from temporal_dsql_deploy.stack import LocalStack
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is genuinely absent; in CI a missing prerequisite is a failure."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The stack under test; whatever the user had running before is as they left it afterwards."""
    configured = load_settings(PROJECT_ROOT)
    stack = LocalStack(configured, PROJECT_ROOT)
    process_compose = installed_process_compose(configured)
    was_running = process_compose is not None and stack.running(process_compose)
    users_engine = stack.running_engine() if was_running else None
    stack.up(print)
    yield stack
    process_compose = installed_process_compose(configured)
    if not was_running:
        stack.down(process_compose, volumes=False)
    elif users_engine and users_engine != configured.search_engine:  # put the user's own stack back
        stack.down(process_compose, volumes=False)
        LocalStack(configured.model_copy(update={"search_engine": users_engine}), PROJECT_ROOT).up(print)


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
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True, env=env,
                       timeout=1200)  # fmt: skip
        found = shutil.which("chromium")
    require(found is not None, "Debian's chromium is not installed and cannot be installed here")
    assert found is not None
    return found
