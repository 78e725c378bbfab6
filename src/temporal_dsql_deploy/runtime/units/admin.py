"""This package's own one-shot commands (schema, index, namespace setup), run by the runtime like a service."""

from __future__ import annotations

import sys

from temporal_dsql_deploy.runtime.model import Component, Service
from temporal_dsql_deploy.runtime.units.base import IMAGE_CACHE_DIR, Container, Host, Native, Unit, runtime_image
from temporal_dsql_deploy.settings.config import Settings


class AdminUnit(Unit):
    component = Component.ADMIN

    def native(self, service: Service, host: Host) -> Native:
        return Native([sys.executable, "-m", "temporal_dsql_deploy", *service.args])

    def container(self, service: Service, settings: Settings) -> Container:
        return Container(
            runtime_image(settings), ["temporal-dsql-deploy", *service.args], {"CACHE_DIR": IMAGE_CACHE_DIR}
        )


UNITS = (AdminUnit(),)
