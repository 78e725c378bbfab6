"""Upstream Temporal's own persistence suites, run by the server module against the dsql plugin on the
tests' own dsql-local (the suites expect a database to themselves, and DSQL has one per cluster)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from temporal_dsql_deploy.components import Installer, TemporalServer, install_temporal_server
from temporal_dsql_deploy.config import Settings
from temporal_dsql_deploy.endpoint import local_ca_file
from temporal_dsql_deploy.schema import Applier, SchemaSource
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import StandIn, require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def suites_stand_in(isolated_stand_in: StandIn, settings: Settings) -> Settings:
    """The isolated stand-in, with the DSQL schema applied afresh."""
    server = TemporalServer(install_temporal_server(settings, Installer(print)))
    name = "dsql/v12/temporal"
    applier = Applier(isolated_stand_in.settings, SchemaSource.resolve(lambda: server, name, "", name), print)
    try:
        applier.setup("0.0", overwrite=True)
        applier.update()
    finally:
        applier.close()
    return isolated_stand_in.settings


def test_upstream_persistence_suites_pass_on_the_dsql_plugin(suites_stand_in: Settings) -> None:
    go = shutil.which("go")
    require(go is not None, "the go command is not installed")
    assert go is not None
    settings = suites_stand_in
    assert settings.dsql_local_secret_access_key is not None
    env = {**os.environ, "GOTOOLCHAIN": "go1.26.10", "DSQL_SUITES_ADDR": f"127.0.0.1:{settings.dsql_local_port}",
           "DSQL_SUITES_CA": str(local_ca_file(settings)), "AWS_ACCESS_KEY_ID": str(settings.dsql_local_access_key_id),
           "AWS_SECRET_ACCESS_KEY": settings.dsql_local_secret_access_key.get_secret_value(),
           "AWS_REGION": "us-east-1"}  # fmt: skip
    ran = subprocess.run([go, "test", "-count=1", "-v", "-run", "TestUpstream", "./internal/dsql/"],
                         cwd=PROJECT_ROOT / "server", env=env, capture_output=True, text=True, check=False,
                         timeout=1800)  # fmt: skip
    results: dict[str, dict[str, int]] = {}
    for outcome, suite in re.findall(r"^ {8}--- (PASS|FAIL|SKIP): TestUpstream\w+/(\w+)/", ran.stdout, re.MULTILINE):
        results.setdefault(suite, {"PASS": 0, "FAIL": 0, "SKIP": 0})[outcome] += 1
    for suite, counts in sorted(results.items()):
        print(f"{suite:<24} {counts['PASS']:3d} passed {counts['FAIL']:3d} failed {counts['SKIP']:3d} skipped")
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    assert len(results) >= 25  # every sqlplugin suite but visibility (Elasticsearch holds it), and queue v2
    assert sum(counts["PASS"] for counts in results.values()) >= 100
