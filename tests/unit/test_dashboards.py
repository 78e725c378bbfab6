"""The dashboard specs and their two renderings, and the scrape configuration."""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml

from temporal_dsql_deploy.observability.dashboards import (
    DATASOURCE_UID,
    GRID_WIDTH,
    VMUI_WIDTH,
    grafana_dashboard,
    load_dashboards,
    vmui_dashboard,
)
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_scrape import scrape_config
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import PROJECT_ROOT

MakeSettings = Callable[..., Settings]


def test_the_three_dashboards_load_with_distinct_ids() -> None:
    dashboards = load_dashboards()
    assert [d.title for d in dashboards] == ["Persistence (DSQL)", "Search engine", "Temporal"]
    assert len({d.uid for d in dashboards}) == 3
    assert all(d.figures and d.rows for d in dashboards)


def test_the_persistence_dashboard_shows_every_metric_the_plugin_exports() -> None:
    source = (PROJECT_ROOT / "server" / "internal" / "dsql" / "metrics.go").read_text(encoding="utf-8")
    exported = set(re.findall(r'= "(dsql_[a-z_]+)"', source))
    assert len(exported) >= 12, exported
    persistence = next(d for d in load_dashboards() if d.uid == "persistence")
    shown = " ".join(persistence.expressions)
    assert {name for name in exported if name not in shown} == set()


def test_grafana_panels_fit_the_grid_without_overlapping_and_name_the_provisioned_datasource() -> None:
    for dashboard in load_dashboards():
        rendered = grafana_dashboard(dashboard)
        cells: set[tuple[int, int]] = set()
        for panel in rendered["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
            covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                       for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
            assert not cells & covered, f"{dashboard.uid}: {panel['title']} overlaps another panel"
            cells |= covered
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert len({p["id"] for p in rendered["panels"]}) == len(rendered["panels"])
        queries = sum(len(p.get("targets", [])) for p in rendered["panels"])
        assert queries == len(dashboard.expressions)


def test_vmui_dashboards_carry_every_expression_in_its_grid() -> None:
    for dashboard in load_dashboards():
        rendered = vmui_dashboard(dashboard)
        panels = [panel for row in rendered["rows"] for panel in row["panels"]]
        assert all(0 < panel["width"] <= VMUI_WIDTH and panel["expr"] for panel in panels)
        assert [e for panel in panels for e in panel["expr"]] == dashboard.expressions


def test_the_store_scrapes_every_service_with_metrics(make_settings: MakeSettings) -> None:
    stack = build_stack(make_settings()).in_runtime(Runtime.LOCAL)
    document = yaml.safe_load(scrape_config(stack, lambda _name: "127.0.0.1", make_settings().metrics_scrape_interval))
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in document["scrape_configs"]}
    assert set(jobs) == {
        "temporal-history", "temporal-matching", "temporal-frontend", "temporal-worker", "dsql-local",
        "postgresql-exporter", "elasticsearch-exporter", "metrics",
    }  # fmt: skip
    assert jobs["temporal-frontend"] == ["127.0.0.1:9091"]
    assert jobs["dsql-local"] == ["127.0.0.1:5434"]
    assert document["global"] == {"scrape_interval": "15s", "scrape_timeout": "10s"}


def test_grafana_runs_only_under_compose(make_settings: MakeSettings) -> None:
    stack = build_stack(make_settings())
    assert "grafana" in stack.in_runtime(Runtime.DOCKER).names
    assert "grafana" not in stack.in_runtime(Runtime.LOCAL).names
