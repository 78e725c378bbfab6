"""A benchmark run's numbers: computed from the outcomes and probes, written as JSON and a PNG, checked
against the thresholds a caller gives."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from temporal_dsql_deploy.load.driver import Outcome

_LISTED_LAST = ("failures", "timeline")  # a run's long fields, written after the numbers in its JSON


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile by linear interpolation (statistics' inclusive method); 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


@dataclass(frozen=True)
class Summary:
    """What follows from the outcomes alone: counts, rates, latencies, the first errors and the timeline."""

    label: str
    completed: int
    failed: int
    duration_s: float
    started_per_s: float
    completed_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: list[str]  # the first few errors, for the reader
    timeline: list[tuple[float, float, float]]  # (started_s, closed_s, ok)


@dataclass(frozen=True, kw_only=True)
class RunResult(Summary):
    """A run's summary, with the load it ran and what it cost, as the probes measured it."""

    shape: str
    workflows: int
    concurrency: int
    rate: float
    state_transitions: int | None  # of one completed workflow, as Temporal counts them
    db_transactions_per_workflow: float | None  # None: no local database to count on (the dev server)
    db_transactions_per_s: float | None
    # Counted by dsql-local (None without it): the client's batches, each a network round trip to DSQL, and the
    # commits of transactions that wrote, which pay DSQL's commit latency on top.
    db_round_trips_per_workflow: float | None
    db_writing_commits_per_workflow: float | None
    db_round_trips_by_kind_per_workflow: dict[str, float] | None  # begin, commit, read, write, ...: where they go
    persistence_requests_per_workflow: float
    conflicts: float
    replays: float
    shard_loads: float
    chunked_values_per_workflow: float  # values over DSQL's column limit, written or read in pieces
    chunked_kib_per_value: float
    chunk_statements_per_value: float  # round trips for one value's pieces
    server_cpu_s_per_workflow: float
    cpu_s_by_process: dict[str, float]
    peak_rss_mib: float
    pss_mib_by_process: dict[str, float]  # each service's process tree right after the run

    @property
    def pss_mib(self) -> float:
        return sum(self.pss_mib_by_process.values())


def summarise(label: str, outcomes: Sequence[Outcome]) -> Summary:
    done = [o for o in outcomes if o.error is None]
    latencies = sorted(o.latency_s * 1000 for o in done)
    span = max((o.closed_s for o in outcomes), default=0.0) - min((o.started_s for o in outcomes), default=0.0)
    span = max(span, 1e-9)
    return Summary(
        label=label,
        completed=len(done),
        failed=len(outcomes) - len(done),
        duration_s=span,
        started_per_s=len(outcomes) / span,
        completed_per_s=len(done) / span,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        failures=[f"{o.workflow_id}: {o.error}" for o in outcomes if o.error][:5],
        timeline=[(o.started_s, o.closed_s, 0.0 if o.error else 1.0) for o in outcomes],
    )


def missed_thresholds(result: RunResult, min_throughput: float, max_p99_ms: float) -> list[str]:
    """What the run missed of the thresholds given (0 = no threshold), and every failed workflow."""
    missed = []
    if min_throughput and result.completed_per_s < min_throughput:
        missed.append(
            f"throughput {result.completed_per_s:.1f} workflows/s is below --min-throughput {min_throughput:g}"
        )
    if max_p99_ms and result.p99_ms > max_p99_ms:
        missed.append(f"p99 {result.p99_ms:.0f} ms is above --max-p99 {max_p99_ms:g} ms")
    if result.failed:
        missed.append(f"{result.failed} of {result.workflows} workflows failed (first: {result.failures[0]})")
    return missed


def _json_run(result: RunResult) -> dict[str, object]:
    """The run's fields, flat, the long lists last."""
    fields = asdict(result)
    return {**{k: v for k, v in fields.items() if k not in _LISTED_LAST}, **{k: fields[k] for k in _LISTED_LAST}}


def write_json(path: Path, results: Sequence[RunResult], extra: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [_json_run(r) for r in results]
    path.write_text(json.dumps({**extra, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    return path


def _completions_per_second(result: RunResult) -> tuple[list[int], list[int]]:
    closed = [int(closed_s) for _started, closed_s, ok in result.timeline if ok]
    seconds = list(range(max(closed, default=0) + 1))
    counts = [0] * len(seconds)
    for second in closed:
        counts[second] += 1
    return seconds, counts


def write_plot(path: Path, results: Sequence[RunResult], limits: dict[str, float], title: str) -> Path:
    """Throughput and latency over time per run, and the runs' throughput beside the physical limits."""
    import matplotlib as mpl  # noqa: PLC0415  (a second of import time, for the one function that draws)

    mpl.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (throughput, latency, bars) = plt.subplots(1, 3, figsize=(18, 5.5))
    for result in results:
        seconds, counts = _completions_per_second(result)
        throughput.plot(seconds, counts, label=result.label, linewidth=1.2)
        points = [(closed, (closed - started) * 1000) for started, closed, ok in result.timeline if ok]
        latency.scatter([p[0] for p in points], [p[1] for p in points], s=4, label=result.label, alpha=0.6)
    throughput.set(title="completed workflows per second", xlabel="seconds into the run", ylabel="workflows/s")
    latency.set(title="start-to-close latency of each workflow", xlabel="closed at (s)", ylabel="ms", yscale="log")
    for axis in (throughput, latency):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    names = [r.label for r in results] + list(limits)
    values = [r.completed_per_s for r in results] + list(limits.values())
    colours = ["tab:blue"] * len(results) + ["tab:grey"] * len(limits)
    bars.barh(names, values, color=colours)
    for y, value in enumerate(values):
        bars.text(value, y, f" {value:.1f}", va="center", fontsize=8)
    bars.set(title="workflows/s; grey: the physical limit", xlabel="pgbench commits/s / db transactions per workflow")
    bars.invert_yaxis()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
