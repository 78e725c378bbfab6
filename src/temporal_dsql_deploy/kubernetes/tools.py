"""helm and helm-unittest: pinned, built once from the wrapper modules in components/, cached by version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.installer import Installer, build_step, component_dir, go_env
from temporal_dsql_deploy.settings.config import Settings


@dataclass(frozen=True)
class GoTool:
    """A command built from a wrapper module of this repository (components/<module>)."""

    name: str  # the component's and the program's name
    module: str  # the wrapper module's directory under components/
    package: str
    version: str
    version_flag: str  # -X flag setting the version the tool reports

    def install(self, settings: Settings, installer: Installer) -> Path:
        """The program, built on first use."""

        def build(staging: Path) -> None:
            if installer.project_root is None:
                raise DeployError(f"{self.name} {self.version} is not installed",
                                  "run `invoke chart` from the project's checkout, which builds it")  # fmt: skip
            flags = f"-s -w -X {self.version_flag}={self.version}"
            build_step(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(staging / self.name), self.package],
                       f"building {self.name} {self.version}", env=go_env(staging),
                       cwd=installer.project_root / "components" / self.module)  # fmt: skip

        target = component_dir(settings, self.name, self.version)
        return installer.once(target, f"{self.name} {self.version}", build, (self.name,)) / self.name


HELM = GoTool("helm", "helm", "helm.sh/helm/v4/cmd/helm", "v4.3.2", "helm.sh/helm/v4/internal/version.version")
HELM_UNITTEST = GoTool("helm-unittest", "helm-unittest", "github.com/helm-unittest/helm-unittest/cmd/helm-unittest",
                       "1.1.2", "github.com/helm-unittest/helm-unittest/internal/build.version")  # fmt: skip
