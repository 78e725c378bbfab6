"""check-dsql's distinct failures, and IAM tokens that never leave the process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from temporal_dsql_deploy.cloud import aws
from temporal_dsql_deploy.connectivity import check
from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import persistence_endpoint
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import DSQL, PROJECT_ROOT

MakeSettings = Callable[..., Settings]
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLETESTKEY01", "AWS_SECRET_ACCESS_KEY": "example-secret"}


@pytest.fixture
def no_aws_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return clean_env


def test_token_is_a_locally_signed_admin_connect_url(
    make_settings: MakeSettings, no_aws_files: pytest.MonkeyPatch
) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        no_aws_files.setenv(name, value)
    token = dsql.auth_token(persistence_endpoint(make_settings(**DSQL)))
    assert token.startswith(DSQL["TEMPORAL_SQL_HOST"])
    assert "Action=DbConnectAdmin" in token
    assert "X-Amz-Signature=" in token
    assert dsql.auth_token(persistence_endpoint(make_settings(**DSQL))) != ""


def test_a_custom_role_gets_a_db_connect_token(make_settings: MakeSettings, no_aws_files: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        no_aws_files.setenv(name, value)
    endpoint = replace(persistence_endpoint(make_settings(**DSQL)), user="temporal_service")
    token = dsql.auth_token(endpoint)
    assert "Action=DbConnect&" in token
    assert "DbConnectAdmin" not in token


def test_missing_credentials_are_named(make_settings: MakeSettings, no_aws_files: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeployError, match="no AWS credentials"):
        check(make_settings(**DSQL))


def test_expired_credentials_are_named(no_aws_files: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        no_aws_files.setenv(name, value)
    sts = boto3.client("sts", region_name="us-east-1")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403)
        problem = aws.credential_problem("us-east-1", sts=sts)
        assert problem is not None
        assert problem.problem == "the AWS credentials have expired"
        assert problem.fix == aws.CREDENTIAL_FIX


def test_region_that_does_not_match_the_endpoint(make_settings: MakeSettings, no_aws_files: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeployError) as caught:
        check(make_settings(**{**DSQL, "AWS_REGION": "us-west-2"}))
    assert "us-west-2" in str(caught.value)
    assert caught.value.fix is not None
    assert "AWS_REGION=us-east-1" in caught.value.fix


def test_unreachable_endpoint(make_settings: MakeSettings) -> None:
    with pytest.raises(DeployError, match="unreachable"):
        check(make_settings(TEMPORAL_SQL_HOST="127.0.0.1", TEMPORAL_SQL_PORT="1", TEMPORAL_SQL_PLUGIN="postgres12_pgx"))


@pytest.fixture
def sts_endpoint() -> Iterator[str]:
    """A local moto server standing in for AWS STS (so the credential check passes offline)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_token_never_reaches_output_or_files(
    no_aws_files: pytest.MonkeyPatch, tmp_path: Path, sts_endpoint: str
) -> None:
    """check-dsql with IAM on against a closed port: the token is made, the connect fails, the token is nowhere."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(FAKE_CREDENTIALS)
    env.update({**DSQL, "TEMPORAL_SQL_PORT": "1", "STACK_DIR": str(tmp_path), "AWS_ENDPOINT_URL_STS": sts_endpoint})
    env["TEMPORAL_SQL_HOST"] = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws.invalid"
    result = subprocess.run([sys.executable, "-m", "invoke", "check-dsql"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert result.returncode != 0
    combined = result.stdout + result.stderr
    assert "unreachable" in combined, combined  # it got as far as connecting, with a token in hand
    assert "X-Amz-Signature" not in combined
    assert "DbConnectAdmin&" not in combined
    leaked = [path for path in [*_checkout_logs(), *tmp_path.rglob("*")] if "X-Amz-Signature" in _text(path)]
    assert leaked == []


def _checkout_logs() -> list[Path]:
    """The checkout's logs this command could have written: not those of the test sessions (`.nox`) or stacks
    (`.stack*`) that the other test lane runs meanwhile, which write and delete theirs as it goes (nor `.git`)."""
    logs = []
    for directory, subdirectories, files in os.walk(PROJECT_ROOT):
        subdirectories[:] = [name for name in subdirectories if name not in {".nox", ".git"}
                             and not name.startswith(".stack")]  # fmt: skip
        logs += [Path(directory, name) for name in files if name.endswith(".log")]
    return logs


def _text(path: Path) -> str:
    """A file's text, or "" when it is no file (any more)."""
    try:
        return path.read_text(encoding="utf-8", errors="ignore") if path.is_file() else ""
    except FileNotFoundError:
        return ""
