"""Messages that point at the real cause: the network when AWS cannot be reached, and a tool's error line
rather than the several KB it printed around it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from temporal_dsql_deploy.cloud import aws
from temporal_dsql_deploy.cloud.infra import _preflight
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.temporal.visibility import TEMPLATE_NAME, verify_mapping

STS_URL = "https://sts.us-east-1.amazonaws.com/"
NETWORK_FAILURES = [
    EndpointConnectionError(endpoint_url=STS_URL),  # DNS or a refused connection
    ConnectTimeoutError(endpoint_url=STS_URL),
    ReadTimeoutError(endpoint_url=STS_URL),
    ProxyConnectionError(proxy_url="http://proxy.invalid:3128", error="refused"),
    SSLError(endpoint_url=STS_URL, error=OSError("certificate verify failed")),
    ConnectionClosedError(endpoint_url=STS_URL),
]


class Sts:
    """An STS client whose one call fails as botocore fails it."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def get_caller_identity(self) -> dict[str, str]:
        raise self.failure


@pytest.fixture
def fake_credentials(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    clean_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLETESTKEY01")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    clean_env.delenv("AWS_PROFILE", raising=False)
    clean_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return clean_env


@pytest.mark.parametrize("failure", NETWORK_FAILURES, ids=lambda failure: type(failure).__name__)
def test_a_network_failure_says_the_network_not_the_credentials(
    failure: Exception, fake_credentials: pytest.MonkeyPatch
) -> None:
    problem = aws.credential_problem("us-east-1", sts=Sts(failure))  # type: ignore[arg-type]
    assert problem is not None
    assert problem.problem.startswith("AWS STS could not be reached from this machine: ")
    assert str(failure) in problem.problem
    assert problem.fix == aws.NETWORK_FIX
    assert "configure credentials" not in f"{problem.problem} {problem.fix}"


def test_a_missing_profile_says_the_credentials(fake_credentials: pytest.MonkeyPatch) -> None:
    fake_credentials.setenv("AWS_PROFILE", "no-such-profile")
    problem = aws.credential_problem("us-east-1")
    assert problem is not None
    assert "no-such-profile" in problem.problem
    assert problem.fix == aws.CREDENTIAL_FIX


def test_deploy_preflight_on_an_unreachable_sts_endpoint_blames_the_network(
    fake_credentials: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    fake_credentials.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")  # a real refused connection
    fake_credentials.setenv("AWS_MAX_ATTEMPTS", "1")
    problems = _preflight(make_settings(AWS_REGION="us-east-1"))
    network = [problem for problem in problems if "could not be reached" in problem]
    assert len(network) == 1, problems
    assert "http://127.0.0.1:1" in network[0]
    assert network[0].endswith(aws.NETWORK_FIX)
    assert not any(aws.CREDENTIAL_FIX in problem for problem in problems)


def test_a_tool_that_prints_a_whole_template_around_its_error_is_shown_the_error() -> None:
    template = (
        '{"index_patterns": ["temporal_visibility_v1*"], "mappings": {' + '"f": {"type": "keyword"}, ' * 300 + "}}"
    )
    script = f"print({template!r}); import sys; sys.exit('error: failed to put index template: 400 Bad Request')"
    with pytest.raises(DeployError) as caught:
        run_tool([sys.executable, "-c", script], what="temporal-elasticsearch-tool setup-schema", fix="see above",
                 timeout_s=60)  # fmt: skip
    problem = caught.value.problem
    assert len(template) > 6000
    assert len(problem) < 800
    assert problem.endswith("error: failed to put index template: 400 Bad Request")
    assert f"({len(template) - 300:,} more characters)" in problem


def test_an_index_wrong_in_every_field_names_a_few_and_counts_them() -> None:
    fields = {f"Field{n:02}": {"type": "keyword"} for n in range(60)}

    def search_engine(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/_template/{TEMPLATE_NAME}":
            return httpx.Response(200, json={TEMPLATE_NAME: {"mappings": {"properties": fields}}})
        return httpx.Response(200, json={"other": {"mappings": {"properties": {}}}})

    client = httpx.Client(transport=httpx.MockTransport(search_engine), base_url="http://search")
    with client, pytest.raises(DeployError) as caught:
        verify_mapping(client, "other")
    problem = caught.value.problem
    assert "in 60 of 60 fields: Field00 (expected keyword, found missing)" in problem
    assert problem.endswith("Field04 (expected keyword, found missing) and 55 more")
    assert len(problem) < 400


def test_deploy_preflight_with_a_profile_that_does_not_exist_names_it(
    fake_credentials: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    fake_credentials.setenv("AWS_PROFILE", "no-such-profile")
    problems = _preflight(make_settings(AWS_REGION="us-east-1"))
    named = [problem for problem in problems if "no-such-profile" in problem]
    assert len(named) == 1, problems
    assert named[0].endswith(aws.CREDENTIAL_FIX)
