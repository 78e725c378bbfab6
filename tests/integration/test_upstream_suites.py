"""Upstream Temporal's own persistence suites, run by the server module against the dsql plugin on the
tests' own dsql-local (the suites expect a database to themselves, and DSQL has one per cluster)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest

from temporal_dsql_deploy.database.endpoint import local_ca_file
from temporal_dsql_deploy.database.schema import Applier, SchemaSource
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import release
from temporal_dsql_deploy.temporal.installed import TemporalServer
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import StandIn, require

pytestmark = [pytest.mark.integration, pytest.mark.own_database]


@pytest.fixture
def suites_stand_in(isolated_stand_in: StandIn, settings: Settings) -> Settings:
    """The isolated stand-in, with the DSQL schema applied afresh for each run (the suites expect an empty
    database: the Nexus endpoint suite lists every endpoint, the shard suite reads shards back)."""
    server = TemporalServer(install_temporal_server(settings, Installer(print, project_root=PROJECT_ROOT)))
    name = "dsql/v12/temporal"
    applier = Applier(isolated_stand_in.settings, SchemaSource.resolve(lambda: server, name, "", name), print)
    try:
        applier.setup("0.0", overwrite=True)
        applier.update()
    finally:
        applier.close()
    return isolated_stand_in.settings


def _run_suites(settings: Settings, pattern: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, int]]]:
    go = shutil.which("go")
    require(go is not None, "the go command is not installed")
    assert go is not None
    assert settings.dsql_local_secret_access_key is not None
    env = {**os.environ, "GOTOOLCHAIN": "go1.26.10", "DSQL_SUITES_ADDR": f"127.0.0.1:{settings.dsql_local_port}",
           "DSQL_SUITES_CA": str(local_ca_file(settings)), "AWS_ACCESS_KEY_ID": str(settings.dsql_local_access_key_id),
           "AWS_SECRET_ACCESS_KEY": settings.dsql_local_secret_access_key.get_secret_value(),
           "AWS_REGION": "us-east-1"}  # fmt: skip
    flags = release(settings.temporal_version).go_flags()  # the suites of the release the stack runs
    ran = subprocess.run([go, "test", *flags, "-count=1", "-v", "-run", pattern, "./internal/dsql/"],
                         cwd=PROJECT_ROOT / "server", env=env, capture_output=True, text=True, check=False,
                         timeout=1800)  # fmt: skip
    results: dict[str, dict[str, int]] = {}
    for outcome, suite in re.findall(r"^ {8}--- (PASS|FAIL|SKIP): TestUpstream\w+/(\w+)/", ran.stdout, re.MULTILINE):
        results.setdefault(suite, {"PASS": 0, "FAIL": 0, "SKIP": 0})[outcome] += 1
    for suite, counts in sorted(results.items()):
        print(f"{suite:<26} {counts['PASS']:3d} passed {counts['FAIL']:3d} failed {counts['SKIP']:3d} skipped")
    return ran, results


def _failures(ran: subprocess.CompletedProcess[str]) -> str:
    """The failed tests and their errors first (a suite's log runs to megabytes), then the output's end."""
    lines = ran.stdout.splitlines()
    wanted = [i for i, line in enumerate(lines) if re.search(r"--- FAIL|Error:|panic:|_test\.go:\d+:", line)]
    picked = "\n".join("\n".join(lines[i : i + 4]) for i in wanted[:40])
    return f"{picked}\n...\n{ran.stdout[-3000:]}{ran.stderr[-2000:]}"


def test_upstream_persistence_suites_pass_on_the_dsql_plugin(suites_stand_in: Settings) -> None:
    ran, results = _run_suites(suites_stand_in, "TestUpstream|TestLive")
    assert ran.returncode == 0, _failures(ran)
    assert len(results) >= 33  # 25 sqlplugin suites and queue v2; shard, mutable state (+tasks), history
    # events, task queue (+tasks), queue v2 and Nexus endpoints from common/persistence/tests
    assert sum(counts["PASS"] for counts in results.values()) >= 250


def test_upstream_store_suites_absorb_injected_conflicts(suites_stand_in: Settings, isolated_stand_in: StandIn) -> None:
    """At 10% of commits failing with OC000, the plugin's replay keeps every store-level suite passing."""
    faults = f"{isolated_stand_in.admin_url}/faults"
    headers = isolated_stand_in.admin_headers
    httpx.post(faults, data={"conflict_rate": "0.1", "seed": "11"}, headers=headers, timeout=10).raise_for_status()
    try:
        ran, _ = _run_suites(suites_stand_in, "TestUpstreamPersistenceSuites")
        injected = httpx.get(faults, headers=headers, timeout=10).raise_for_status().json()["injected"]
    finally:
        httpx.post(faults, data={"conflict_rate": "0", "seed": "1"}, headers=headers, timeout=10).raise_for_status()
    print(f"injected commit conflicts absorbed: {injected}")
    assert injected > 0
    assert ran.returncode == 0, _failures(ran)
