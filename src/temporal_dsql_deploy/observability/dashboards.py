"""The dashboards: one spec per dashboard (the YAML files beside this module), rendered for Grafana (compose)
and for the metrics store's own UI (VictoriaMetrics' vmui, local stack); their figures are `invoke top`'s."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

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
    """The dashboard as Grafana's JSON model: a row of stat panels, then each row of time series."""
    datasource = {"type": "prometheus", "uid": DATASOURCE_UID}
    panels: list[dict[str, Any]] = []
    y = 0

    def target(expr: str, legend: str, ref: int) -> dict[str, Any]:
        return {"datasource": datasource, "expr": expr, "legendFormat": legend or "__auto", "refId": chr(65 + ref)}

    width = GRID_WIDTH // max(len(dashboard.figures), 1)
    for index, figure in enumerate(dashboard.figures):
        panels.append({
            "id": len(panels) + 1, "type": "stat", "title": figure.title, "datasource": datasource,
            "gridPos": {"x": index * width, "y": y, "w": width, "h": 4},
            "fieldConfig": {"defaults": {"unit": GRAFANA_UNITS[figure.unit]}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"},
            "targets": [target(figure.expr, "", 0)],
        })  # fmt: skip
    y += 4
    for row in dashboard.rows:
        panels.append({"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1}, "panels": []})  # fmt: skip
        y += 1
        width = GRID_WIDTH // len(row.panels)
        for index, panel in enumerate(row.panels):
            panels.append({
                "id": len(panels) + 1, "type": "timeseries", "title": panel.title, "datasource": datasource,
                "gridPos": {"x": index * width, "y": y, "w": width, "h": 8},
                "fieldConfig": {"defaults": {"unit": GRAFANA_UNITS[panel.unit]}, "overrides": []},
                "targets": [target(q.expr, q.legend, i) for i, q in enumerate(panel.queries)],
            })  # fmt: skip
        y += 8
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": ["temporal-dsql-deploy"], "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-30m", "to": "now"}, "refresh": "15s", "panels": panels, "templating": {"list": []},
    }  # fmt: skip


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


def write_vmui_dashboards(folder: Path) -> None:
    """Every dashboard as a vmui file in `folder` (emptied first: a removed dashboard disappears)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for dashboard in load_dashboards():
        text = json.dumps(vmui_dashboard(dashboard), indent=2) + "\n"
        (folder / f"{dashboard.uid}.json").write_text(text, encoding="utf-8")
