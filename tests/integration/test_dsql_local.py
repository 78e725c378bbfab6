"""The local DSQL profile for real: the schema tools and check-dsql through dsql-local, and its conformance table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import local_ca_file, persistence_endpoint
from temporal_dsql_deploy.database.schema import Applier, SchemaSource, shipped_schemas, split_statements
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.units.temporal_server import install_temporal_server
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import LATEST, RELEASES
from temporal_dsql_deploy.temporal.installed import TemporalServer
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import PEER_REGION, StandIn, require

pytestmark = [pytest.mark.integration, pytest.mark.own_database]
DSQL_SCHEMA = "dsql/v12/temporal"


@pytest.fixture(scope="module")
def dsql_settings(isolated_stand_in: StandIn) -> Settings:
    """The local DSQL profile, on the tests' own stand-in: these tests drop tables and inject faults."""
    return isolated_stand_in.settings


@pytest.fixture
def faults(isolated_stand_in: StandIn) -> Iterator[httpx.Client]:
    """A client of the stand-in's admin API (/faults), with its key."""
    with httpx.Client(base_url=isolated_stand_in.admin_url, headers=isolated_stand_in.admin_headers,
                      timeout=10) as client:  # fmt: skip
        yield client
        client.post("/faults", data={"conflict_rate": "0", "seed": "1"}).raise_for_status()


def _applier(settings: Settings, name: str = DSQL_SCHEMA) -> Applier:
    server = TemporalServer(install_temporal_server(settings, Installer(print, project_root=PROJECT_ROOT)))
    return Applier(settings, SchemaSource.resolve(lambda: server, name, "", name), print)


def _async_indexes() -> int:
    root = shipped_schemas() / DSQL_SCHEMA / "versioned"
    return sum(" ASYNC " in s.sql.upper() for path in root.rglob("*.sql") for s in split_statements(path))


def test_dsql_schema_applies_through_the_stand_in(dsql_settings: Settings) -> None:
    endpoint = persistence_endpoint(dsql_settings)
    assert (endpoint.port, endpoint.user, endpoint.database, endpoint.tls, endpoint.iam) == (
        dsql_settings.dsql_local_port, "admin", "postgres", True, True)  # fmt: skip
    applier = _applier(dsql_settings)
    try:
        applier.setup("0.0", overwrite=True)
        result = applier.update()
        assert result.to_version == applier.source.latest_version
        assert result.index_jobs == _async_indexes() > 0  # every ASYNC index waited for through sys.wait_for_job
        assert applier.validate().ok
    finally:
        applier.close()


def test_injected_conflicts_are_retried(dsql_settings: Settings, faults: httpx.Client) -> None:
    faults.post("/faults", data={"conflict_rate": "0.1", "seed": "7"}).raise_for_status()
    applier = _applier(dsql_settings)
    try:
        setup = applier.setup("0.0", overwrite=True)
        setup_retries = setup.retries
        result = applier.update()
    finally:
        applier.close()
    injected = faults.get("/faults").raise_for_status().json()["injected"]
    retries = setup_retries + result.retries
    print(f"10% injected commit conflicts: {injected} injected, {retries} retries, version {result.to_version}")
    assert injected > 0
    assert retries == injected  # every injected conflict cost exactly one retry, and nothing failed
    assert result.to_version == applier.source.latest_version


def test_stock_postgresql_schema_is_refused(dsql_settings: Settings) -> None:
    applier = _applier(dsql_settings, "postgresql/v12/temporal")
    try:
        with pytest.raises(DeployError, match="bytea, which DSQL refuses in a key"):
            applier.setup(applier.source.latest_version, overwrite=False)
    finally:
        applier.close()
    # And the stand-in itself refuses the first table of it, naming the column.
    first_table = next(s.sql for s in split_statements(applier.source.base_file) if "BYTEA" in s.sql.upper())
    with dsql.connect(dsql_settings) as conn, pytest.raises(psycopg.errors.FeatureNotSupported, match="bytea"):
        conn.execute(first_table)


def _invoke(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """A task in the local DSQL profile, on the stand-in `settings` name."""
    env = {**os.environ, "TEMPORAL_SQL_PLUGIN": "dsql", "DSQL_LOCAL_PORT": str(settings.dsql_local_port)}
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=PROJECT_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip


def test_update_resumes_after_a_kill(dsql_settings: Settings) -> None:
    applier = _applier(dsql_settings)
    try:
        applier.setup("0.0", overwrite=True)
    finally:
        applier.close()
    killed = _invoke(dsql_settings, "schema.update")
    time.sleep(0.8)  # part-way through the 45 statements
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    resumed = _invoke(dsql_settings, "schema.update")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert LATEST.schema_version in out
    validated = _invoke(dsql_settings, "schema.validate")
    out, err = validated.communicate(timeout=120)
    assert validated.returncode == 0, err
    assert "schema is current" in out


def test_update_applies_the_steps_a_release_runs_on_and_records_each(dsql_settings: Settings) -> None:
    """On the oldest release the schema stops at its version; on the newest, update applies only what follows."""
    source = SchemaSource(shipped_schemas() / DSQL_SCHEMA)
    oldest = dsql_settings.model_copy(update={"temporal_version": RELEASES[0].version})
    first, second = Applier(oldest, source, print), Applier(dsql_settings, source, print)
    try:
        first.setup("0.0", overwrite=True)
        assert first.update().versions_applied == [RELEASES[0].schema_version]
        assert first.validate().ok
        tables = {str(row[0]) for row in first.run("SELECT table_name FROM information_schema.tables")}
        assert "executions" in tables
        assert "current_chasm_executions" not in tables  # 1.31's table
        later = [m.version for m in source.migrations() if m.version != RELEASES[0].schema_version]
        assert second.update().versions_applied == later
        assert second.validate().ok
        recorded = second.run("SELECT old_version, new_version FROM schema_update_history ORDER BY update_time")
        assert [(str(old), str(new)) for old, new in recorded] == [
            ("0.0", "0.0"),
            ("0.0", RELEASES[0].schema_version),
            (RELEASES[0].schema_version, later[0]),
        ]
        assert second.update().versions_applied == []
    finally:
        first.close()
        second.close()


def test_check_dsql_through_the_stand_in(dsql_settings: Settings) -> None:
    checked = _invoke(dsql_settings, "check-dsql")
    out, err = checked.communicate(timeout=120)
    assert checked.returncode == 0, err
    assert f"connected to 127.0.0.1:{dsql_settings.dsql_local_port} as admin (TLS verify-full)" in out
    assert f"schema version {LATEST.schema_version}" in out


def test_a_bad_token_is_refused_without_echo(dsql_settings: Settings) -> None:
    wrong = dsql_settings.model_copy(update={"dsql_local_secret_access_key": SecretStr("not-the-secret")})
    token = dsql.auth_token(persistence_endpoint(wrong))
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=dsql_settings.dsql_local_port, user="admin", dbname="postgres",
                        password=token, sslmode="verify-full", sslrootcert=str(local_ca_file(dsql_settings)),
                        connect_timeout=10).close()  # fmt: skip
    assert "IAM token is invalid or expired" in str(refused.value)
    assert token not in str(refused.value)
    assert "X-Amz-Signature" not in str(refused.value)
    # (What the stand-in logs for a refusal is its verifier's reason, which the Go tests show never holds the
    # token; the supervisor writes service logs in 4 KiB blocks, so the log is not read here.)


def _stats(admin: httpx.Client) -> tuple[int, int, dict[str, int]]:
    stats = admin.get("/stats").raise_for_status().json()
    return int(stats["round_trips"]), int(stats["writing_commits"]), dict(stats["round_trips_by_kind"])


def test_latency_profile_delays_each_round_trip_and_counts_it(dsql_settings: Settings, faults: httpx.Client) -> None:
    """The stand-in is this module's alone, so its counts are exactly this client's batches."""
    refused = faults.post("/latency", data={"profile": "mars"})
    assert refused.status_code == 400
    assert "single-region" in refused.text
    profile = faults.post("/latency", data={"profile": "multi-region"}).raise_for_status().json()
    try:
        with dsql.connect(dsql_settings) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS latency_probe (id int PRIMARY KEY, value int)")
            conn.execute("DELETE FROM latency_probe")
            before = _stats(faults)
            started = time.monotonic()
            with conn.transaction():  # BEGIN, one INSERT, COMMIT: three batches, one commit that wrote
                conn.execute("INSERT INTO latency_probe VALUES (%s, %s)", (1, 1))
            writing = time.monotonic() - started
            after_write = _stats(faults)
            started = time.monotonic()
            with conn.transaction():
                assert conn.execute("SELECT value FROM latency_probe WHERE id = 1").fetchone() == (1,)
            reading = time.monotonic() - started
            after_read = _stats(faults)
    finally:
        faults.post("/latency", data={"profile": "none"}).raise_for_status()
    assert (after_write[0] - before[0], after_write[1] - before[1]) == (3, 1)
    assert (after_read[0] - after_write[0], after_read[1] - after_write[1]) == (3, 0)
    by_kind = {kind: after_write[2][kind] - before[2][kind] for kind in ("begin", "write", "commit", "read")}
    assert by_kind == {"begin": 1, "write": 1, "commit": 1, "read": 0}
    floor = 1 - float(profile["jitter"])  # every delay is drawn within ±jitter of its value
    round_trip_s, commit_s = profile["round_trip_ms"] / 1000 * floor, profile["commit_ms"] / 1000 * floor
    print(f"multi-region: a writing transaction {writing * 1000:.1f} ms, a reading one {reading * 1000:.1f} ms")
    assert writing >= 3 * round_trip_s + commit_s
    assert reading >= 3 * round_trip_s


def test_two_regions_serve_one_store_and_an_isolated_one_refuses_writes(isolated_stand_in: StandIn,
                                                                         faults: httpx.Client) -> None:  # fmt: skip
    east, west = isolated_stand_in.settings, isolated_stand_in.peer_settings
    with dsql.connect(east) as a, dsql.connect(west) as b:
        a.execute("CREATE TABLE IF NOT EXISTS region_probe (id int PRIMARY KEY, region text)")
        a.execute("DELETE FROM region_probe")
        a.execute("INSERT INTO region_probe VALUES (1, 'east')")
        assert b.execute("SELECT region FROM region_probe WHERE id = 1").fetchone() == ("east",)  # one store
        faults.post("/isolation", data={"region": "us-east-1", "isolated": "true"}).raise_for_status()
        try:
            with pytest.raises(psycopg.Error) as refused:
                a.execute("INSERT INTO region_probe VALUES (2, 'east')")
            assert refused.value.sqlstate == "08006"
            assert "us-east-1 has lost contact with its peer Region and the witness" in str(refused.value)
            with pytest.raises(psycopg.Error), a.transaction():  # buffered until the commit, which fails
                a.execute("INSERT INTO region_probe VALUES (3, 'east')")
            b.execute("INSERT INTO region_probe VALUES (4, 'west')")  # the Region with the witness serves on
            rows = a.execute("SELECT id FROM region_probe ORDER BY id").fetchall()
        finally:
            faults.post("/isolation", data={"region": "us-east-1", "isolated": "false"}).raise_for_status()
        assert rows == [(1,), (4,)]  # nothing the isolated Region refused was written
        a.execute("INSERT INTO region_probe VALUES (5, 'east')")  # reconnected: it writes again
        assert b.execute("SELECT count(*) FROM region_probe").fetchone() == (3,)
    stats = faults.get("/stats").raise_for_status().json()
    assert set(stats["endpoints"]) == {"us-east-1", PEER_REGION}
    # Each endpoint takes only tokens made for its own host and Region.
    crossed = west.model_copy(update={"aws_region": "us-east-1"})
    with pytest.raises(psycopg.OperationalError, match="IAM token is invalid or expired"):
        dsql.connect(crossed).close()


def test_conformance_table_and_resilience(dsql_settings: Settings) -> None:
    """cases.yaml and the abuse tests, run by the stand-in's own Go tests against the running stand-in."""
    go = shutil.which("go")
    require(go is not None, "the go command is not installed")
    assert go is not None
    endpoint = persistence_endpoint(dsql_settings)
    assert endpoint.secret_access_key is not None
    env = {
        **os.environ,
        "GOTOOLCHAIN": "go1.26.10",
        "DSQL_LOCAL_ADDR": endpoint.address,
        "DSQL_LOCAL_CA": str(endpoint.ca_file),
        "AWS_ACCESS_KEY_ID": str(endpoint.access_key_id),
        "AWS_SECRET_ACCESS_KEY": endpoint.secret_access_key.get_secret_value(),
        "AWS_REGION": str(endpoint.region),
    }
    ran = subprocess.run([go, "test", "-count=1", "-v", "./conformance/"], cwd=PROJECT_ROOT / "dsql-local", env=env,
                         capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    summary = [line for line in ran.stdout.splitlines() if line.startswith("conformance:")]
    print("\n".join(summary))
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert summary, ran.stdout[-2000:]
    assert ", 0 failed" in summary[0]
