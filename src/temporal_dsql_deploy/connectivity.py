"""`invoke check-dsql`: can the stack reach its persistence endpoint, and is the schema there?

Each failure is told apart — missing or expired AWS credentials, a Region that does not match the
endpoint, an endpoint that cannot be reached, a TLS failure, refused authentication, a missing schema —
because each has a different fix.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field

import psycopg

from temporal_dsql_deploy.cloud import aws
from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import Endpoint, persistence_endpoint
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.config import Settings

LATENCY_SAMPLES = 5
_ENDPOINT_REGION = re.compile(r"^[a-z0-9]+\.dsql\.([a-z0-9-]+)\.on\.aws$")
_UNREACHABLE = ("could not translate host name", "connection refused", "timeout expired", "no route to host",
                "network is unreachable", "name or service not known")  # fmt: skip
_TLS = ("ssl", "certificate", "tls")
_AUTH = ("password authentication failed", "access denied", "authentication failed", "token")


@dataclass
class CheckReport:
    steps: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    schema_version: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)


def _classify(endpoint: Endpoint, exc: psycopg.OperationalError) -> DeployError:
    message = str(exc).strip()
    lower = message.lower()
    where = endpoint.address
    first_line = message.splitlines()[0] if message else type(exc).__name__
    if any(marker in lower for marker in _UNREACHABLE):
        return DeployError(f"endpoint {where} is unreachable: {first_line}",
                           "check TEMPORAL_SQL_HOST/PORT, the cluster's status and the network path")  # fmt: skip
    if any(marker in lower for marker in _TLS):
        fix = "DSQL needs TLS (TEMPORAL_SQL_TLS_ENABLED=true) and a certificate that verifies"
        return DeployError(f"TLS with {where} failed: {first_line}", fix)
    if any(marker in lower for marker in _AUTH):
        fix = "check the IAM permissions (dsql:DbConnectAdmin) and that the credentials are current"
        return DeployError(f"{where} refused authentication as {endpoint.user}: {first_line}", fix)
    return DeployError(f"cannot connect to {where}: {first_line}", "see the message above")


def check(settings: Settings) -> CheckReport:
    report = CheckReport()
    endpoint = persistence_endpoint(settings)
    if endpoint.iam:
        region = endpoint.region or ""
        endpoint_region = _ENDPOINT_REGION.match(endpoint.host)
        if endpoint_region and endpoint_region.group(1) != region:
            raise DeployError(
                f"AWS_REGION={region} but the endpoint {endpoint.host} is in {endpoint_region.group(1)}",
                f"set AWS_REGION={endpoint_region.group(1)}; tokens are signed for one Region",
            )
        dsql.require_local_credentials(settings, endpoint)
        if endpoint.access_key_id is None:  # the AWS SDK's own credentials: ask STS whether they work
            problem = aws.credential_problem(region)
            if problem:
                raise problem
        dsql.auth_token(endpoint)  # made locally; proves the credentials can sign, and is dropped
        report.steps.append(f"IAM auth token generated for {endpoint.host} in {region}")
    try:
        with dsql.connect(settings) as conn:
            tls = "TLS verify-full" if endpoint.tls else "no TLS"
            report.steps.append(f"connected to {endpoint.address} as {endpoint.user} ({tls})")
            for _ in range(LATENCY_SAMPLES):
                started = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                report.latencies_ms.append((time.perf_counter() - started) * 1000)
            exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            if exists and exists[0]:
                row = conn.execute("SELECT curr_version FROM schema_version WHERE version_partition = 0 "
                                   "AND db_name = %s", (endpoint.database,)).fetchone()  # fmt: skip
                report.schema_version = str(row[0]) if row else None
    except psycopg.OperationalError as exc:
        raise _classify(endpoint, exc) from None
    report.steps.append(
        f"SELECT 1 round trip over {LATENCY_SAMPLES} samples: median {report.median_ms:.1f} ms, "
        f"min {min(report.latencies_ms):.1f} ms, max {max(report.latencies_ms):.1f} ms"
    )
    if report.schema_version is None:
        raise DeployError(
            f"connected, but {endpoint.database} has no Temporal schema (no schema_version)",
            "run `invoke schema.setup --version 0.0` and `invoke schema.update`",
        )
    report.steps.append(f"schema version {report.schema_version}")
    return report
