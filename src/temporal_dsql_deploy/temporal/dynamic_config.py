"""The Temporal services' dynamic configuration as the local stack writes it: the packaged template, and the host
names the frontend's HTTP API answers to."""

from __future__ import annotations

from importlib import resources

import yaml

# The frontend's HTTP API (grpc-gateway) answers any Host header by default, so a web page whose name an attacker
# points at 127.0.0.1 (DNS rebinding) could drive it from a browser; these are the names a local client uses.
LOCAL_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")
HTTP_ALLOWED_HOSTS_KEY = "frontend.httpAllowedHosts"


def allowed_hosts(http_port: int) -> list[str]:
    """The Host headers a local client sends (name and port: the port is never HTTP's default here)."""
    return [f"{name}:{http_port}" for name in LOCAL_HOST_NAMES]


def dynamic_config(http_port: int) -> str:
    """The template with the frontend's allowed hosts added (the template must not set them itself)."""
    template = (resources.files("temporal_dsql_deploy") / "templates" / "dynamicconfig.yaml").read_text()
    if HTTP_ALLOWED_HOSTS_KEY in (yaml.safe_load(template) or {}):
        raise ValueError(f"templates/dynamicconfig.yaml sets {HTTP_ALLOWED_HOSTS_KEY}, which is rendered here")
    section = yaml.safe_dump({HTTP_ALLOWED_HOSTS_KEY: [{"value": allowed_hosts(http_port)}]}, sort_keys=False)
    comment = "# Only local names in the Host header of a request to the frontend's HTTP API."
    return f"{template.rstrip()}\n{comment}\n{section}"
