"""A stack of its own on the oldest supported release (the DSQL profile), for the upgrade under load: the local
runtime (`nox -s upgrade`) or containers on a real Docker engine (`nox -s upgrade_containers`)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from temporal_dsql_deploy.runtime.components import installed_process_compose
from temporal_dsql_deploy.runtime.docker_engine import engine_answers
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, compose_file
from temporal_dsql_deploy.runtime.interface import StackRuntime
from temporal_dsql_deploy.runtime.local_runtime import LocalRuntime
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import Settings, load_settings
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.settings.releases import RELEASES
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import keep_logs, require

pytestmark = pytest.mark.upgrade
RESULTS: list[str] = []  # the upgrade test's report, printed at the end of the run


@dataclass(frozen=True)
class UpgradedStack:
    runtime: str  # as `invoke upgrade --runtime` takes it
    settings: Settings

    @property
    def layout(self) -> Layout:
        return Layout(self.settings.stack_dir, self.settings.search_engine)


def _settings() -> Settings:
    settings = load_settings(PROJECT_ROOT)
    assert settings.temporal_version == RELEASES[0].version, "run through nox, which sets TEMPORAL_VERSION"
    assert settings.is_dsql, "the upgrade is proven on the DSQL profile"
    return settings


def _build_later_releases(runtime: StackRuntime) -> None:
    """Each later release built before any workflow starts (what `upgrade` does first, cached after): the timed part
    of the upgrade is the move itself, the same on a cold machine as on a warm one; each build's time reported."""
    for later in RELEASES[1:]:
        started = time.monotonic()
        runtime.prepare_release(runtime.settings.model_copy(update={"temporal_version": later.version}), print)
        RESULTS.append(f"{runtime.kind.value}: Temporal {later.version} built in {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="module", params=["local", "docker"])
def oldest_stack(request: pytest.FixtureRequest) -> Iterator[UpgradedStack]:
    """The stack as `invoke up` starts it with TEMPORAL_VERSION at the oldest release (nox sets it, with a STACK_DIR
    of its own, emptied first); stopped afterwards (the containers' volumes deleted), logs kept if a test failed."""
    if request.param == "local":
        stack = LocalStack(_settings(), PROJECT_ROOT)
        try:
            stack.up(print)
            _build_later_releases(LocalRuntime(stack.settings, PROJECT_ROOT))
            yield UpgradedStack("local", stack.settings)
        finally:
            if request.session.testsfailed:
                keep_logs(stack)
            stack.down(installed_process_compose(stack.settings), volumes=False)
        return
    can_run = engine_answers() or (os.geteuid() == 0 and shutil.which("apt-get") is not None)
    require(can_run, "no Docker engine answers and this is not root on Debian (where the project runs its own)")
    runtime = DockerRuntime(_settings(), PROJECT_ROOT)
    try:
        runtime.up(print)
        _build_later_releases(runtime)
        yield UpgradedStack("docker", runtime.settings)
    finally:
        for line in runtime.down(volumes=True):
            print(line)
        compose_file(PROJECT_ROOT).unlink(missing_ok=True)  # it described this stack, now gone


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("Temporal upgraded under load")
        for line in RESULTS:
            terminalreporter.write_line(line)
