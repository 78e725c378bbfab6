"""What the multi-host faults read from a history host: the shards it owns, from its own metrics."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import cast

import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import host_faults
from temporal_dsql_deploy.load.host_faults import HOST_FAULTS, OwnershipWatch
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime, shards_in
from temporal_dsql_deploy.runtime.model import Runtime

METRICS = """# HELP numshards_gauge numshards_gauge
# TYPE numshards_gauge gauge
numshards_gauge{operation="ShardController",service_name="history"} 6
numshards_gauge_total 99
persistence_requests{operation="GetOrCreateShard"} 16
"""


@pytest.mark.parametrize(
    ("metrics", "owned"),
    [
        (METRICS, 6),
        ("numshards_gauge 5\n", 5),
        ('numshards_gauge{a="b"} 1e+01\n', 10),
        ("", 0),
        ("# TYPE numshards_gauge gauge\n", 0),
        ("persistence_requests 3\n", 0),
    ],
    ids=["labelled", "bare", "exponent", "nothing-yet", "type-line-only", "other-metrics"],
)
def test_shards_owned_are_read_from_the_hosts_own_gauge(metrics: str, owned: int) -> None:
    assert shards_in(metrics) == owned


def test_host_faults_run_only_where_hosts_are_containers() -> None:
    assert len(HOST_FAULTS) == 4
    assert all(fault.runtimes == frozenset({Runtime.DOCKER}) for fault in HOST_FAULTS)


class Owners:
    """A runtime's owner reads: each answers `owned` (or fails, with None); `asked` is set on the first."""

    def __init__(self, owned: dict[str, int] | None) -> None:
        self.owned = owned
        self.asked = threading.Event()
        self.settings = SimpleNamespace(temporal_num_history_shards=4)

    def owned_shards(self, _role: str) -> dict[str, int]:
        self.asked.set()
        if self.owned is None:
            raise DeployError("No such container")
        return self.owned


@pytest.mark.parametrize(
    ("owned", "problems"),
    [
        ({"a": 2, "b": 2}, []),
        (None, ["the shards' owners were never read while the fault ran (every sample failed)"]),
    ],
    ids=["every-shard-owned", "never-read"],
)
def test_a_shard_watch_that_never_read_the_owners_says_so(owned: dict[str, int] | None, problems: list[str]) -> None:
    owners = Owners(owned)
    with OwnershipWatch(cast(DockerRuntime, owners)) as watch:
        assert owners.asked.wait(10), "the watch never asked for the owners"
    assert watch.problems() == problems
    assert watch.longest_gap_s == 0.0


def test_a_shard_watch_that_lost_sight_of_the_owners_too_long_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read once, then never again: a gap meanwhile would go unseen, so the stretch unread is a problem too."""
    monkeypatch.setattr(host_faults, "POLL_S", 0.01)
    monkeypatch.setattr(host_faults, "UNOWNED_LIMIT_S", 0.2)
    answers = iter([{"a": 2, "b": 2}])
    failed = threading.Event()

    class Once(Owners):
        def owned_shards(self, _role: str) -> dict[str, int]:
            if (owned := next(answers, None)) is not None:
                return owned
            if host_faults.time.monotonic() - began > 0.5:
                failed.set()
            raise DeployError("No such container")

    owners = Once(None)
    began = host_faults.time.monotonic()
    with OwnershipWatch(cast(DockerRuntime, owners)) as watch:
        assert failed.wait(10), "the watch stopped reading"
    assert watch.samples == 1
    (problem,) = watch.problems()
    assert problem.startswith("the shards' owners went unread for ")
