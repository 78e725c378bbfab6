"""The dashboards: one spec per dashboard (the YAML files beside this module), rendered for Grafana (compose)
and for the metrics store's own UI (VictoriaMetrics' vmui, local stack); their figures are `invoke top`'s."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from pydantic import BaseModel, ConfigDict, Field

from temporal_dsql_deploy.owned_paths import make_owned_dir, remove_owned

Unit = Literal["ops", "s", "short", "bytes", "percent", "status"]
# Grafana's names for the spec's units.
GRAFANA_UNITS = {"ops": "ops", "s": "s", "short": "short", "bytes": "bytes", "percent": "percentunit",
                 "status": "short"}  # fmt: skip
DATASOURCE_UID = "metrics"  # the provisioned datasource the Grafana dashboards name
GRID_WIDTH = 24  # Grafana's grid
VMUI_WIDTH = 12  # vmui's grid


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(Spec):
    expr: str
    legend: str = ""


class Figure(Spec):
    """One number: a stat panel at the dashboard's top, and a line of `invoke top`."""

    title: str
    expr: str
    unit: Unit


class Panel(Spec):
    title: str
    unit: Unit
    queries: tuple[Query, ...] = Field(min_length=1)


class Row(Spec):
    title: str
    panels: tuple[Panel, ...] = Field(min_length=1)


class Dashboard(Spec):
    title: str
    uid: str = Field(pattern=r"^[a-z0-9-]+$")
    description: str
    figures: tuple[Figure, ...]
    rows: tuple[Row, ...]

    @property
    def expressions(self) -> list[str]:
        return [f.expr for f in self.figures] + [q.expr for r in self.rows for p in r.panels for q in p.queries]


def load_dashboards() -> list[Dashboard]:
    """Every dashboard spec, by file name."""
    folder = resources.files("temporal_dsql_deploy") / "observability" / "dashboards"
    specs = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".yaml")), key=lambda e: e.name)
    return [Dashboard.model_validate(yaml.safe_load(spec.read_text(encoding="utf-8"))) for spec in specs]


def grafana_dashboard(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, built with Grafana's own SDK: a row of stat panels for the
    figures, then each row of time series (the SDK lays out the grid)."""
    source = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
    built = (dashboard_builder.Dashboard(dashboard.title).uid(dashboard.uid).description(dashboard.description)
             .tags(["temporal-dsql-deploy"]).time("now-30m", "now").refresh("15s").editable())  # fmt: skip
    panel_id = 0

    def with_queries(panel: Any, items: tuple[Query, ...]) -> Any:
        nonlocal panel_id
        panel_id += 1
        for index, query in enumerate(items):
            target = prometheus.Dataquery().expr(query.expr).ref_id(chr(65 + index))
            panel = panel.with_target(target.legend_format(query.legend) if query.legend else target)
        return panel.id(panel_id).datasource(source)

    width = GRID_WIDTH // max(len(dashboard.figures), 1)
    for figure in dashboard.figures:
        figure_panel = stat.Panel().title(figure.title).unit(GRAFANA_UNITS[figure.unit]).span(width).height(4)
        built = built.with_panel(with_queries(figure_panel, (Query(expr=figure.expr),)))
    for row in dashboard.rows:
        panel_id += 1
        built = built.with_row(dashboard_builder.Row(row.title).id(panel_id))
        for panel in row.panels:
            series = timeseries.Panel().title(panel.title).unit(GRAFANA_UNITS[panel.unit])
            built = built.with_panel(with_queries(series.span(GRID_WIDTH // len(row.panels)).height(8), panel.queries))
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built.build()))
    return encoded


def vmui_dashboard(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard in vmui's format (rows of panels, each with its expressions): the figures first."""
    figures = {"title": "Key figures", "panels": [
        {"title": f.title, "width": VMUI_WIDTH // 3, "expr": [f.expr]} for f in dashboard.figures
    ]}  # fmt: skip
    rows = [
        {"title": row.title, "panels": [
            {"title": p.title, "width": VMUI_WIDTH // min(len(row.panels), 2), "expr": [q.expr for q in p.queries],
             "alias": [q.legend for q in p.queries]} for p in row.panels
        ]}
        for row in dashboard.rows
    ]  # fmt: skip
    return {"title": dashboard.title, "rows": [figures, *rows]}


def write_vmui_dashboards(folder: Path, *, project_root: Path, owner: Path) -> None:
    """Every dashboard as a vmui file in `folder` (emptied first: a removed dashboard disappears). `owner` is the
    marked directory holding it (STACK_DIR): a folder written before folders carried their own marker goes too."""
    remove_owned(folder, project_root=project_root, owner=owner)
    make_owned_dir(folder, project_root=project_root)
    for dashboard in load_dashboards():
        text = json.dumps(vmui_dashboard(dashboard), indent=2) + "\n"
        (folder / f"{dashboard.uid}.json").write_text(text, encoding="utf-8")
