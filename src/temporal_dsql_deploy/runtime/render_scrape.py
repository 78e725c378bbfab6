"""The metrics store's scrape configuration (Prometheus' format, which VictoriaMetrics reads too), from the
services of the model that expose metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import yaml

from temporal_dsql_deploy.runtime.model import Stack

MAX_SCRAPE_TIMEOUT = timedelta(seconds=10)


def scrape_config(stack: Stack, host: Callable[[str], str], interval: timedelta,
                  store_auth: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """One job per scraped service, named after it; `host` says where a service is reached. A service on several
    hosts is found by its name's addresses (Docker's DNS answers with every replica's). `store_auth`: the
    `basic_auth` section the metrics store's job needs when the store asks its own scraper for credentials."""
    jobs: list[dict[str, object]] = []
    for service, scrape in stack.scrape_targets():
        job: dict[str, object] = {"job_name": service.name, "metrics_path": scrape.path}
        if service.replicas != 1:  # several hosts, or none yet (a standby Region's)
            job["dns_sd_configs"] = [{"names": [host(service.name)], "type": "A", "port": scrape.port}]
        else:
            job["static_configs"] = [{"targets": [f"{host(service.name)}:{scrape.port}"]}]
        if store_auth is not None and scrape.of_the_store:
            job["basic_auth"] = dict(store_auth)
        jobs.append(job)
    timeout = min(interval, MAX_SCRAPE_TIMEOUT)
    document = {
        "global": {"scrape_interval": _seconds(interval), "scrape_timeout": _seconds(timeout)},
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _seconds(duration: timedelta) -> str:
    return f"{int(duration.total_seconds())}s"
