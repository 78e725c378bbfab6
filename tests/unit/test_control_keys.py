"""The locks on the stack's control endpoints: the keys kept 0600 under STACK_DIR, handed to the services by
reference only, carried by the product's own clients; the metrics store's flags read from its environment; the
frontend's HTTP API limited to local host names."""

from __future__ import annotations

import base64
import re
import shlex
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest
import yaml

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import faults
from temporal_dsql_deploy.observability.store import MetricsStore
from temporal_dsql_deploy.private_files import write_private
from temporal_dsql_deploy.runtime.control_keys import (
    DSQL_LOCAL_ADMIN_KEY,
    METRICS_STORE_KEY,
    METRICS_STORE_USER,
    ControlKeys,
    ensure_control_keys,
    keys_file,
    read_control_keys,
    service_secrets,
)
from temporal_dsql_deploy.runtime.model import Component
from temporal_dsql_deploy.runtime.render_compose import config_files, render_compose
from temporal_dsql_deploy.runtime.render_scrape import scrape_config
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.stack import LocalStack, render_secrets
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.runtime.units.metrics_store import (
    VICTORIA_METRICS_KEY_FLAGS,
    store_scrape_auth,
    victoria_metrics_variable,
)
from temporal_dsql_deploy.settings.config import FRONTEND_HTTP_PORT, Settings
from temporal_dsql_deploy.settings.environment import SecretRef
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.temporal.dynamic_config import HTTP_ALLOWED_HOSTS_KEY, dynamic_config
from tests.conftest import fake_paths
from tests.unit.json_reply import send_json

MakeSettings = Callable[..., Settings]


# --- the kept keys -------------------------------------------------------------------------------------------------
def test_keys_are_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    made = ensure_control_keys(tmp_path)
    kept = keys_file(tmp_path)
    assert kept.stat().st_mode & 0o777 == 0o600
    assert made.dsql_local_admin != made.metrics_store
    assert len(made.dsql_local_admin) >= 32
    assert len(made.metrics_store) >= 32
    assert ensure_control_keys(tmp_path) == made == read_control_keys(tmp_path, "x")
    assert ensure_control_keys(tmp_path / "other") != made  # generated, not derived


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"dsql_local_admin": "short", "metrics_store": "short"}',
                                    '{"dsql_local_admin": 1, "metrics_store": 2}', "\xff"])  # fmt: skip
def test_damaged_keys_are_named_to_clients_and_made_anew_by_up(tmp_path: Path, damage: str) -> None:
    kept = keys_file(tmp_path)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(damage.encode("latin-1"))
    with pytest.raises(DeployError) as refused:
        read_control_keys(tmp_path, "the metrics store at http://127.0.0.1:8428")
    assert str(kept) in refused.value.problem
    assert "damaged" in refused.value.problem
    assert "invoke up" in str(refused.value.fix)
    renewed = ensure_control_keys(tmp_path)
    assert read_control_keys(tmp_path, "x") == renewed
    assert kept.stat().st_mode & 0o777 == 0o600


def test_missing_keys_name_the_endpoint_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DeployError) as refused:
        read_control_keys(tmp_path, "dsql-local's admin API at http://127.0.0.1:5434")
    assert "dsql-local's admin API" in refused.value.problem
    assert str(keys_file(tmp_path)) in refused.value.problem
    assert "invoke up" in str(refused.value.fix)


def test_an_unreadable_keys_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    keys_file(tmp_path).mkdir(parents=True)  # a directory where the file belongs
    with pytest.raises(DeployError, match="cannot be read"):
        ensure_control_keys(tmp_path)
    with pytest.raises(DeployError, match="cannot be read"):
        read_control_keys(tmp_path, "x")


# --- handed to the services by reference ---------------------------------------------------------------------------
KEYS = ControlKeys("admin-key-" + "a" * 40, "store-key-" + "b" * 40)


def _supervised(settings: Settings, root: Path) -> dict[str, Any]:
    text = render_supervisor(build_stack(settings), settings, fake_paths(root),
                             Layout(root / ".stack", settings.search_engine), root)  # fmt: skip
    processes: dict[str, Any] = yaml.safe_load(text)["processes"]
    return processes


def _variables(process: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in process["environment"])


def test_dsql_local_gets_its_admin_key_by_reference_in_both_runtimes(make_settings: MakeSettings,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    settings = make_settings()
    assert build_stack(settings).get("dsql-local").environment[DSQL_LOCAL_ADMIN_KEY] == SecretRef(DSQL_LOCAL_ADMIN_KEY)
    process = _supervised(settings, tmp_path)["dsql-local"]
    assert _variables(process)[DSQL_LOCAL_ADMIN_KEY] == "${DSQL_LOCAL_ADMIN_KEY}"
    assert DSQL_LOCAL_ADMIN_KEY not in process["command"]  # an environment variable, never a flag
    composed = yaml.safe_load(render_compose(build_stack(settings), settings, "amd64"))["services"]["dsql-local"]
    # Under Compose: the file of a secret (the image's entrypoint reads it into the variable), never the value.
    assert DSQL_LOCAL_ADMIN_KEY not in composed["environment"]
    assert composed["environment"][f"{DSQL_LOCAL_ADMIN_KEY}_FILE"] == f"/run/secrets/{DSQL_LOCAL_ADMIN_KEY.lower()}"
    assert DSQL_LOCAL_ADMIN_KEY.lower() in composed["secrets"]
    assert not any(DSQL_LOCAL_ADMIN_KEY in arg for arg in composed["command"])
    # Its health check and its metrics stay open: neither the supervisor's probe nor the scraper carries a key.
    assert process["readiness_probe"]["http_get"]["path"] == "/healthz"


def test_the_secrets_file_and_compose_get_the_keys_from_the_keys_file(make_settings: MakeSettings) -> None:
    settings = make_settings(TEMPORAL_SQL_PASSWORD="pw-from-settings")
    environments = [service.environment for service in build_stack(settings)]
    values = service_secrets(settings, environments, KEYS)
    assert values[DSQL_LOCAL_ADMIN_KEY] == KEYS.dsql_local_admin
    assert values[METRICS_STORE_KEY] == KEYS.metrics_store
    assert values["TEMPORAL_SQL_PASSWORD"] == "pw-from-settings"
    assert list(values) == sorted(values)


def test_rendered_files_never_hold_a_key(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings()
    stack = build_stack(settings)
    rendered = render_supervisor(stack, settings, fake_paths(tmp_path), Layout(tmp_path, "elasticsearch"), tmp_path)
    rendered += render_compose(stack, settings, "amd64")
    rendered += scrape_config(stack, lambda _name: "127.0.0.1", settings.metrics_scrape_interval, store_scrape_auth())
    rendered += dynamic_config(FRONTEND_HTTP_PORT)
    assert KEYS.dsql_local_admin not in rendered
    assert KEYS.metrics_store not in rendered
    assert "${METRICS_STORE_KEY}" in rendered
    assert "${DSQL_LOCAL_ADMIN_KEY}" in rendered


# --- the metrics store -----------------------------------------------------------------------------------------------
def test_the_metrics_store_reads_its_key_flags_from_its_environment(make_settings: MakeSettings,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    process = _supervised(make_settings(), tmp_path)["metrics"]
    argv = shlex.split(process["command"])
    assert "-envflag.enable" in argv
    assert "-envflag.prefix=VM_" in argv
    assert not any("AuthKey" in arg or "httpAuth" in arg for arg in argv), argv  # no key flag on the command line
    variables = _variables(process)
    # VictoriaMetrics' rule: the prefix, then the flag's name with its dots as underscores.
    assert victoria_metrics_variable("search.resetCacheAuthKey") == "VM_search_resetCacheAuthKey"
    for flag in ("deleteAuthKey", "snapshotAuthKey", "forceMergeAuthKey", "forceFlushAuthKey", "reloadAuthKey",
                 "flagsAuthKey", "pprofAuthKey", "httpAuth.password"):  # fmt: skip
        assert flag in VICTORIA_METRICS_KEY_FLAGS
        assert variables["VM_" + flag.replace(".", "_")] == "${METRICS_STORE_KEY}", flag
    assert variables["VM_httpAuth_username"] == METRICS_STORE_USER
    # The health check is one of the pages VictoriaMetrics leaves open whatever the basic auth.
    assert process["readiness_probe"]["http_get"]["path"] == "/-/healthy"


def test_the_store_alone_is_scraped_with_credentials_in_both_runtimes(make_settings: MakeSettings) -> None:
    """VictoriaMetrics in both runtimes: it scrapes its own locked /metrics with the stack's key, read from its own
    variable (under Compose the entrypoint fills it from the secret file); the other jobs carry none."""
    settings = make_settings()
    stack = build_stack(settings)
    local = yaml.safe_load(scrape_config(stack, lambda _name: "127.0.0.1", settings.metrics_scrape_interval,
                                         store_scrape_auth()))["scrape_configs"]  # fmt: skip
    with_auth = {job["job_name"]: job["basic_auth"] for job in local if "basic_auth" in job}
    store = next(service.name for service in stack if service.component is Component.METRICS_STORE)
    assert with_auth == {store: {"username": METRICS_STORE_USER, "password": "%{VM_httpAuth_password}"}}
    composed = yaml.safe_load(render_compose(stack, settings, "amd64"))
    (scrape,) = [file for file in config_files(stack, settings) if file.name == "scrape"]
    in_compose = yaml.safe_load(scrape.text)["scrape_configs"]
    assert {job["job_name"]: job["basic_auth"] for job in in_compose if "basic_auth" in job} == with_auth
    service = composed["services"][store]
    assert {"source": "scrape", "target": scrape.target} in service["configs"]
    assert service["environment"]["VM_httpAuth_password_FILE"] == f"/run/secrets/{METRICS_STORE_KEY.lower()}"
    assert service["environment"]["VM_httpAuth_username"] == METRICS_STORE_USER
    assert "-envflag.enable" in service["command"]
    assert not any("AuthKey" in arg or "httpAuth" in arg for arg in service["command"])  # no key on a command line


class _Protected(BaseHTTPRequestHandler):
    """A store (or admin API) that answers only with the expected Authorization header, and records what came."""

    expected = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        authorization = self.headers.get("Authorization") or ""
        type(self).seen.append(f"{self.command} {self.path.split('?')[0]}")
        ok = authorization == type(self).expected
        body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "5"]}]},
                "authenticated": 3, "refused_at_authentication": 0, "injected": 4}  # fmt: skip
        send_json(self, 200 if ok else 401, body if ok else {"error": "unauthorized"})

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def protected() -> Iterator[tuple[int, type[_Protected]]]:
    handler = type("Handler", (_Protected,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1]), handler
    server.shutdown()
    server.server_close()


def test_the_store_client_sends_the_stacks_credentials(protected: tuple[int, type[_Protected]]) -> None:
    port, handler = protected
    user, password = KEYS.metrics_auth
    handler.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert MetricsStore(f"http://127.0.0.1:{port}", auth=KEYS.metrics_auth).value("up") == 5
    with pytest.raises(DeployError) as refused:
        MetricsStore(f"http://127.0.0.1:{port}").value("up")
    assert "refused the credentials" in refused.value.problem
    assert "fix: use the STACK_DIR" in str(refused.value)
    assert password not in str(refused.value)


def test_fault_injection_carries_the_admin_key(protected: tuple[int, type[_Protected]], make_settings: MakeSettings,
                                               tmp_path: Path) -> None:  # fmt: skip
    port, handler = protected
    settings = make_settings(DSQL_LOCAL_ADMIN_PORT=str(port), STACK_DIR=str(tmp_path / "stack"))
    keys = ensure_control_keys(settings.stack_dir)  # the stack's keys, where it keeps them
    handler.expected = f"Bearer {keys.dsql_local_admin}"
    context = SimpleNamespace(stack=SimpleNamespace(settings=settings), plan=SimpleNamespace(hold_s=0.0))
    injected = faults._conflicts(cast("faults.FaultContext", context))
    assert handler.seen == ["POST /faults", "GET /faults", "POST /faults"]
    assert injected.notes == ["4 commits failed with OC000"]
    assert not injected.problems
    handler.expected = "Bearer another-stacks-key"
    with pytest.raises(Exception, match="401"):
        faults._conflicts(cast("faults.FaultContext", context))


@pytest.mark.parametrize(("hold_s", "held_s"), [(15.0, 30.0), (45.0, 45.0)])
def test_the_token_fault_holds_at_least_a_tokens_lifetime(protected: tuple[int, type[_Protected]], hold_s: float,
                                                          held_s: float, make_settings: MakeSettings, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    port, handler = protected
    settings = make_settings(DSQL_LOCAL_ADMIN_PORT=str(port), STACK_DIR=str(tmp_path / "stack"),
                             TEMPORAL_SQL_TOKEN_LIFETIME="30s")  # fmt: skip
    handler.expected = f"Bearer {ensure_control_keys(settings.stack_dir).dsql_local_admin}"
    slept: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    context = SimpleNamespace(stack=SimpleNamespace(settings=settings), plan=SimpleNamespace(hold_s=hold_s))
    injected = faults._short_tokens(cast("faults.FaultContext", context))
    assert slept == [held_s]
    assert handler.seen == ["GET /stats", "GET /stats"]
    assert injected.notes == [f"0 connections made with fresh tokens, 0 refused, in {held_s:g}s"]


# --- the frontend's HTTP API ---------------------------------------------------------------------------------------
def _temporal_host_pattern(patterns: list[str]) -> re.Pattern[str]:
    """The regular expression Temporal builds from a wildcard list (common/util/wildcard.go): each pattern quoted,
    `*` as any substring, the alternatives anchored together."""
    parts = ["(" + ".*".join(re.escape(literal) for literal in pattern.split("*")) + ")" for pattern in patterns]
    return re.compile("^" + "|".join(parts) + "$")


def test_the_frontend_http_api_answers_only_local_host_names() -> None:
    document = yaml.safe_load(dynamic_config(FRONTEND_HTTP_PORT))
    hosts = document[HTTP_ALLOWED_HOSTS_KEY][0]["value"]
    allowed = _temporal_host_pattern(hosts)
    for host in (f"127.0.0.1:{FRONTEND_HTTP_PORT}", f"localhost:{FRONTEND_HTTP_PORT}", f"[::1]:{FRONTEND_HTTP_PORT}"):
        assert allowed.fullmatch(host), host
    port = FRONTEND_HTTP_PORT
    for host in (f"attacker.example:{port}", "127.0.0.1.attacker.example", f"localhost.evil:{port}", "", "127.0.0.1:1"):
        assert not allowed.fullmatch(host), host
    # The template's own keys are all still there.
    template = yaml.safe_load(Path(__file__).resolve().parents[2].joinpath(
        "src", "temporal_dsql_deploy", "templates", "dynamicconfig.yaml").read_text(encoding="utf-8"))  # fmt: skip
    assert set(document) == set(template) | {HTTP_ALLOWED_HOSTS_KEY}


def test_a_running_stack_with_other_keys_is_restarted_by_up(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_SQL_PASSWORD="pw")
    stack = LocalStack(settings, tmp_path)
    paths = fake_paths(tmp_path)
    layout = stack.layout
    layout.config.mkdir(parents=True)
    layout.supervisor_config.write_text(render_supervisor(stack.model, stack.settings, paths, layout, tmp_path),
                                        encoding="utf-8")  # fmt: skip
    layout.engine_marker.write_text(settings.search_engine + "\n", encoding="utf-8")
    write_private(layout.secrets, render_secrets(stack.model, stack.settings, KEYS))
    for role in ("temporal-history", "temporal-matching", "temporal-frontend", "temporal-worker"):
        stack.link_role(role, paths.temporal_server.parent)
    assert stack._runs_this_configuration(paths, KEYS)
    # A role left on another build (an upgrade that stopped half-way) is not the configuration either.
    stack.link_role("temporal-matching", tmp_path / "stack")
    assert not stack._runs_this_configuration(paths, KEYS)
    stack.link_role("temporal-matching", paths.temporal_server.parent)
    # Keys made anew (the file was damaged or deleted): the running services still hold the old ones.
    assert not stack._runs_this_configuration(paths, ControlKeys("c" * 43, KEYS.metrics_store))
