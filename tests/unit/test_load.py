"""The benchmark's and fault runs' own logic: percentiles, summaries, thresholds, files, probes, bad flags."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from invoke import Context
from rich.console import Console

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import command
from temporal_dsql_deploy.load.driver import Outcome
from temporal_dsql_deploy.load.probes import ProcessUsage, scrape
from temporal_dsql_deploy.load.report import (
    RunResult,
    missed_thresholds,
    percentile,
    summarise,
    write_json,
    write_plot,
)
from temporal_dsql_deploy.owned_paths import check_claimable, is_owned
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT, load_tasks


def test_percentiles_interpolate_between_samples() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == pytest.approx(50.5, abs=0.1)
    assert percentile(values, 0.99) == pytest.approx(99.0, abs=0.1)
    assert percentile([], 0.99) == 0.0
    assert percentile([7.0], 0.5) == 7.0


def _outcomes() -> list[Outcome]:
    done = [Outcome(f"w-{i}", i, i * 0.1, i * 0.1 + 0.5, "ok", None) for i in range(9)]
    return [*done, Outcome("w-9", 9, 0.9, 2.0, None, "RPCError: unavailable")]


def _result(**overrides: object) -> RunResult:
    measured: dict[str, object] = {
        "shape": "hello", "workflows": 10, "concurrency": 2, "rate": 0.0, "state_transitions": 9,
        "db_transactions_per_workflow": 40.0, "db_transactions_per_s": 400.0, "db_round_trips_per_workflow": 160.0,
        "db_writing_commits_per_workflow": 20.0, "db_round_trips_by_kind_per_workflow": {"begin": 20.0},
        "persistence_requests_per_workflow": 30.0,
        "conflicts": 0.0, "replays": 0.0, "shard_loads": 0.0, "chunked_values_per_workflow": 0.0,
        "chunked_kib_per_value": 0.0, "chunk_statements_per_value": 0.0, "server_cpu_s_per_workflow": 0.05,
        "cpu_s_by_process": {"temporal-history": 0.3}, "peak_rss_mib": 900.0,
        "pss_mib_by_process": {"temporal-history": 80.0, "elasticsearch": 300.0},
    }  # fmt: skip
    summary = asdict(summarise("DSQL profile", _outcomes()))
    return RunResult(**{**summary, **measured, **overrides})  # type: ignore[arg-type]


def test_summary_counts_failures_and_times_only_the_completed() -> None:
    result = _result()
    assert (result.completed, result.failed) == (9, 1)
    assert result.duration_s == pytest.approx(2.0)
    assert result.completed_per_s == pytest.approx(4.5)
    assert result.p50_ms == pytest.approx(500.0)
    assert result.failures == ["w-9: RPCError: unavailable"]


def test_thresholds_and_failed_workflows_are_reported() -> None:
    missed = missed_thresholds(_result(), min_throughput=10, max_p99_ms=100)
    assert any("below --min-throughput 10" in m for m in missed)
    assert any("above --max-p99 100 ms" in m for m in missed)
    assert any("1 of 10 workflows failed" in m for m in missed)
    assert missed_thresholds(_result(failed=0), min_throughput=1, max_p99_ms=10_000) == []


RUN_KEYS = {
    "label", "shape", "workflows", "concurrency", "rate", "completed", "failed", "duration_s", "started_per_s",
    "completed_per_s", "p50_ms", "p95_ms", "p99_ms", "state_transitions", "db_transactions_per_workflow",
    "db_transactions_per_s", "db_round_trips_per_workflow", "db_writing_commits_per_workflow",
    "db_round_trips_by_kind_per_workflow",
    "persistence_requests_per_workflow", "conflicts", "replays", "shard_loads",
    "chunked_values_per_workflow", "chunked_kib_per_value", "chunk_statements_per_value", "server_cpu_s_per_workflow",
    "cpu_s_by_process", "peak_rss_mib", "pss_mib_by_process", "failures", "timeline",
}  # fmt: skip


def test_memory_is_each_process_trees_proportional_share() -> None:
    """A tree counts its children, a process counted alone does not; the proportional size never exceeds the
    resident one."""
    usage = ProcessUsage({"tests": os.getpid()})
    alone = usage.pss_mib()["tests"]
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = b'x' * (64 * 2**20); print(); "
                              "sys.stdout.flush(); time.sleep(30)"], stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert child.stdout is not None
        child.stdout.readline()  # its 64 MiB are written
        usage.sample()
        with_child = usage.pss_mib()["tests"]
        assert with_child - alone >= 60, (alone, with_child)
        assert with_child <= usage.peak_rss_mib
        # Counted alone (a supervisor, whose children are counted as services of their own): the child is not.
        assert ProcessUsage({}, {"tests": os.getpid()}).pss_mib()["tests"] < with_child - 60
    finally:
        child.kill()
        child.wait()
    assert ProcessUsage({"gone": child.pid}).pss_mib() == {}


def test_the_memory_table_ranks_each_runs_processes() -> None:
    console = Console(width=200, record=True)
    console.print(command.memory_table([_result()]))
    text = console.export_text()
    assert "380" in text  # the run's total
    assert text.index("elasticsearch 300") < text.index("temporal-history 80")


def test_json_and_png_are_written(tmp_path: Path) -> None:
    result = _result()
    data = json.loads(write_json(tmp_path / "run.json", [result], {"machine": "test"}).read_text())
    assert data["runs"][0]["completed"] == 9
    # Flat, one key per field, the long lists last: the summary's fields sit beside the measured ones.
    assert list(data["runs"][0]) == [*(k for k in asdict(result) if k not in ("failures", "timeline")),
                                     "failures", "timeline"]  # fmt: skip
    assert set(data["runs"][0]) == RUN_KEYS
    assert data["machine"] == "test"
    png = write_plot(tmp_path / "run.png", [result], {"limit: DSQL profile": 12.0}, "test run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_benchs_default_output_makes_the_stack_dir_the_products(make_settings: Callable[..., Settings],
                                                                    tmp_path: Path) -> None:  # fmt: skip
    """`invoke bench` before a first `up`: its output (STACK_DIR/bench) must not leave a STACK_DIR that the stack it
    starts then refuses as holding files the product did not make."""
    stack = tmp_path / "fresh-stack"
    settings = make_settings(STACK_DIR=str(stack))
    output = command.bench_output_dir(settings, PROJECT_ROOT, stack / "bench")
    assert output.is_dir()
    assert is_owned(stack)
    check_claimable(stack, project_root=PROJECT_ROOT)  # the stack's own check, before it makes anything
    elsewhere = command.bench_output_dir(settings, PROJECT_ROOT, tmp_path / "results")
    assert elsewhere.is_dir()
    assert not is_owned(elsewhere)


@pytest.mark.parametrize(
    ("flags", "named"),
    [({"shape": "huge"}, "--shape 'huge'"), ({"workflows": "0"}, "--workflows '0'"),
     ({"workflows": "100001"}, "--workflows '100001'"), ({"concurrency": "x"}, "--concurrency 'x'"),
     ({"rate": "-1"}, "--rate '-1'"), ({"max_p99": "fast"}, "--max-p99 'fast'"),
     ({"min_throughput": "nan"}, "--min-throughput 'nan'"), ({"output": ""}, "--output ''"),
     ({"dsql_latency": "far"}, "--dsql-latency 'far'"), ({"dsql_latency": "none,none"}, "--dsql-latency 'none,none'")],
)  # fmt: skip
def test_bad_bench_flags_are_clear_errors(
    flags: dict[str, str], named: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_args: object) -> None:
        raise AssertionError("the benchmark ran despite a bad flag")

    monkeypatch.setattr(cli, "settings_for", lambda _root: make_settings())
    monkeypatch.setattr(command, "run_bench", never)
    with pytest.raises(DeployError) as caught:
        load_tasks()["bench"].body.__wrapped__(Context(), **flags)
    assert caught.value.problem.startswith(named)
    assert caught.value.fix


def test_dsql_latency_with_compare_is_refused_first(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    request = command.BenchRequest(10, 2, 0.0, "hello", True, tmp_path / "bench", 0.0, 0.0, ("multi-region",))
    with pytest.raises(DeployError) as caught:
        command.run_bench(make_settings(), tmp_path, request, print, Console(file=io.StringIO()))
    assert caught.value.problem == "--dsql-latency and --compare were both given"
    assert not (tmp_path / "bench").exists()


METRICS = """# TYPE persistence_requests counter
persistence_requests{operation="UpdateWorkflowExecution",service_name="history"} 40
persistence_requests{operation="GetWorkflowExecution",service_name="history"} 2
# TYPE dsql_conflicts counter
dsql_conflicts{service_name="history"} 3
# TYPE dsql_transaction_replays counter
dsql_transaction_replays{outcome="replayed"} 2
dsql_transaction_replays{outcome="changed"} 1
"""


@pytest.fixture
def metrics_port() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(METRICS.encode())

        def log_message(self, *_args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def test_scrape_sums_counters_over_labels_and_endpoints(metrics_port: int) -> None:
    totals = scrape([metrics_port, metrics_port])
    assert totals["persistence_requests"] == 84
    assert totals["conflicts"] == 6
    assert totals["replays"] == 6
    assert totals["shard_loads"] == 0
