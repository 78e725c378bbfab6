"""Temporal's Web UI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from temporal_dsql_deploy.runtime.installer import Installer, component_dir, go_install
from temporal_dsql_deploy.runtime.model import (
    Component,
    Condition,
    HealthCheck,
    HttpProbe,
    Port,
    Service,
    serving_frontend,
)
from temporal_dsql_deploy.runtime.units.base import (
    ALL_INTERFACES,
    IMAGE_UI_ROOT,
    Container,
    Host,
    Native,
    Unit,
    runtime_image,
)
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.environment import HostOf, settings_environment


def services(settings: Settings) -> Iterator[Service]:
    yield Service(
        name="temporal-ui",
        component=Component.TEMPORAL_UI,
        environment={
            **settings_environment(settings, ("temporal_frontend_port", "temporal_ui_port", "temporal_namespace")),
            "TEMPORAL_ADDRESS": HostOf(serving_frontend(settings)),
        },
        ports=(Port("http", settings.temporal_ui_port, published=True),),
        depends_on={serving_frontend(settings): Condition.HEALTHY},
        healthcheck=HealthCheck(HttpProbe(settings.temporal_ui_port, "/healthz")),
        description=f"Temporal Web UI {settings.temporal_ui_version}",
    )


class TemporalUIUnit(Unit):
    component = Component.TEMPORAL_UI

    def native(self, service: Service, host: Host) -> Native:
        return Native([str(host.paths.ui_server), "--root", str(host.layout.config / "ui"), "--env", "local", "start"])

    def container(self, service: Service, settings: Settings) -> Container:
        command = ["ui-server", "--root", IMAGE_UI_ROOT, "--env", "docker", "start"]
        return Container(runtime_image(settings), command, {"TEMPORAL_UI_BIND_IP": ALL_INTERFACES})


def install_ui_server(settings: Settings, installer: Installer) -> Path:
    version = f"v{settings.temporal_ui_version}"

    def build(staging: Path) -> None:
        go_install([f"github.com/temporalio/ui-server/v2/cmd/server@{version}"], staging, f"building UI {version}")

    return installer.once(component_dir(settings, "ui-server", version), f"Temporal UI {version}", build, ("server",))


UNITS = (TemporalUIUnit(),)
