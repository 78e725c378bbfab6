"""The fault runs' waits: each is bounded, tries again only on what can pass, and says what it waited for."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import psutil
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from tenacity import wait_fixed
from tenacity.wait import wait_base

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import faults
from temporal_dsql_deploy.load.shapes import SHAPES
from temporal_dsql_deploy.runtime.interface import StackRuntime
from temporal_dsql_deploy.runtime.model import Runtime


def _unavailable() -> RPCError:
    return RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waits' intervals a hundred times shorter, and their limits short, so a test takes a moment."""
    monkeypatch.setattr(faults, "wait_fixed", lambda seconds: cast("wait_base", wait_fixed(seconds / 100)))
    for name in ("START_RETRY_S", "RESULT_WAIT_S", "RECOVERY_WAIT_S", "VISIBILITY_WAIT_S"):
        monkeypatch.setattr(faults, name, 0.3)


class _Replies:
    """An async call that raises or returns each reply in turn, the last one for ever after; counts its calls."""

    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.calls = 0

    async def __call__(self, *_args: object, **_kwargs: object) -> object:
        self.calls += 1
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply


def _client(**calls: object) -> Client:
    return cast("Client", SimpleNamespace(**calls))


def _start(client: Client) -> bool:
    return asyncio.run(faults.start_once(lambda: client, SHAPES["hello"], "w-1", 1, "queue"))


def test_a_start_is_tried_again_until_it_is_accepted() -> None:
    start = _Replies(_unavailable(), _unavailable(), "handle")
    assert _start(_client(start_workflow=start)) is True
    assert start.calls == 3


def test_a_start_that_already_ran_counts_as_started() -> None:
    start = _Replies(WorkflowAlreadyStartedError("w-1", "Hello"))
    assert _start(_client(start_workflow=start)) is True
    assert start.calls == 1


def test_a_start_never_accepted_gives_up_after_its_limit() -> None:
    start = _Replies(_unavailable())
    assert _start(_client(start_workflow=start)) is False
    assert start.calls > 1


def test_a_start_refused_for_another_reason_is_not_tried_again() -> None:
    start = _Replies(ValueError("bad argument"))
    with pytest.raises(ValueError, match="bad argument"):
        _start(_client(start_workflow=start))
    assert start.calls == 1


def _result(*replies: object) -> tuple[str | None, int]:
    result = _Replies(*replies)
    client = _client(get_workflow_handle=lambda _workflow_id: SimpleNamespace(result=result))
    return asyncio.run(faults.result_of(lambda: client, "w-1")), result.calls


def test_a_result_is_awaited_through_unavailability() -> None:
    assert _result(_unavailable(), TimeoutError(), 42) == ("42", 3)


def test_a_failed_workflow_has_no_result_at_once() -> None:
    assert _result(WorkflowFailureError(cause=RuntimeError("boom"))) == (None, 1)


def test_a_result_that_never_comes_is_none_after_its_limit() -> None:
    result, calls = _result(_unavailable())
    assert result is None
    assert calls > 1


def test_the_canary_times_the_recovery() -> None:
    execute = _Replies(_unavailable(), WorkflowFailureError(cause=RuntimeError("boom")), "Hello, canary")
    seconds = asyncio.run(faults.canary(_client(execute_workflow=execute), "queue"))
    assert 0 < seconds < 0.3
    assert execute.calls == 3


def test_a_canary_that_never_completes_names_the_wait() -> None:
    execute = _Replies(_unavailable())
    with pytest.raises(DeployError) as caught:
        asyncio.run(faults.canary(_client(execute_workflow=execute), "queue"))
    assert caught.value.problem == "no workflow completed within 0.3s of the fault's end"
    assert caught.value.fix == "see `invoke status` and the services' logs"


def _counts(*pairs: tuple[int, int] | RPCError) -> Iterator[object]:
    """count_workflows' replies: (completed, runs) pairs, two calls each."""
    for pair in pairs:
        if isinstance(pair, RPCError):
            yield pair
        else:
            yield from (SimpleNamespace(count=pair[0]), SimpleNamespace(count=pair[1]))


def test_visibility_converges_once_every_workflow_shows_completed_once() -> None:
    count = _Replies(*_counts(_unavailable(), (2, 3), (3, 3)))
    seconds, runs = asyncio.run(faults.visibility(_client(count_workflows=count), SHAPES["hello"], "p", 3))
    assert seconds is not None
    assert runs == 3
    assert count.calls == 5


def test_visibility_that_never_converges_gives_the_last_count_of_runs() -> None:
    count = _Replies(*_counts((3, 4)))
    seconds, runs = asyncio.run(faults.visibility(_client(count_workflows=count), SHAPES["hello"], "p", 3))
    assert seconds is None
    assert runs == 4


def _kill_context(monkeypatch: pytest.MonkeyPatch, pids: list[int]) -> tuple[faults.FaultContext, list[int]]:
    """A stack whose service runs as pid 100 and then as each of `pids` in turn, and the pids sent kill -9 (only
    noted: nothing is really killed)."""
    killed: list[int] = []
    monkeypatch.setattr(psutil, "Process", lambda pid: SimpleNamespace(pid=pid, children=lambda recursive: []))
    monkeypatch.setattr(os, "kill", lambda pid, _signal: killed.append(pid))
    seen = iter([100, *pids])
    last = [100]

    def main_pid(service: str) -> int:
        assert service == "temporal-history"
        last[0] = next(seen, last[0])
        return last[0]

    context = SimpleNamespace(stack=SimpleNamespace(main_pid=main_pid))
    return cast("faults.FaultContext", context), killed


def test_a_killed_service_is_seen_restarted_under_a_new_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    context, killed = _kill_context(monkeypatch, [100, 0, 200])
    injected = faults._kill_hard("temporal-history")(context)
    assert killed == [100]
    assert injected.notes == ["temporal-history: pid 100 killed; the supervisor restarted it as pid 200"]
    assert not injected.problems


def test_services_killed_at_once_are_each_seen_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(psutil, "Process", lambda pid: SimpleNamespace(pid=pid, children=lambda recursive: []))
    monkeypatch.setattr(os, "kill", lambda pid, _signal: killed.append(pid))
    pids = {"temporal-history": iter([100, 0, 0, 101]), "temporal-matching": iter([200, 200, 201])}
    last: dict[str, int] = {}

    def main_pid(service: str) -> int:
        last[service] = next(pids[service], last.get(service, 0))
        return last[service]

    context = cast("faults.FaultContext", SimpleNamespace(stack=SimpleNamespace(main_pid=main_pid)))
    injected = faults._kill_hard("temporal-history", "temporal-matching")(context)
    assert killed == [100, 200]  # both before either is waited on
    assert injected.notes == ["temporal-history: pid 100 killed; the supervisor restarted it as pid 101",
                              "temporal-matching: pid 200 killed; the supervisor restarted it as pid 201"]  # fmt: skip
    assert not injected.problems


def test_a_killed_service_never_restarted_is_a_problem_naming_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    context, killed = _kill_context(monkeypatch, [0])
    injected = faults._kill_hard("temporal-history")(context)
    assert killed == [100]
    assert injected.problems == ["the supervisor did not restart temporal-history within 0.3s of kill -9"]
    assert not injected.notes


def test_a_service_that_is_not_running_is_a_problem_and_nothing_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    """main_pid 0 (no running container or process): no process is looked up or signalled (pid 0 would be this
    process's own group), and the run says the fault could not be injected."""
    looked_up: list[int] = []
    killed: list[int] = []
    monkeypatch.setattr(psutil, "Process", looked_up.append)
    monkeypatch.setattr(os, "kill", lambda pid, _signal: killed.append(pid))
    asked: list[str] = []

    def main_pid(service: str) -> int:
        asked.append(service)
        return 0

    context = cast("faults.FaultContext", SimpleNamespace(stack=SimpleNamespace(main_pid=main_pid)))
    injected = faults._kill_hard("temporal-history")(context)
    assert injected.problems == ["temporal-history was not running when the fault was to be injected"]
    assert not injected.notes
    assert asked == ["temporal-history"]  # asked once, not waited on
    assert looked_up == []
    assert killed == []


@pytest.mark.parametrize("name", [fault.name for fault in faults.FAULTS if Runtime.DOCKER not in fault.runtimes])
def test_a_fault_the_runtime_cannot_take_is_refused_before_anything(name: str, tmp_path: Path) -> None:
    """dsql-local's admin API is not published under Docker: its faults are refused there, the stack untouched."""
    fault = next(fault for fault in faults.FAULTS if fault.name == name)
    touched: list[str] = []
    stack = SimpleNamespace(kind=Runtime.DOCKER, up=lambda _report: touched.append("up"))
    with pytest.raises(DeployError, match="cannot be injected under the docker runtime") as refused:
        faults.run_fault(cast("StackRuntime", stack), fault, faults.FaultPlan(), tmp_path, lambda _message: None)
    assert "run it with local" in str(refused.value)
    assert touched == []


def test_the_faults_docker_cannot_take_are_those_of_dsql_locals_admin_api() -> None:
    local_only = {fault.name for fault in faults.FAULTS if Runtime.DOCKER not in fault.runtimes}
    assert local_only == {fault.name for fault in faults.FAULTS if fault.inject in (faults._short_tokens,
                                                                                       faults._conflicts)}  # fmt: skip
    assert local_only
