"""Two Regions of a peered DSQL cluster in the service model: the primary Region's Temporal hosts serve, a standby
set in the second Region waits at none on that Region's endpoint until `failover` makes it the serving one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import render_compose
from temporal_dsql_deploy.runtime.render_scrape import scrape_config
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import HostOf
from tests.unit.test_render_compose import validate_compose_schema

MakeSettings = Callable[..., Settings]
ROLES = ("history", "matching", "frontend", "worker")
STANDBY = "us-west-2"


def _compose(settings: Settings) -> dict[str, dict[str, object]]:
    document = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))
    services: dict[str, dict[str, object]] = document["services"]
    return services


def test_a_standby_region_is_another_region_and_serving_is_one_of_the_two(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="STANDBY_REGION=us-east-1 is the Region the stack serves from"):
        make_settings(STANDBY_REGION="us-east-1")
    with pytest.raises(ConfigError, match="SERVING_REGION=eu-west-1 is neither of the stack's Regions: give "
                                          "us-east-1 or us-west-2"):  # fmt: skip
        make_settings(STANDBY_REGION=STANDBY, SERVING_REGION="eu-west-1")
    with pytest.raises(ConfigError, match="STANDBY_FRONTEND_PORT and TEMPORAL_FRONTEND_PORT are both 7233"):
        make_settings(STANDBY_REGION=STANDBY, STANDBY_FRONTEND_PORT="7233")
    assert not make_settings(STANDBY_FRONTEND_PORT="7243", SERVING_REGION="us-east-1").serves_from_standby


def test_the_standby_set_waits_at_no_hosts_on_its_regions_endpoint(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(STANDBY_REGION=STANDBY, TEMPORAL_HISTORY_HOSTS="2")
    stack = build_stack(settings)
    for role in ROLES:
        primary, standby = stack.get(f"temporal-{role}"), stack.get(f"temporal-{role}-{STANDBY}")
        assert primary.replicas == settings.hosts(role) > 0
        assert standby.replicas == 0
        assert standby.runtimes == frozenset({Runtime.DOCKER})  # the local runtime runs one Region
        assert standby.environment["TEMPORAL_SQL_HOST"] == HostOf(f"dsql-local-{STANDBY}")
        assert standby.environment["TEMPORAL_SQL_PORT"] == "5436"
        assert standby.environment["AWS_REGION"] == STANDBY
        assert standby.environment["TEMPORAL_FRONTEND_HOST"] == HostOf(f"temporal-frontend-{STANDBY}")
        assert primary.environment["AWS_REGION"] == "us-east-1"
    assert stack.temporal_services() == [f"temporal-{role}" for role in ROLES]  # what restarts and upgrades move
    assert f"temporal-history-{STANDBY}" not in stack.in_runtime(Runtime.LOCAL).names

    rendered = tmp_path / "docker-compose.yml"
    rendered.write_text(render_compose(stack, settings, "amd64"), encoding="utf-8")
    assert validate_compose_schema(rendered).returncode == 0  # aliases and no hosts are Compose's own spelling
    services = _compose(settings)
    assert services[f"temporal-history-{STANDBY}"]["deploy"] == {"replicas": 0}
    assert services[f"temporal-frontend-{STANDBY}"]["ports"] == ["127.0.0.1:7243:7233"]  # published apart
    assert services["temporal-frontend"]["ports"] == ["127.0.0.1:7233:7233"]
    # One stand-in, two Regions' endpoints: the second has its own name (its certificate's, its tokens') and port.
    assert services["dsql-local"]["networks"] == {"default": {"aliases": [f"dsql-local-{STANDBY}"]}}
    command = " ".join(str(part) for part in services["dsql-local"]["command"])  # type: ignore[attr-defined]
    assert f"--peer-listen 0.0.0.0:5436 --peer-endpoint dsql-local-{STANDBY} --peer-region {STANDBY}" in command
    assert "--region us-east-1" in command
    scrape = yaml.safe_load(scrape_config(stack, lambda name: name, timedelta(seconds=15)))
    standby_job = next(job for job in scrape["scrape_configs"] if job["job_name"] == f"temporal-history-{STANDBY}")
    assert standby_job["dns_sd_configs"][0]["names"] == [f"temporal-history-{STANDBY}"]  # none yet, found when up


def test_serving_from_the_standby_moves_the_hosts_and_every_client(make_settings: MakeSettings) -> None:
    settings = make_settings(STANDBY_REGION=STANDBY, SERVING_REGION=STANDBY)
    stack = build_stack(settings)
    for role in ROLES:
        assert stack.get(f"temporal-{role}").replicas == 0
        assert stack.get(f"temporal-{role}-{STANDBY}").replicas == 1
    assert stack.temporal_services() == [f"temporal-{role}-{STANDBY}" for role in ROLES]
    for client in ("temporal-ui", "namespace-setup"):
        assert f"temporal-frontend-{STANDBY}" in stack.get(client).depends_on
        assert HostOf(f"temporal-frontend-{STANDBY}") in stack.get(client).environment.values()
    assert settings.frontend_address == "127.0.0.1:7243"
    assert _compose(settings)["temporal-history"]["deploy"] == {"replicas": 0}


def test_one_region_renders_as_before(make_settings: MakeSettings) -> None:
    services = _compose(make_settings())
    assert not any(name.endswith(STANDBY) for name in services)
    assert "networks" not in services["dsql-local"]
    assert "deploy" not in services["temporal-history"]


def test_the_standby_set_needs_dsql_and_the_peers_endpoint(make_settings: MakeSettings) -> None:
    with pytest.raises(
        ConfigError, match="SERVING_REGION=us-west-2 needs the standby Region's hosts, which run on DSQL"
    ):
        make_settings(STANDBY_REGION=STANDBY, SERVING_REGION=STANDBY, TEMPORAL_SQL_PLUGIN="postgres12_pgx")
    postgres = make_settings(SERVING_REGION="us-east-1")
    assert not postgres.has_standby_set
    assert not any(name.endswith(STANDBY) for name in build_stack(postgres).names)
    peer = "zyxwvutsrqponmlkjihgfedcba.dsql.us-west-2.on.aws"
    cluster = make_settings(TEMPORAL_SQL_PLUGIN="dsql", TEMPORAL_SQL_HOST="abc.dsql.us-east-1.on.aws",
                            TEMPORAL_SQL_PORT="5432", TEMPORAL_SQL_TLS_ENABLED="true", TEMPORAL_SQL_IAM_AUTH="true",
                            AWS_REGION="us-east-1", STANDBY_SQL_HOST=peer)  # fmt: skip
    standby = build_stack(cluster).get(f"temporal-history-{STANDBY}")
    assert (standby.environment["TEMPORAL_SQL_HOST"], standby.environment["AWS_REGION"]) == (peer, STANDBY)
    assert standby.environment["TEMPORAL_SQL_PORT"] == "5432"
