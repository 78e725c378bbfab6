"""`invoke failover`'s steps against a recording runtime: the old Region fenced before the new one starts, every shard
owned before it is done, and the refusals that change nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime import regions
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal import serving

MakeSettings = Callable[..., Settings]
STANDBY = "us-west-2"


class RecordingRuntime(DockerRuntime):
    """Records what the failover asks of the engine; its history hosts own `owned` shards each."""

    def __init__(self, settings: Settings, owned: int, calls: list[tuple[str, ...]] | None = None) -> None:
        super().__init__(settings, Path("/nonexistent"))
        self.calls: list[tuple[str, ...]] = [] if calls is None else calls
        self.owned = owned

    def with_settings(self, settings: Settings) -> RecordingRuntime:
        return RecordingRuntime(settings, self.owned, self.calls)  # one record of the calls

    def remove_services(self, services: list[str], grace_s: int) -> None:
        self.calls.append(("remove", *services))
        self.grace: int | None = grace_s

    def start_services(self, services: list[str]) -> None:
        self.calls.append(("start", *services))

    def owned_shards(self, history: str) -> dict[str, int]:
        self.calls.append(("shards", history))
        return {f"{history}-{host}": self.owned for host in range(self.settings.hosts("history"))}


def _failover(runtime: RecordingRuntime, to: str) -> list[regions.Step]:
    steps: list[regions.Step] = []

    def record(serving: Settings) -> None:
        runtime.calls.append(("record", str(serving.serving_region)))

    moved = regions.failover(runtime, to, record, steps.append)
    assert moved.settings.serving == to
    return steps


@pytest.fixture(autouse=True)
def frontend_serves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The new Region's frontend, as the SDK would find it: asked once, serving."""
    asked: list[str] = []
    monkeypatch.setattr(serving, "wait_serving", lambda address, *_args: asked.append(address))
    return asked


def test_the_old_region_is_fenced_before_the_new_one_starts(make_settings: MakeSettings,
                                                            frontend_serves: list[str]) -> None:  # fmt: skip
    settings = make_settings(STANDBY_REGION=STANDBY, TEMPORAL_HISTORY_HOSTS="2", TEMPORAL_NUM_HISTORY_SHARDS="8")
    runtime = RecordingRuntime(settings, owned=4)
    steps = _failover(runtime, STANDBY)
    assert runtime.calls == [
        ("remove", "temporal-history", "temporal-matching", "temporal-frontend", "temporal-worker"),
        ("record", STANDBY),  # the move is the stack's own from here: a later `up` does not undo it
        ("start", *(f"temporal-{role}-{STANDBY}" for role in ("history", "matching", "frontend", "worker"))),
        ("shards", f"temporal-history-{STANDBY}"),
        ("start", "temporal-ui"),
    ]
    assert frontend_serves == ["127.0.0.1:7243"]
    assert [step.what for step in steps] == [
        "fenced us-east-1: its Temporal hosts stopped (20s to hand their shards over) and removed",
        f"started {STANDBY}'s hosts (temporal-history-{STANDBY}, temporal-matching-{STANDBY}, "
        f"temporal-frontend-{STANDBY}, temporal-worker-{STANDBY}), all healthy",
        f"{STANDBY}'s history hosts own all 8 shards",
        f"{STANDBY}'s frontend at 127.0.0.1:7243 serves 'default', the UI with it",
    ]
    assert all(step.seconds >= 0 for step in steps)


def test_failing_back_moves_the_primary_set_back(make_settings: MakeSettings) -> None:
    settings = make_settings(STANDBY_REGION=STANDBY, SERVING_REGION=STANDBY)
    runtime = RecordingRuntime(settings, owned=4)
    steps: list[regions.Step] = []
    regions.failover(runtime, "us-east-1", lambda _serving: None, steps.append, grace_s=0)
    assert steps[0].what == f"fenced {STANDBY}: its Temporal hosts killed and removed"
    assert runtime.grace == 0
    assert runtime.calls[0][1:] == tuple(f"temporal-{role}-{STANDBY}" for role in regions.ROLES)
    assert runtime.calls[1] == ("start", "temporal-history", "temporal-matching", "temporal-frontend",
                                "temporal-worker")  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "to", "problem"),
    [({}, STANDBY, "the stack has one Region: there is nowhere to fail over to"),
     ({"STANDBY_REGION": STANDBY, "TEMPORAL_SQL_PLUGIN": "postgres12_pgx"}, STANDBY,
      "STANDBY_REGION=us-west-2, but no standby hosts run on this profile: they need DSQL, the local stand-in or the "
      "peer cluster's endpoint"),
     ({"STANDBY_REGION": STANDBY}, "us-east-1", "us-east-1 serves already"),
     ({"STANDBY_REGION": STANDBY}, "eu-west-1", "--to eu-west-1 is not one of the stack's Regions (us-east-1, "
                                                "us-west-2)")],
)  # fmt: skip
def test_a_failover_that_cannot_be_is_refused_before_anything_changes(
    make_settings: MakeSettings, variables: dict[str, str], to: str, problem: str
) -> None:
    runtime = RecordingRuntime(make_settings(**variables), owned=4)
    with pytest.raises(DeployError) as refused:
        regions.plan_lines(runtime.settings, to)
    assert refused.value.problem == problem
    with pytest.raises(DeployError):
        _failover(runtime, to)
    assert runtime.calls == []


def test_unowned_shards_are_a_bounded_wait_naming_the_hosts(make_settings: MakeSettings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(regions, "SHARDS_OWNED_WAIT_S", 0.3)
    monkeypatch.setattr(regions, "POLL_S", 0.05)
    runtime = RecordingRuntime(make_settings(STANDBY_REGION=STANDBY), owned=1)  # 1 of 4
    with pytest.raises(DeployError) as late:
        _failover(runtime, STANDBY)
    assert late.value.problem.startswith(f"temporal-history-{STANDBY}'s hosts did not own all 4 shards within 0.3s")
    assert "invoke logs temporal-history-us-west-2 --runtime docker" in late.value.fix


def test_the_plan_shows_the_aws_steps(make_settings: MakeSettings) -> None:
    lines = regions.plan_lines(make_settings(STANDBY_REGION=STANDBY, TEMPORAL_HISTORY_HOSTS="3"), STANDBY)
    assert any("helm upgrade temporal-us-east-1 ./chart --reuse-values --set server.history.replicaCount=0" in line
               for line in lines)  # fmt: skip
    assert any("helm upgrade temporal-us-west-2" in line and "server.history.replicaCount=3" in line for line in lines)
