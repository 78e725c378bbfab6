"""Queries against the stack's metrics store (VictoriaMetrics or Prometheus: the same HTTP query API)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from temporal_dsql_deploy.errors import DeployError

QUERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class MetricsStore:
    def __init__(self, base_url: str, client: httpx.Client | None = None,
                 auth: tuple[str, str] | None = None) -> None:  # fmt: skip
        """`auth`: the basic-auth user and password of a store that asks for them (the local stack's)."""
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=QUERY_TIMEOUT_S, auth=auth)

    def query(self, expr: str) -> list[Sample]:
        """An instant PromQL query; a bad expression is an error naming it."""
        try:
            response = self._client.get(f"{self.base_url}/api/v1/query", params={"query": expr})
        except httpx.HTTPError as exc:
            raise DeployError(
                f"the metrics store at {self.base_url} did not answer ({type(exc).__name__})",
                "start the stack with `invoke up`; `invoke status` shows the metrics service",
            ) from None
        if response.status_code == httpx.codes.UNAUTHORIZED:
            raise DeployError(
                f"the metrics store at {self.base_url} refused the credentials of the query",
                "use the STACK_DIR of the stack that runs there (its control keys are kept in it)",
            )
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != httpx.codes.OK or body.get("status") != "success":
            detail = body.get("error") or response.text[:200]
            raise DeployError(f"the metrics store refused the query {expr!r}: {detail}",
                              "fix the expression (PromQL)")  # fmt: skip
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [Sample({}, float(result[1]))]
        return [Sample(dict(item["metric"]), float(item["value"][1])) for item in result]

    def value(self, expr: str) -> float | None:
        """The expression's single number, or None when it has no data (no series, or not a number)."""
        samples = self.query(expr)
        if not samples or math.isnan(samples[0].value):
            return None
        return sum(sample.value for sample in samples)
