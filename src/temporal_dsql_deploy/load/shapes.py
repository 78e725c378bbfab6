"""The workflows the benchmark and the fault runs drive; the worker process registers all of them.

Each shape's result is a pure function of its input, so a run can check every workflow's result by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# The large shape's payload: over DSQL's 1 MiB column limit, so the dsql plugin stores it in pieces.
LARGE_PAYLOAD = 1536 * 1024


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def step(value: str) -> str:
    return f"{value}+"


@activity.defn
async def echo_payload(data: bytes) -> bytes:
    return data


@workflow.defn
class HelloActivity:
    """One activity: the guide's sample."""

    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn
class Child:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(step, value, start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn
class Transitions:
    """An activity, a durable timer, a signal (sent with the start) and a child running an activity: about 15 state
    transitions of its own (the unit tests count them on the dev server)."""

    def __init__(self) -> None:
        self._released: str | None = None

    @workflow.signal
    def release(self, value: str) -> None:
        self._released = value

    @workflow.run
    async def run(self, name: str) -> str:
        value = await workflow.execute_activity(step, name, start_to_close_timeout=ACTIVITY_TIMEOUT)
        await workflow.sleep(timedelta(milliseconds=100))
        await workflow.wait_condition(lambda: self._released is not None, timeout=timedelta(seconds=60))
        released = f"{value}{self._released}"
        return await workflow.execute_child_workflow(Child.run, released, id=f"{workflow.info().workflow_id}-child")


@workflow.defn
class LargeEcho:
    """A large activity input and result (each a history event over 1 MiB): the cost of the plugin's pieces."""

    @workflow.run
    async def run(self, name: str) -> str:
        data = workflow.random().randbytes(LARGE_PAYLOAD)
        echoed = await workflow.execute_activity(echo_payload, data, start_to_close_timeout=ACTIVITY_TIMEOUT)
        return f"{name}:{len(echoed)}" if echoed == data else f"{name}: the echo differs"


@dataclass(frozen=True)
class Shape:
    name: str
    workflow: str  # the workflow type the client starts
    start_signal: str | None  # a signal sent with the start (signal-with-start), if the shape needs one
    result: str  # what a workflow returns, from its argument as {name}

    def argument(self, index: int) -> str:
        return f"w{index}"

    def expected(self, index: int) -> str:
        return self.result.format(name=self.argument(index))

    def signal_args(self) -> list[Any]:
        return ["!"] if self.start_signal else []


SHAPES = {
    "hello": Shape("hello", "HelloActivity", None, "Hello, {name}!"),
    "transitions": Shape("transitions", "Transitions", "release", "{name}+!+"),
    "large": Shape("large", "LargeEcho", None, f"{{name}}:{LARGE_PAYLOAD}"),
}
WORKFLOWS = [HelloActivity, Transitions, Child, LargeEcho]
ACTIVITIES: list[Callable[..., Any]] = [greet, step, echo_payload]
