"""What a benchmark reads from the system under load: Temporal's own metrics, the database's commit counter,
and the CPU and memory of the server's processes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.settings.config import Settings

# Counter families summed over every label and every scraped process (Temporal's names; the plugin's own).
COUNTERS = {
    "persistence_requests": "persistence_requests",
    "conflicts": "dsql_conflicts",
    "replays": "dsql_transaction_replays",
    "shard_loads": "sharditem_created_count",
    "chunked_values": "dsql_chunked_values",  # values over 1 MiB the dsql plugin wrote or read in pieces
    "chunked_bytes": "dsql_chunked_bytes",
    "chunk_statements": "dsql_chunk_statements",  # the round trips their pieces took
}
SCRAPE_TIMEOUT_S = 10


def scrape(ports: Iterable[int]) -> dict[str, float]:
    """Totals of COUNTERS over the metrics endpoints on these loopback ports; a silent endpoint counts 0."""
    totals = dict.fromkeys(COUNTERS, 0.0)
    wanted = {family: key for key, family in COUNTERS.items()}
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_S).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            key = wanted.get(family.name) or wanted.get(re.sub(r"_total$", "", family.name))
            if key:
                totals[key] += sum(s.value for s in family.samples if not s.name.endswith("_created"))
    return totals


def database_transactions(settings: Settings, database: str) -> int:
    """Transactions committed and rolled back in `database` on the local PostgreSQL, so far."""
    with dsql.connect(settings, database="postgres", direct=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                           (database,)).fetchone()  # fmt: skip
    return int(str(row[0])) if row and row[0] is not None else 0


@dataclass
class ProcessUsage:
    """CPU seconds per named process since the first sample, and the highest resident memory seen."""

    roots: Mapping[str, int]  # name -> pid; each one's descendants count with it
    alone: Mapping[str, int] = field(default_factory=dict)  # name -> pid counted without its descendants (a
    # supervisor, whose descendants are the services above; the health checks it ran count in its CPU)
    _first: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0

    def _members(self, name: str, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root] if name in self.alone else [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _tree_cpu_rss(self, name: str, pid: int) -> tuple[float, float]:
        members = self._members(name, pid)
        cpu = rss = 0.0
        for member in members:
            try:
                times = member.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += member.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss / 2**20

    def sample(self) -> None:
        total_rss = 0.0
        for name, pid in {**self.roots, **self.alone}.items():
            cpu, rss = self._tree_cpu_rss(name, pid)
            self._first.setdefault(name, cpu)
            # A process restarted under load starts its counter again; never count backwards.
            self.cpu_s[name] = max(self.cpu_s.get(name, 0.0), cpu - self._first[name])
            total_rss += rss
        self.peak_rss_mib = max(self.peak_rss_mib, total_rss)

    def pss_mib(self) -> dict[str, float]:
        """Each named process tree's proportional set size now: its shared pages split among their sharers, so the
        values add up to what the stack takes of the machine's memory (resident sizes count shared pages twice)."""
        sizes = {}
        for name, pid in {**self.roots, **self.alone}.items():
            members = self._members(name, pid)
            if not members:
                continue
            total = 0
            for member in members:
                try:
                    total += member.memory_full_info().pss
                except psutil.Error:
                    continue
            sizes[name] = total / 2**20
        return sizes

    @property
    def total_cpu_s(self) -> float:
        return sum(self.cpu_s.values())
