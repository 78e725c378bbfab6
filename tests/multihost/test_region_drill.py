"""The Region drill under steady load, both scenarios: the serving Region cut off whole (hosts and endpoint), and its
endpoint alone cut off with its hosts alive. Each time: failover to the other Region, load carried on there, the
first Region back and a fail-back; nothing acknowledged is lost, nothing runs twice, and each move's RTO is reported.
It runs on the several hosts' stack (tests/multihost: 3 history, 2 matching, 2 frontend, 1 worker host in each
Region); DRILL_FORM=long (nox -s region_drill_long) holds each phase longer at a higher rate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_dsql_deploy.load.region_drill import SCENARIOS, DrillPlan, run_drill
from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from tests.multihost.conftest import DRILLS, STANDBY

pytestmark = [pytest.mark.multihost, pytest.mark.regions]
FORMS = {
    "short": {"rate": 2.0, "before_s": 5.0, "isolated_s": 8.0, "on_other_s": 5.0, "after_s": 3.0},
    "long": {"rate": 4.0, "before_s": 30.0, "isolated_s": 30.0, "on_other_s": 60.0, "after_s": 30.0},
}


def test_the_standby_waits_at_no_hosts_on_its_regions_endpoint(several_hosts: DockerRuntime) -> None:
    settings = several_hosts.settings
    assert several_hosts.containers(f"temporal-history-{STANDBY}") == []
    stats = several_hosts.stand_in_admin("/stats")
    assert set(stats["endpoints"]) == {settings.active_region, STANDBY}
    assert stats["endpoints"][STANDBY]["connections"] == 0  # nothing runs there yet


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_drill_loses_nothing(several_hosts: DockerRuntime, scenario: str, tmp_path: Path) -> None:
    plan = DrillPlan(scenario, **FORMS[os.environ.get("DRILL_FORM", "short")])  # type: ignore[arg-type]
    result = run_drill(several_hosts, plan, tmp_path, print)
    DRILLS.append(result)
    assert result.problems == []
    assert result.started > 0
    assert (result.lost, result.duplicated, result.wrong_results, result.rpo) == (0, 0, 0, 0)
    assert result.completed == result.started
