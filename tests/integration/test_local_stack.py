"""The embedded local stack, for real: PostgreSQL, the search engine, four Temporal services, the UI."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from temporal_dsql_deploy.load.stand_in import admin_client, counts
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.smoke import run_smoke
from temporal_dsql_deploy.temporal.visibility import TEMPLATE_NAME, search_client, setup_visibility
from tests.conftest import PROJECT_ROOT
from tests.integration.stack_checks import (
    search_attribute_query,
    smoke_runs_end_to_end,
    timer_signal_child,
    ui_lists_a_finished_workflow,
)

pytestmark = pytest.mark.integration


def test_every_service_is_healthy(local_stack: LocalStack, paths: Paths) -> None:
    states = local_stack.states(paths.process_compose)
    assert [s.name for s in states if not s.ok] == []
    assert {s.name for s in states} >= {"postgresql", "elasticsearch", "temporal-frontend", "temporal-ui"}


def test_smoke(local_stack: LocalStack, settings: Settings) -> None:
    smoke_runs_end_to_end(settings)


def test_visibility_setup_is_idempotent_and_verified(local_stack: LocalStack, settings: Settings, paths: Paths) -> None:
    report = setup_visibility(settings, paths.temporal_es_tool)
    assert not report.created
    assert report.fields_verified >= 20  # Temporal's template maps every system search attribute


def test_fields_a_newer_template_maps_are_added_to_an_existing_index(
    local_stack: LocalStack, settings: Settings, paths: Paths
) -> None:
    """An index made under an older template (as 1.31's adds two fields to 1.30's) gains the fields it lacks."""
    older = "tdd-visibility-before-an-upgrade"  # outside the template's pattern: it gets only the mappings given
    with search_client(settings) as client:
        template = client.get(f"/_template/{TEMPLATE_NAME}").raise_for_status().json()[TEMPLATE_NAME]["mappings"]
        lacking = tuple(sorted(template["properties"])[:2])
        properties = {name: spec for name, spec in template["properties"].items() if name not in lacking}
        client.put(f"/{older}", json={"mappings": {**template, "properties": properties}}).raise_for_status()
        try:
            report = setup_visibility(settings.model_copy(update={"temporal_elasticsearch_index": older}),
                                      paths.temporal_es_tool)  # fmt: skip
            assert report.fields_added == lacking
            assert not report.created
            assert report.fields_verified == len(template["properties"])
        finally:
            client.delete(f"/{older}")


def test_timer_signal_and_child_workflow(local_stack: LocalStack, settings: Settings) -> None:
    assert asyncio.run(timer_signal_child(settings)) == 42


def test_custom_search_attribute_query(local_stack: LocalStack, settings: Settings, paths: Paths) -> None:
    found = asyncio.run(search_attribute_query(settings, paths.temporal_cli))
    assert len(found) == 1
    assert found[0].startswith("tagged-")


def test_restarting_one_service_keeps_the_stack_serving(
    local_stack: LocalStack, settings: Settings, paths: Paths
) -> None:
    def matching_pid() -> int:
        return next(s.pid for s in local_stack.states(paths.process_compose) if s.name == "temporal-matching")

    before = matching_pid()
    socket_path = str(local_stack.layout.socket)
    restarted = subprocess.run(
        [str(paths.process_compose), "process", "restart", "temporal-matching", "-U", "-u", socket_path],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    deadline = time.monotonic() + 60
    while matching_pid() in (before, 0) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert matching_pid() != before, "temporal-matching was not restarted"
    states = local_stack.wait_healthy(paths.process_compose, lambda _m: None, timeout_s=180)
    assert all(s.ok for s in states)
    assert run_smoke(settings, PROJECT_ROOT).result.startswith("Hello, ")


def test_ui_shows_the_finished_workflow_in_chromium(
    local_stack: LocalStack, settings: Settings, chromium: str, tmp_path: Path
) -> None:
    ui_lists_a_finished_workflow(settings, chromium, tmp_path)


def test_dynamic_config_has_only_known_keys(paths: Paths) -> None:
    config = Path(__file__).resolve().parents[2] / "src" / "temporal_dsql_deploy" / "templates" / "dynamicconfig.yaml"
    checked = subprocess.run([str(paths.temporal_server), "validate-dynamic-config", str(config)],
                             capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "unregistered" not in checked.stdout + checked.stderr


def _invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=False, timeout=300)  # fmt: skip


def test_check_dsql_against_the_stacks_database(local_stack: LocalStack) -> None:
    result = _invoke("check-dsql")
    assert result.returncode == 0, result.stderr
    assert "SELECT 1 round trip over 5 samples" in result.stdout
    assert "schema version 1.19" in result.stdout


@pytest.mark.dsql_profile
def test_each_transaction_sends_its_begin_with_its_first_statement(local_stack: LocalStack, settings: Settings) -> None:
    """A round trip to DSQL costs milliseconds: the plugin sends no BEGIN on its own, so while a workflow runs the
    stand-in counts no round trip that a BEGIN ends, and the transactions still commit."""
    with admin_client(settings) as admin:
        before = counts(admin)
        run_smoke(settings, PROJECT_ROOT)
        during = counts(admin) - before
    assert during.by_kind.get("commit", 0) > 0, during
    assert during.by_kind.get("begin", 0) == 0, during


def test_schema_validate_reports_no_drift(local_stack: LocalStack) -> None:
    result = _invoke("schema.validate")
    assert result.returncode == 0, result.stderr
    assert "applied version 1.19" in result.stdout
    assert "schema is current" in result.stdout


def test_restart_brings_the_temporal_services_back_healthy(local_stack: LocalStack, settings: Settings) -> None:
    """The guide's fix for stale connection state, as one task: restart the Temporal services, in order."""
    restarted = _invoke("restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted temporal-history, temporal-matching, temporal-frontend, temporal-worker" in restarted.stdout
    assert run_smoke(settings, PROJECT_ROOT).result.startswith("Hello, ")
    unknown = _invoke("restart", "--service", "no-such-service")
    assert unknown.returncode != 0
    assert "no service no-such-service" in unknown.stderr


@pytest.mark.profile_independent
def test_an_interrupted_up_is_finished_by_the_next_with_data_kept(local_stack: LocalStack, settings: Settings,
                                                                   paths: Paths) -> None:  # fmt: skip
    """Ctrl-C `invoke up` from stopped once its first service is healthy: it says so; the next `up` finds the
    half-started stack, restarts it with its data, and the workflow of before is still there."""
    before = run_smoke(settings, PROJECT_ROOT).workflow_id
    local_stack.down(paths.process_compose, volumes=False)
    starting = subprocess.Popen([sys.executable, "-m", "invoke", "up"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    # Interrupted once the first service reports healthy: the supervisor runs, the rest are still starting.
    # (A fixed sleep raced a fast start: `up` had finished before the signal.)
    lines: list[str] = []
    first_up = threading.Event()

    def read_progress() -> None:
        assert starting.stdout is not None
        for line in starting.stdout:
            lines.append(line)
            if line.rstrip().endswith((": healthy", ": completed")):
                first_up.set()

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    assert first_up.wait(timeout=300), "no service reported healthy within 300 s of `invoke up`:\n" + "".join(lines)
    starting.send_signal(signal.SIGINT)
    starting.wait(timeout=120)
    reader.join(timeout=30)
    assert starting.stderr is not None
    err = starting.stderr.read()
    assert starting.returncode == 130, "".join(lines) + err
    assert "error: up was interrupted" in err
    assert "Traceback" not in err
    again = _invoke("up")
    assert again.returncode == 0, again.stderr
    assert all(state.ok for state in local_stack.states(paths.process_compose))

    async def status() -> str:
        client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
        return str((await client.get_workflow_handle(before).describe()).status.name)  # type: ignore[union-attr]

    assert asyncio.run(status()) == "COMPLETED"
