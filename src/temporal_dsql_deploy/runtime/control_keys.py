"""The keys that lock the stack's control endpoints (dsql-local's admin API, the metrics store's write, delete and
admin APIs): generated once per STACK_DIR and kept in a file only its owner may read (0600). The services get them
as environment variables that the supervisor or Compose fills in at start; the product's own clients read the file.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.private_files import state_writes, write_private
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import EnvValue, SecretRef, secret_values

# The secrets' names as the rendered files refer to them (`${NAME}`); neither is a setting.
DSQL_LOCAL_ADMIN_KEY = "DSQL_LOCAL_ADMIN_KEY"
METRICS_STORE_KEY = "METRICS_STORE_KEY"
# The user name of the metrics store's HTTP basic authentication (the key is its password).
METRICS_STORE_USER = "stack"
KEY_BYTES = 32


@dataclass(frozen=True)
class ControlKeys:
    dsql_local_admin: str
    metrics_store: str

    def secrets(self) -> dict[str, str]:
        """The values of the references the rendered files make, by name."""
        return {DSQL_LOCAL_ADMIN_KEY: self.dsql_local_admin, METRICS_STORE_KEY: self.metrics_store}

    def admin_headers(self) -> dict[str, str]:
        """What a request to dsql-local's admin API carries."""
        return {"Authorization": f"Bearer {self.dsql_local_admin}"}

    @property
    def metrics_auth(self) -> tuple[str, str]:
        """The metrics store's basic-auth user and password."""
        return METRICS_STORE_USER, self.metrics_store


def keys_file(stack_dir: Path) -> Path:
    """Beside the stack's other generated secrets (the PostgreSQL password, the stand-in's credentials)."""
    return stack_dir / "data" / "control-keys.json"


def ensure_control_keys(stack_dir: Path) -> ControlKeys:
    """The kept keys; made (0600) when there are none, and made anew when the file is damaged: `up` restarts a stack
    whose secrets changed, so the services and the clients agree again."""
    kept = keys_file(stack_dir)
    keys = _parse(kept) if kept.exists() else None
    if keys is None:
        keys = ControlKeys(secrets.token_urlsafe(KEY_BYTES), secrets.token_urlsafe(KEY_BYTES))
        with state_writes("STACK_DIR", kept):
            write_private(kept, json.dumps({"dsql_local_admin": keys.dsql_local_admin,
                                            "metrics_store": keys.metrics_store}) + "\n")  # fmt: skip
    return keys


def read_control_keys(stack_dir: Path, endpoint: str) -> ControlKeys:
    """The keys of the stack running from `stack_dir`, for a client of `endpoint` (named in the errors)."""
    kept = keys_file(stack_dir)
    if not kept.exists():
        raise DeployError(f"{endpoint} needs the local stack's key, and there is no {kept} to hold it: the stack "
                          "was never started with this STACK_DIR",
                          "start the stack with `invoke up` (with this STACK_DIR), which makes its keys")  # fmt: skip
    keys = _parse(kept)
    if keys is None:
        raise DeployError(f"the control keys file {kept} is damaged (not the JSON `invoke up` wrote)",
                          "run `invoke up`, which makes new keys and restarts the stack with them")  # fmt: skip
    return keys


def _parse(kept: Path) -> ControlKeys | None:
    """The keys in `kept`; None when it is damaged. One that cannot be read (not ours, a directory) is named."""
    try:
        text = kept.read_bytes()
    except OSError as exc:
        raise DeployError(f"the control keys file {kept} cannot be read ({exc.strerror})",
                          f"make {kept} a file the user running invoke can read, or delete it while the stack "
                          "is stopped: new keys are made") from None  # fmt: skip
    try:
        values = json.loads(text)
        admin, store = values["dsql_local_admin"], values["metrics_store"]
    except (ValueError, KeyError, TypeError):  # not JSON, not UTF-8, not an object, or a key missing
        return None
    usable = all(isinstance(key, str) and len(key) >= KEY_BYTES and key.isprintable() for key in (admin, store))
    return ControlKeys(admin, store) if usable else None


def service_secrets(
    settings: Settings, environments: Iterable[Mapping[str, EnvValue]], keys: ControlKeys
) -> dict[str, str]:
    """The values of every secret the services' environments refer to: the settings' and the control keys."""
    generated = keys.secrets()
    from_settings = [{name: value for name, value in environment.items()
                      if not (isinstance(value, SecretRef) and value.name in generated)}
                     for environment in environments]  # fmt: skip
    return dict(sorted({**secret_values(settings, from_settings), **generated}.items()))
