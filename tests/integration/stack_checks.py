"""Checks the integration tests run on every runtime's stack (the local one, and the containers'): each drives the
stack from this host through its published ports only."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.runtime.model import Stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.smoke import run_smoke
from tests.conftest import PROJECT_ROOT
from tests.integration.workflows import ChildWorkflow, TaggedWorkflow, TimerSignalChildWorkflow


async def timer_signal_child(settings: Settings) -> int:
    """A workflow with a timer, a signal and a child; its result (42), after checking its history has all three."""
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    queue = f"it-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[TimerSignalChildWorkflow, ChildWorkflow]):
        handle = await client.start_workflow(TimerSignalChildWorkflow.run, id=f"tsc-{uuid.uuid4()}", task_queue=queue)
        await handle.signal(TimerSignalChildWorkflow.release, 21)
        result: int = await asyncio.wait_for(handle.result(), timeout=90)
        history = [event.event_type for event in (await handle.fetch_history()).events]
        assert EventType.EVENT_TYPE_TIMER_FIRED in history
        assert EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED in history
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in history
        return result


async def search_attribute_query(settings: Settings, cli: Path) -> list[str]:
    """Create a custom search attribute with the real CLI, tag a workflow with it, and find it by a query."""
    created = subprocess.run(
        [str(cli), "operator", "search-attribute", "create", "--name", "SmokeKeyword", "--type", "Keyword",
         "--namespace", settings.temporal_namespace, "--address", settings.frontend_address],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0 or "already" in created.stderr.lower(), created.stderr
    client = await Client.connect(settings.frontend_address, namespace=settings.temporal_namespace)
    queue, tag = f"it-{uuid.uuid4()}", uuid.uuid4().hex
    key = SearchAttributeKey.for_keyword("SmokeKeyword")
    async with Worker(client, task_queue=queue, workflows=[TaggedWorkflow]):
        handle = await client.start_workflow(
            TaggedWorkflow.run, id=f"tagged-{tag}", task_queue=queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(key, tag)]),
        )  # fmt: skip
        assert await handle.result() == "tagged"
    deadline = time.monotonic() + 30
    found: list[str] = []
    while time.monotonic() < deadline and not found:
        found = [w.id async for w in client.list_workflows(f"SmokeKeyword = '{tag}' AND ExecutionStatus = 'Completed'")]
        await asyncio.sleep(0.5)
    return found


def ui_lists_a_finished_workflow(settings: Settings, chromium: str, tmp_path: Path) -> None:
    """Headless Chromium loads the UI's workflow list and finds a workflow the smoke test just ran."""
    workflow_id = run_smoke(settings, PROJECT_ROOT).workflow_id
    url = f"http://127.0.0.1:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}/workflows"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]  # fmt: skip
    dom = ""
    for _ in range(3):  # the list fills in asynchronously; give it a few renders
        dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True,
                             check=False, timeout=120).stdout  # fmt: skip
        if workflow_id in dom:
            break
    assert workflow_id in dom, f"the UI's workflow list did not show {workflow_id}"
    subprocess.run([chromium, *flags, f"--screenshot={tmp_path / 'workflows.png'}", "--window-size=1400,900", url],
                   capture_output=True, check=False, timeout=120)  # fmt: skip
    assert (tmp_path / "workflows.png").stat().st_size > 10_000


def smoke_runs_end_to_end(settings: Settings) -> None:
    """`invoke test`'s sample: it completes, and is found through visibility and the UI's API."""
    report = run_smoke(settings, PROJECT_ROOT)
    assert report.result.startswith("Hello, smoke-")
    assert [step for step, _ in report.steps] == [
        "sample workflow completed",
        "found through visibility",
        "found through the UI API",
    ]


def every_service_is_scraped(store: MetricsStore, model: Stack, expected: dict[str, str], wait_s: float) -> None:
    """Every scraped service of the model is up in the store, and each expected series is there, within `wait_s`."""
    scraped = {service.name for service, _ in model.scrape_targets()}
    deadline = time.monotonic() + wait_s  # a service that started after the store's last scrape is up at the next
    while True:
        up = {sample.labels["job"]: sample.value for sample in store.query("up")}
        down = {job for job in scraped if up.get(job) != 1}
        if not down or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert down == set(), f"not scraped, or down for {wait_s}s: {up}"
    missing = [what for what, expr in expected.items() if not eventually_present(store, expr, wait_s)]
    assert missing == [], f"no series for {missing} in the store after {wait_s}s"


def eventually_present(store: MetricsStore, expr: str, wait_s: float) -> list[float]:
    """The values of `expr` once it has any, or [] after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        values = [sample.value for sample in store.query(expr)]
        if values or time.monotonic() > deadline:
            return values
        time.sleep(3)
