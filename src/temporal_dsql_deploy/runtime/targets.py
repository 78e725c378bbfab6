"""The one place that picks a runtime's implementation of the stack interface."""

from __future__ import annotations

from pathlib import Path

from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.runtime.interface import StackRuntime
from temporal_dsql_deploy.runtime.local_runtime import LocalRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.settings.config import Settings

IMPLEMENTATIONS: dict[Runtime, type[StackRuntime]] = {Runtime.LOCAL: LocalRuntime, Runtime.DOCKER: DockerRuntime}


def runtime_for(settings: Settings, project_root: Path, runtime: Runtime) -> StackRuntime:
    return IMPLEMENTATIONS[runtime](settings, project_root)
