"""`invoke top`: the dashboards' key figures, live in the terminal, for a shell without a browser."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from temporal_dsql_deploy.observability.dashboards import Dashboard, Unit, load_dashboards
from temporal_dsql_deploy.observability.store import MetricsStore


@dataclass(frozen=True)
class Reading:
    dashboard: str
    title: str
    value: float | None
    unit: Unit


@dataclass(frozen=True)
class Target:
    job: str
    up: bool


def format_value(value: float | None, unit: Unit) -> str:
    """A figure as people read it: rates per second, durations in ms or s, sizes in binary units."""
    if value is None:
        return "-"
    formats: dict[str, Callable[[float], str]] = {
        "ops": lambda v: f"{v:,.1f}/s",
        "s": lambda v: f"{v * 1000:,.0f} ms" if v < 1 else f"{v:,.2f} s",
        "bytes": _binary_size,
        "percent": lambda v: f"{v * 100:.1f}%",
        "status": lambda v: "yes" if v >= 1 else "no",
    }
    return formats.get(unit, _plain)(value)


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _binary_size(value: float) -> str:
    for suffix in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {suffix}" if suffix == "B" else f"{value:,.1f} {suffix}"
        value /= 1024
    return f"{value:,.1f} GiB"


def read(store: MetricsStore, dashboards: list[Dashboard]) -> tuple[list[Reading], list[Target]]:
    readings = [Reading(d.title, f.title, store.value(f.expr), f.unit) for d in dashboards for f in d.figures]
    targets = sorted((Target(s.labels.get("job", "?"), s.value == 1) for s in store.query("up")),
                     key=lambda target: target.job)  # fmt: skip
    return readings, targets


def render(readings: list[Reading], targets: list[Target], source: str) -> Group:
    figures = Table(title=f"Key figures from {source}", title_justify="left", expand=False)
    figures.add_column("dashboard", style="dim")
    figures.add_column("figure")
    figures.add_column("value", justify="right", style="bold")
    previous = ""
    for reading in readings:
        figures.add_row(reading.dashboard if reading.dashboard != previous else "", reading.title,
                        format_value(reading.value, reading.unit))  # fmt: skip
        previous = reading.dashboard
    scraped = Table(title="Scrape targets", title_justify="left")
    scraped.add_column("service")
    scraped.add_column("up")
    for target in targets:
        scraped.add_row(target.job, "[green]up[/]" if target.up else "[red]down[/]")
    return Group(figures, scraped)


def watch(store: MetricsStore, console: Console, interval_s: float, rounds: int | None) -> None:
    """Redraw every `interval_s` until interrupted, or `rounds` times; on a pipe, print each round instead."""
    dashboards = load_dashboards()

    def frames() -> Iterator[Group]:
        count = 0
        while rounds is None or count < rounds:
            if count:
                time.sleep(interval_s)
            yield render(*read(store, dashboards), store.base_url)
            count += 1

    try:
        if not console.is_terminal or rounds == 1:
            for frame in frames():
                console.print(frame)
            return
        with Live(console=console, auto_refresh=False) as live:
            for frame in frames():
                live.update(frame, refresh=True)
    except KeyboardInterrupt:  # the way out of a live view, not a failure
        return
