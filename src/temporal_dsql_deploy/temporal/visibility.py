"""Visibility setup: Temporal's own index template and index, created idempotently and verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.settings.config import Settings

TEMPLATE_NAME = "temporal_visibility_v1_template"
TOOL_TIMEOUT_S = 120
SHOWN_FIELDS = 5  # an index made some other way can differ in every field of the template: name a few, count all


@dataclass(frozen=True)
class IndexReport:
    index: str
    created: bool
    fields_verified: int
    fields_added: tuple[str, ...] = ()  # a newer release's template fields, added to an existing index

    def describe(self) -> str:
        state = "created" if self.created else "already present"
        added = f"; added {', '.join(self.fields_added)}" if self.fields_added else ""
        return f"index {self.index} {state}{added}; {self.fields_verified} mapped fields match Temporal's template"


def search_client(settings: Settings) -> httpx.Client:
    """A client of the search engine, with its credentials where the settings have them."""
    auth = None
    if settings.temporal_elasticsearch_username and settings.temporal_elasticsearch_password:
        auth = (
            settings.temporal_elasticsearch_username,
            settings.temporal_elasticsearch_password.get_secret_value(),
        )
    return httpx.Client(base_url=settings.elasticsearch_url, auth=auth, timeout=30)


def _run_tool(tool: Path, settings: Settings, *args: str) -> None:
    env: dict[str, str] = {}
    if settings.temporal_elasticsearch_username:  # credentials travel in the environment, never in argv
        env["ES_USER"] = settings.temporal_elasticsearch_username
    if settings.temporal_elasticsearch_password:
        env["ES_PWD"] = settings.temporal_elasticsearch_password.get_secret_value()
    run_tool(
        [str(tool), "--ep", settings.elasticsearch_url, *args],
        what=f"temporal-elasticsearch-tool {args[0]} at {settings.elasticsearch_url}",
        fix=f"check that the search engine is healthy: curl -s {settings.elasticsearch_url}/_cluster/health?pretty",
        timeout_s=TOOL_TIMEOUT_S,
        env=env,
    )


def _properties(mapping: dict[str, Any]) -> dict[str, Any]:
    return dict(mapping.get("properties", {}))


@retry(
    retry=retry_if_exception_type(httpx.TransportError),
    stop=stop_after_delay(60),
    wait=wait_fixed(2),
    reraise=True,
)
def _index_exists(client: httpx.Client, index: str) -> bool:
    return client.head(f"/{index}").status_code == 200


def _fields(client: httpx.Client, index: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The installed template's fields, and those the index maps."""
    template = client.get(f"/_template/{TEMPLATE_NAME}").raise_for_status().json()[TEMPLATE_NAME]
    actual = client.get(f"/{index}/_mapping").raise_for_status().json()[index]["mappings"]
    return _properties(template["mappings"]), _properties(actual)


def verify_mapping(client: httpx.Client, index: str) -> int:
    """Check the index maps every field of the installed template with the same type; return the count."""
    expected, actual = _fields(client, index)
    wrong = sorted(
        f"{field} (expected {spec.get('type')}, found {actual.get(field, {}).get('type', 'missing')})"
        for field, spec in expected.items()
        if actual.get(field, {}).get("type") != spec.get("type")
    )
    if wrong:
        more = f" and {len(wrong) - SHOWN_FIELDS} more" if len(wrong) > SHOWN_FIELDS else ""
        raise DeployError(
            f"index {index!r} does not match Temporal's visibility template in {len(wrong)} of {len(expected)} "
            f"fields: {', '.join(wrong[:SHOWN_FIELDS])}{more}",
            f"recreate it: delete the index (curl -X DELETE .../{index}) and run `invoke es.setup`",
        )
    return len(expected)


def _missing_fields(client: httpx.Client, index: str) -> tuple[str, ...]:
    """Fields of the installed template the index does not map (a later release's template adds some)."""
    expected, actual = _fields(client, index)
    return tuple(sorted(set(expected) - set(actual)))


def setup_visibility(settings: Settings, es_tool: Path, *, cluster_settings: bool = False) -> IndexReport:
    """Install the release's template, create the index if missing or add the fields a newer template has to it (as
    upstream's upgrades do), and verify its mapping against the template."""
    index = settings.temporal_elasticsearch_index
    # setup-schema writes cluster settings too (a managed domain may refuse them); update-schema writes the template
    # alone, in every supported release.
    _run_tool(es_tool, settings, "setup-schema" if cluster_settings else "update-schema")
    with search_client(settings) as client:
        try:
            created, added = not _index_exists(client, index), tuple[str, ...]()
            if created:
                _run_tool(es_tool, settings, "create-index", "--index", index)
            elif added := _missing_fields(client, index):
                _run_tool(es_tool, settings, "update-schema", "--index", index)
            fields = verify_mapping(client, index)
        except httpx.HTTPError as exc:
            raise DeployError(
                f"search engine at {settings.elasticsearch_url} failed: {exc}",
                "check `invoke status` and `invoke logs elasticsearch`",
            ) from None
    return IndexReport(index=index, created=created, fields_verified=fields, fields_added=added)
