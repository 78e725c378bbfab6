"""The AWS control plane through boto3: credentials, Region support, cluster status. Never a data-plane secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    WaiterError,
)
from botocore.exceptions import ConnectionError as AwsConnectionError

from temporal_dsql_deploy.errors import DeployError

if TYPE_CHECKING:
    from boto3 import Session
    from mypy_boto3_dsql import AuroraDSQLClient
    from mypy_boto3_sts import STSClient

ACTIVE_TIMEOUT_S = 900
_WAITER_DELAY_S = 5
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
CREDENTIAL_FIX = "configure credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
# botocore's failures to reach an endpoint at all: DNS, refused or closed connections, timeouts, proxies, TLS.
NETWORK_ERRORS = (AwsConnectionError, HTTPClientError)
NETWORK_FIX = ("check this machine's network: DNS, a firewall or a proxy (HTTPS_PROXY) must let it reach AWS; "
               "the credentials were not checked")  # fmt: skip


def _session(region: str | None = None) -> Session:
    """A boto3 session; boto3 is imported here, when AWS is first used, as importing it is a fifth of every task's
    start-up."""
    import boto3  # noqa: PLC0415

    return boto3.Session(region_name=region)


def _dsql_client(region: str) -> AuroraDSQLClient:
    return _session(region).client("dsql")


def credential_problem(region: str, sts: STSClient | None = None) -> DeployError | None:
    """Why AWS cannot be used with the current credentials, with the fix for that cause, or None when they work
    (`sts`: for tests)."""
    try:
        session = _session(region)
        if session.get_credentials() is None:
            return DeployError("no AWS credentials were found (environment, shared config, or instance role)",
                               CREDENTIAL_FIX)  # fmt: skip
        (sts or session.client("sts")).get_caller_identity()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        expired = code in _EXPIRED_CODES
        return DeployError("the AWS credentials have expired" if expired else f"AWS refused the credentials ({code})",
                           CREDENTIAL_FIX)  # fmt: skip
    except NETWORK_ERRORS as exc:
        return DeployError(f"AWS STS could not be reached from this machine: {exc}", NETWORK_FIX)
    except BotoCoreError as exc:  # none found, a profile that does not exist, a credential provider that fails
        return DeployError(f"no usable AWS credentials: {exc}", CREDENTIAL_FIX)
    return None


def region_problem(region: str) -> str | None:
    """Why `region` is not an AWS Region at all, or None (botocore's offline partition data)."""
    try:
        known = _session().get_available_regions("ec2")
    except BotoCoreError:  # an AWS configuration that cannot be read (AWS_PROFILE naming no profile): the
        return None  # credential check names it, with its fix
    if region not in known:
        return f"{region!r} is not an AWS Region (for example: {', '.join(sorted(known)[:6])}, ...)"
    return None


def dsql_problem(region: str) -> str | None:
    """Why DSQL cannot be used in `region` with working credentials, or None (one read-only call)."""
    try:
        _dsql_client(region).list_clusters(maxResults=1)
    except EndpointConnectionError:
        return f"Aurora DSQL has no endpoint in {region} (the service is not offered there)"
    except NETWORK_ERRORS as exc:
        return f"Aurora DSQL in {region} could not be reached from this machine ({exc}): {NETWORK_FIX}"
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return f"AWS refused to list DSQL clusters in {region} ({code}): the credentials need dsql:ListClusters"
    return None


@dataclass(frozen=True)
class ClusterInfo:
    identifier: str
    status: str
    deletion_protection: bool
    tags: dict[str, str]


def describe_cluster(identifier: str, region: str) -> ClusterInfo:
    client = _dsql_client(region)
    try:
        cluster = client.get_cluster(identifier=identifier)
        tags = client.list_tags_for_resource(resourceArn=cluster["arn"]).get("tags", {})
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise DeployError(f"there is no DSQL cluster {identifier} in {region}",
                              "check the identifier and AWS_REGION: `aws dsql list-clusters --region "
                              f"{region}`") from None  # fmt: skip
        denied = code == "AccessDeniedException"
        fix = "the credentials need dsql:GetCluster and dsql:ListTagsForResource" if denied else CREDENTIAL_FIX
        raise DeployError(f"cannot read DSQL cluster {identifier} in {region}: {exc}", fix) from None
    except NETWORK_ERRORS as exc:
        raise DeployError(f"cannot reach Aurora DSQL in {region}: {exc}", NETWORK_FIX) from None
    return ClusterInfo(
        identifier=identifier,
        status=str(cluster["status"]),
        deletion_protection=bool(cluster.get("deletionProtectionEnabled", False)),
        tags=dict(tags),
    )


def wait_until_active(identifier: str, region: str, timeout_s: int = ACTIVE_TIMEOUT_S) -> None:
    """Block until the cluster is ACTIVE, at most `timeout_s`."""
    waiter = _dsql_client(region).get_waiter("cluster_active")
    try:
        waiter.wait(
            identifier=identifier,
            WaiterConfig={"Delay": _WAITER_DELAY_S, "MaxAttempts": max(1, timeout_s // _WAITER_DELAY_S)},
        )
    except WaiterError as exc:
        raise DeployError(
            f"DSQL cluster {identifier} in {region} was not ACTIVE within {timeout_s}s: {exc}",
            f"check it with `aws dsql get-cluster --identifier {identifier} --region {region}`",
        ) from None
