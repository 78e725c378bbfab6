"""`invoke top`: figures formatted for people, read from a real HTTP server speaking the store's query API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from rich.console import Console

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.observability.dashboards import load_dashboards
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.observability.top import format_value, read, watch
from tests.unit.conftest import assert_clear_error, run_task
from tests.unit.json_reply import send_json


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(None, "ops", "-"), (12.345, "ops", "12.3/s"), (0.0042, "s", "4 ms"), (2.5, "s", "2.50 s"),
     (512, "bytes", "512 B"), (2.5 * 1024 * 1024, "bytes", "2.5 MiB"), (3 * 1024**3, "bytes", "3.0 GiB"),
     (1, "status", "yes"), (0, "status", "no"), (5656, "short", "5,656"), (0.25, "short", "0.25"),
     (0.5, "percent", "50.0%")],
)  # fmt: skip
def test_figures_read_as_people_expect(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text  # type: ignore[arg-type]


class _Store(BaseHTTPRequestHandler):
    """Answers `up` with two targets, one down, every other query with one sample (NaN for quantiles)."""

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)["query"][0]
        if query == "bad(":
            self._reply(400, {"status": "error", "error": "unexpected end of input"})
            return
        if query == "up":
            result = [{"metric": {"job": "metrics"}, "value": [0, "1"]},
                      {"metric": {"job": "temporal-history"}, "value": [0, "0"]}]  # fmt: skip
        else:
            result = [{"metric": {}, "value": [0, "NaN" if "histogram_quantile" in query else "3"]}]
        self._reply(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        send_json(self, status, body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def store_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_snapshot_has_every_figure_and_target(store_url: str) -> None:
    dashboards = load_dashboards()
    readings, targets = read(MetricsStore(store_url), dashboards)
    assert len(readings) == sum(len(d.figures) for d in dashboards)
    quantiles = [r for r in readings if r.value is None]
    assert quantiles
    assert all("p99" in r.title or "latency" in r.title.lower() for r in quantiles)
    assert [(t.job, t.up) for t in targets] == [("metrics", True), ("temporal-history", False)]
    console = Console(record=True, width=120)
    watch(MetricsStore(store_url), console, interval_s=0.01, rounds=2)
    text = console.export_text()
    assert text.count("Key figures from") == 2
    assert "down" in text


def test_a_refused_expression_is_named(store_url: str) -> None:
    with pytest.raises(DeployError, match=r"refused the query 'bad\(': unexpected end of input"):
        MetricsStore(store_url).query("bad(")


def test_top_without_a_store_says_to_start_the_stack(project: Path) -> None:
    result = run_task(project, "top", "--rounds", "1", env_file="METRICS_PORT=1\n")
    assert_clear_error(result, "metrics store", "127.0.0.1:1", "invoke up")


@pytest.mark.parametrize(("flags", "named"), [(["--interval", "0"], "--interval"), (["--rounds", "-2"], "--rounds")])
def test_top_rejects_bad_flags(project: Path, flags: list[str], named: str) -> None:
    assert_clear_error(run_task(project, "top", *flags), named)
