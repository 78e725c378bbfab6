"""A stack of its own on the oldest supported release (the DSQL profile), for the upgrade under load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from temporal_dsql_deploy.runtime.components import installed_process_compose
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import load_settings
from temporal_dsql_deploy.settings.releases import RELEASES
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import keep_logs

pytestmark = pytest.mark.upgrade
RESULTS: list[str] = []  # the upgrade test's report, printed at the end of the run


@pytest.fixture(scope="module")
def oldest_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The stack as `invoke up` starts it with TEMPORAL_VERSION at the oldest release (nox -s upgrade sets it, with a
    STACK_DIR of its own, emptied first); stopped afterwards, its logs kept if a test failed."""
    settings = load_settings(PROJECT_ROOT)
    assert settings.temporal_version == RELEASES[0].version, "run through `nox -s upgrade`, which sets TEMPORAL_VERSION"
    assert settings.is_dsql, "the upgrade is proven on the DSQL profile"
    stack = LocalStack(settings, PROJECT_ROOT)
    try:
        stack.up(print)
        yield stack
    finally:
        if request.session.testsfailed:
            keep_logs(stack)
        stack.down(installed_process_compose(settings), volumes=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("Temporal upgraded under load")
        for line in RESULTS:
            terminalreporter.write_line(line)
