"""The metrics store's scrape configuration (Prometheus' format, which VictoriaMetrics reads too), from the
services of the model that expose metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import yaml

from temporal_dsql_deploy.runtime.model import Stack

MAX_SCRAPE_TIMEOUT = timedelta(seconds=10)


def scrape_config(stack: Stack, host: Callable[[str], str], interval: timedelta) -> str:
    """One job per scraped service, named after it; `host` says where a service is reached."""
    jobs = [
        {"job_name": name, "metrics_path": scrape.path,
         "static_configs": [{"targets": [f"{host(name)}:{scrape.port}"]}]}
        for name, scrape in stack.scrape_targets()
    ]  # fmt: skip
    timeout = min(interval, MAX_SCRAPE_TIMEOUT)
    document = {
        "global": {"scrape_interval": _seconds(interval), "scrape_timeout": _seconds(timeout)},
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _seconds(duration: timedelta) -> str:
    return f"{int(duration.total_seconds())}s"
