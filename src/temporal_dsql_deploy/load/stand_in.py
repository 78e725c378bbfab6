"""The stack's dsql-local through its admin API: the key it needs, its counts, and its latency profile for a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from temporal_dsql_deploy.runtime.control_keys import read_control_keys
from temporal_dsql_deploy.settings.config import DsqlLatency, Settings

ADMIN_TIMEOUT_S = 10


def admin_client(settings: Settings) -> httpx.Client:
    """A client of the stand-in's admin API, carrying the stack's key (its control paths refuse a request without)."""
    url = f"http://127.0.0.1:{settings.dsql_local_admin_port}"
    keys = read_control_keys(settings.stack_dir, f"dsql-local's admin API at {url}")
    return httpx.Client(base_url=url, headers=keys.admin_headers(), timeout=ADMIN_TIMEOUT_S)


@dataclass(frozen=True)
class StandInCounts:
    """What the stand-in counted since it started: client batches (each a network round trip on DSQL) and the
    commits of transactions that wrote."""

    round_trips: int
    writing_commits: int
    by_kind: dict[str, int]  # round trips by the kind of statement that ended each: begin, commit, read, write...

    def __sub__(self, earlier: StandInCounts) -> StandInCounts:
        return StandInCounts(
            self.round_trips - earlier.round_trips,
            self.writing_commits - earlier.writing_commits,
            {kind: count - earlier.by_kind.get(kind, 0) for kind, count in self.by_kind.items()},
        )


def counts(admin: httpx.Client) -> StandInCounts:
    stats = admin.get("/stats").raise_for_status().json()
    by_kind = {str(kind): int(count) for kind, count in stats["round_trips_by_kind"].items()}
    return StandInCounts(int(stats["round_trips"]), int(stats["writing_commits"]), by_kind)


@contextlib.contextmanager
def latency_profile(admin: httpx.Client, profile: DsqlLatency) -> Iterator[None]:
    """Every endpoint of the stand-in delays as `profile` says while the block runs, and each as it did before
    afterwards (a second Region's endpoint may have had a profile of its own)."""
    endpoints = admin.get("/stats").raise_for_status().json()["endpoints"]
    before = {region: str(endpoint["latency"]) for region, endpoint in endpoints.items()}
    admin.post("/latency", data={"profile": profile}).raise_for_status()
    try:
        yield
    finally:
        for region, name in before.items():
            admin.post("/latency", data={"profile": name, "region": region}).raise_for_status()
