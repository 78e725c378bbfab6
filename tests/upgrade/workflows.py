"""Workflows that stay open across Temporal upgrades: each holds a kind of state the servers must carry over (a
durable timer, a wait for a signal with a child after it, an activity's retries, a chain of continue-as-new runs)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from tests.integration.workflows import ChildWorkflow  # doubles its input


@workflow.defn
class DurableTimerWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(timedelta(seconds=seconds))
        return f"woke after {seconds:g}s"


@workflow.defn
class SignalThenChildWorkflow:
    """Waits for a signal (sent only after both upgrades), then runs a child with the signalled value."""

    def __init__(self) -> None:
        self._value: int | None = None

    @workflow.signal
    def release(self, value: int) -> None:
        self._value = value

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._value is not None, timeout=timedelta(minutes=15))
        assert self._value is not None
        return await workflow.execute_child_workflow(
            ChildWorkflow.run, self._value, id=f"{workflow.info().workflow_id}-child"
        )


FAILING_ATTEMPTS = 4


@activity.defn
async def fails_then_succeeds(tag: str) -> str:
    """Fails its first FAILING_ATTEMPTS attempts: the retries (and their backoff timers) live in history's state."""
    attempt = activity.info().attempt
    if attempt <= FAILING_ATTEMPTS:
        raise RuntimeError(f"attempt {attempt} of {tag} fails on purpose")
    return f"{tag} succeeded on attempt {attempt}"


@workflow.defn
class RetryingActivityWorkflow:
    @workflow.run
    async def run(self, tag: str) -> str:
        return await workflow.execute_activity(
            fails_then_succeeds,
            tag,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=8), backoff_coefficient=1.5, maximum_attempts=FAILING_ATTEMPTS + 3
            ),
        )


@workflow.defn
class ContinueAsNewWorkflow:
    """A timer per run, then a new run carrying the count, until `runs` runs have passed."""

    @workflow.run
    async def run(self, runs: int, done: int = 0) -> int:
        await workflow.sleep(timedelta(seconds=15))
        if done + 1 < runs:
            workflow.continue_as_new(args=[runs, done + 1])
        return done + 1


@workflow.defn
class HelloWorkflow:
    """The steady load while the roles are replaced: one short workflow task each."""

    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


WORKFLOWS = [DurableTimerWorkflow, ChildWorkflow, SignalThenChildWorkflow, RetryingActivityWorkflow,
             ContinueAsNewWorkflow, HelloWorkflow]  # fmt: skip
ACTIVITIES = [fails_then_succeeds]
