"""The stack's components, one module each: the services it adds and how each runtime launches its program.

`build_stack` is the whole stack for a set of settings, in start order; `unit_of` is how a renderer finds the
launch of a service's component. Adding a component is a module here plus its line in `_MODULES`.
"""

from __future__ import annotations

from temporal_dsql_deploy.runtime.model import Component, Service, Stack
from temporal_dsql_deploy.runtime.units import (
    admin,
    dashboards,
    dsql_local,
    exporters,
    metrics_store,
    postgresql,
    search_engine,
    temporal_server,
    temporal_ui,
)
from temporal_dsql_deploy.runtime.units.base import Unit
from temporal_dsql_deploy.settings.config import Settings

# In start order: each module's services come after those they depend on.
_MODULES = (postgresql, dsql_local, search_engine, temporal_server, temporal_ui, exporters, metrics_store, dashboards)
_UNITS: dict[Component, Unit] = {unit.component: unit for module in (*_MODULES, admin) for unit in module.UNITS}


def build_stack(settings: Settings) -> Stack:
    """The whole stack for these settings."""
    return Stack(tuple(service for module in _MODULES for service in module.services(settings)))


def unit_of(service: Service) -> Unit:
    return _UNITS[service.component]
