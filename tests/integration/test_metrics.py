"""The metrics store scrapes every service, the dashboards' expressions run on it, and the dashboard page shows
data in a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import yaml

from temporal_dsql_deploy.observability.dashboards import load_dashboards
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.runtime.control_keys import read_control_keys
from temporal_dsql_deploy.runtime.installer import Paths
from temporal_dsql_deploy.runtime.render_compose import config_files
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.smoke import run_smoke
from tests.conftest import PROJECT_ROOT
from tests.integration.stack_checks import eventually_present, every_service_is_scraped

pytestmark = pytest.mark.integration
WAIT_S = 90  # a few scrape intervals


@pytest.fixture(scope="module")
def store(local_stack: LocalStack, settings: Settings) -> MetricsStore:
    run_smoke(settings, PROJECT_ROOT)  # a workflow, so the series it causes exist
    url = f"http://127.0.0.1:{settings.metrics_port}"
    return MetricsStore(url, auth=read_control_keys(settings.stack_dir, f"the metrics store at {url}").metrics_auth)


def _eventually_present(store: MetricsStore, expr: str) -> list[float]:
    return eventually_present(store, expr, WAIT_S)


def expected_series(settings: Settings) -> dict[str, str]:
    """A series each scraped service must have given the store after a workflow ran, by job."""
    expected = {
        "temporal-history": 'persistence_requests{job="temporal-history"}',
        "temporal-matching": 'persistence_requests{job="temporal-matching"}',
        "temporal-frontend": 'service_requests{job="temporal-frontend",operation="StartWorkflowExecution"}',
        "temporal-worker": 'num_goroutines{job="temporal-worker"}',
        "dsql-local": 'dsql_local_connections{job="dsql-local"}',
        "postgresql-exporter": 'pg_up{job="postgresql-exporter"} == 1',
        "elasticsearch-exporter": 'elasticsearch_indices_docs_primary{job="elasticsearch-exporter"}',
        "metrics": 'vm_app_version{job="metrics"}',
    }
    if settings.temporal_sql_plugin == "dsql":  # the plugin's own, from the service that writes the most
        expected |= {
            "plugin pool": 'dsql_pool_open_connections{job="temporal-history"} > 0',
            "plugin connects": 'dsql_connects{job="temporal-history",outcome="ok"} > 0',
            "plugin tokens": 'dsql_token_mints{job="temporal-history",outcome="ok"} > 0',
            "plugin statements": 'dsql_statement_latency_count{job="temporal-history",operation="insert"} > 0',
        }
    return expected


def test_every_service_is_scraped_and_has_its_series(store: MetricsStore, local_stack: LocalStack,
                                                     settings: Settings) -> None:  # fmt: skip
    every_service_is_scraped(store, local_stack.model, expected_series(settings), WAIT_S)


def test_every_dashboard_expression_runs_on_the_store(store: MetricsStore) -> None:
    for dashboard in load_dashboards():
        for expr in dashboard.expressions:
            store.query(expr)  # raises, naming the expression, if the store refuses it


def test_conflicts_are_counted_by_code_and_replayed(store: MetricsStore, local_stack: LocalStack,
                                                    settings: Settings) -> None:  # fmt: skip
    if settings.temporal_sql_plugin != "dsql":  # upstream's PostgreSQL plugin: none of the dsql plugin's series
        assert store.query('{__name__=~"dsql_(conflicts|connects|pool_.*|statement_latency_count)"}') == []
        return
    faults = f"http://127.0.0.1:{settings.dsql_local_admin_port}/faults"
    headers = read_control_keys(settings.stack_dir, f"dsql-local's admin API at {faults}").admin_headers()
    httpx.post(faults, data={"conflict_rate": "0.2", "seed": "7"}, headers=headers, timeout=10).raise_for_status()
    try:
        run_smoke(settings, PROJECT_ROOT)
    finally:
        httpx.post(faults, data={"conflict_rate": "0"}, headers=headers, timeout=10).raise_for_status()
    assert _eventually_present(store, 'sum(dsql_conflicts{code="OC000"}) > 0'), "no OC000 conflict counted"
    assert _eventually_present(store, 'sum(dsql_transaction_replays{outcome="replayed"}) > 0'), "no replay counted"


@dataclass(frozen=True)
class RangeQuery:
    """A range query the dashboard page asked, and how many series the store answered with points."""

    params: dict[str, str]
    series: int

    @property
    def expr(self) -> str:
        return self.params.get("query", "")


def _series_with_points(answer: httpx.Response) -> int:
    if answer.status_code != httpx.codes.OK:
        return 0
    return sum(1 for item in answer.json()["data"]["result"] if item.get("values"))


@dataclass
class PageProxy:
    """A port on loopback that forwards requests to the metrics store with its credentials (vmui loads its pages
    with GET and POSTs its queries), and records the range queries the page asks."""

    port: int
    store: str
    auth: tuple[str, str]
    asked: list[RangeQuery] = field(default_factory=list)

    def until_answered(self, queries: list[RangeQuery], wait_s: float) -> None:
        """Ask those of `queries` that had no points again, in turn, each over a window of its own length ending now,
        until each has points or `wait_s` ran out (the next try of the page tells which)."""
        pending = [query for query in queries if not query.series]
        deadline = time.monotonic() + wait_s
        while pending and time.monotonic() < deadline:
            pending = [query for query in pending if not self._series_now(query)]
            time.sleep(3 if pending else 0)

    def _series_now(self, query: RangeQuery) -> int:
        length = float(query.params.get("end", "0")) - float(query.params.get("start", "0"))
        now = time.time()
        params = query.params | {"start": f"{now - length:.3f}", "end": f"{now:.3f}"}
        return _series_with_points(httpx.post(f"{self.store}/api/v1/query_range", data=params, auth=self.auth,
                                              timeout=30))  # fmt: skip


@pytest.fixture
def page_proxy(settings: Settings) -> Iterator[PageProxy]:
    store = f"http://127.0.0.1:{settings.metrics_port}"
    auth = read_control_keys(settings.stack_dir, f"the metrics store at {store}").metrics_auth
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    proxy = PageProxy(int(server.server_address[1]), store, auth)

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {"content-type": self.headers["content-type"]} if "content-type" in self.headers else {}
            answer = httpx.request(method, store + self.path, auth=auth, content=body, headers=headers, timeout=30)
            target = urlsplit(self.path)
            if target.path.endswith("/api/v1/query_range"):
                params = dict(parse_qsl(target.query)) | dict(parse_qsl(body.decode("utf-8", "replace")))
                proxy.asked.append(RangeQuery(params, _series_with_points(answer)))
            self.send_response(answer.status_code)
            for name in ("content-type", "cache-control"):
                if name in answer.headers:
                    self.send_header(name, answer.headers[name])
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Forward
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield proxy
    server.shutdown()
    server.server_close()


def test_the_dashboard_page_shows_data_in_chromium(store: MetricsStore, settings: Settings, chromium: str,
                                                   tmp_path: Path, page_proxy: PageProxy) -> None:  # fmt: skip
    # Every key figure of the first dashboard (persistence) has data once a workflow has run; on the PostgreSQL
    # profile those of the dsql plugin have none unless they fall back to zero.
    first = load_dashboards()[0]
    plugin_only = {
        figure.title for figure in first.figures if "dsql_" in figure.expr and "or vector(0)" not in figure.expr
    }
    expected_empty = plugin_only if settings.temporal_sql_plugin != "dsql" else set()
    awaited = [figure for figure in first.figures if figure.title not in expected_empty]
    with_data = [figure for figure in awaited if _eventually_present(store, figure.expr)]
    assert {figure.title for figure in awaited} == {figure.title for figure in with_data}
    # Asked once every other figure has data (so the store has scraped since the workflow ran): still none.
    assert [
        figure.title for figure in first.figures if figure.title in expected_empty and store.query(figure.expr)
    ] == []
    # The store asks for its key; the browser goes through a local proxy that adds it, so no command line holds it.
    url = f"http://127.0.0.1:{page_proxy.port}/vmui/#/dashboards"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1400,1000"]  # fmt: skip
    # A panel with data draws a legend entry for its series; one per key figure. The page draws its panels as
    # their queries answer, so a busy machine gets a longer (virtual) time to draw them, up to three tries. A range
    # query sees a sample later than an instant one (the store's latency offset): before another try, the page's
    # own range queries are asked again until each has points.
    legends, asked = 0, []
    empty_exprs = {figure.expr for figure in first.figures if figure.title in expected_empty}
    budgets = (15_000, 30_000, 60_000)
    for budget in budgets:
        page_proxy.asked.clear()
        dom = subprocess.run([chromium, *flags, f"--virtual-time-budget={budget}", "--dump-dom", url],
                             capture_output=True, text=True, check=False, timeout=180).stdout  # fmt: skip
        legends, asked = dom.count('class="vm-legend-item '), list(page_proxy.asked)
        if first.figures[0].title in dom and legends >= len(with_data):
            break
        if budget != budgets[-1]:  # not those of figures that rightly have none: they would only wait out WAIT_S
            page_proxy.until_answered([query for query in asked if query.expr not in empty_exprs], WAIT_S)
    assert first.figures[0].title in dom, "the dashboard page did not render its first panel"
    answers = "; ".join(f"{query.expr!r}: {query.series} series with points" for query in asked)
    assert legends >= len(with_data), f"{legends} legend entries for {len(with_data)} key figures with data; " \
        f"the page's range queries, as answered: {answers or 'none asked'}"  # fmt: skip
    screenshot = tmp_path / "dashboard.png"
    subprocess.run([chromium, *flags, f"--virtual-time-budget={budget}", f"--screenshot={screenshot}", url],
                   capture_output=True, check=False, timeout=180)  # fmt: skip
    assert screenshot.stat().st_size > 20_000
    kept = settings.stack_dir / "artifacts" / f"dashboard-{settings.temporal_sql_plugin}.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, kept)
    print(f"dashboard screenshot kept at {kept}")


def test_the_compose_scrape_config_passes_the_stores_own_check(settings: Settings, paths: Paths,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    # The file the Compose stack's VictoriaMetrics reads, checked strictly by the same program.
    (scrape,) = [file for file in config_files(build_stack(settings), settings) if file.name == "scrape"]
    config = tmp_path / "scrape.yml"
    config.write_text(scrape.text, encoding="utf-8")
    # The store's own job names its password as %{VM_httpAuth_password}, which the store expands from its environment.
    checked = subprocess.run([str(paths.victoria_metrics), f"-promscrape.config={config}",
                              "-promscrape.config.dryRun", "-loggerLevel=ERROR"], capture_output=True, text=True,
                             check=False, timeout=60, env={**os.environ, "VM_httpAuth_password": "x"})  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    jobs = [job["job_name"] for job in yaml.safe_load(config.read_text(encoding="utf-8"))["scrape_configs"]]
    assert "temporal-history" in jobs
    assert "grafana" not in jobs
