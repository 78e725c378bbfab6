"""The workload shapes run on the pinned temporal CLI's dev server (a local process; no network): each returns what
its `expected` says, which is what the fault runs check every workflow against."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_dsql_deploy.load.driver import Load, drive
from temporal_dsql_deploy.load.shapes import ACTIVITIES, SHAPES, WORKFLOWS
from temporal_dsql_deploy.temporal.installed import temporal_cli


async def _run_all() -> dict[str, list[tuple[str | None, str]]]:
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal_cli()),
                                                     dev_server_extra_args=["--headless"]) as env:  # fmt: skip
        queue = f"shapes-{uuid.uuid4().hex[:6]}"
        seen: dict[str, list[tuple[str | None, str]]] = {}
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
            for name, shape in SHAPES.items():
                outcomes = await drive(env.client, queue, Load(shape, 3, 2, id_prefix=name), lambda _d, _t: None)
                seen[name] = [(o.result, shape.expected(o.index)) for o in outcomes]
                description = await env.client.get_workflow_handle(outcomes[0].workflow_id).describe()
                transitions = description.raw_description.workflow_execution_info.state_transition_count
                seen[f"{name} transitions"] = [(str(transitions), "")]
        return seen


@pytest.fixture(scope="module")
def ran() -> dict[str, list[tuple[str | None, str]]]:
    return asyncio.run(_run_all())


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_returns_its_expected_result(ran: dict[str, list[tuple[str | None, str]]], shape: str) -> None:
    assert [result for result, _ in ran[shape]] == [expected for _, expected in ran[shape]]


def test_the_transitions_shape_makes_about_fifteen_transitions(ran: dict[str, list[tuple[str | None, str]]]) -> None:
    hello, transitions = int(str(ran["hello transitions"][0][0])), int(str(ran["transitions transitions"][0][0]))
    assert hello < transitions
    assert 12 <= transitions <= 18, transitions
