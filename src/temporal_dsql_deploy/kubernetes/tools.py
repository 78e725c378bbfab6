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
    version_flag: str = ""  # -X flag setting the version the tool reports, where it does not know it itself
    extra_flags: str = ""

    def install(self, settings: Settings, installer: Installer) -> Path:
        """The program, built on first use."""

        def build(staging: Path) -> None:
            if installer.project_root is None:
                raise DeployError(f"{self.name} {self.version} is not installed",
                                  "run `invoke chart` from the project's checkout, which builds it")  # fmt: skip
            flags = " ".join(filter(None, ("-s -w", self.version_flag and f"-X {self.version_flag}={self.version}",
                                           self.extra_flags)))  # fmt: skip
            build_step(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(staging / self.name), self.package],
                       f"building {self.name} {self.version}", env=go_env(staging),
                       cwd=installer.project_root / "components" / self.module)  # fmt: skip

        target = component_dir(settings, self.name, self.version)
        return installer.once(target, f"{self.name} {self.version}", build, (self.name,)) / self.name


HELM = GoTool("helm", "helm", "helm.sh/helm/v4/cmd/helm", "v4.3.2", "helm.sh/helm/v4/internal/version.version")
HELM_UNITTEST = GoTool("helm-unittest", "helm-unittest", "github.com/helm-unittest/helm-unittest/cmd/helm-unittest",
                       "1.1.2", "github.com/helm-unittest/helm-unittest/internal/build.version")  # fmt: skip

# The control plane the chart is installed into by `nox -s kube`: Kubernetes' own servers, etcd, kwok's fake nodes.
_K8S_VERSION = "v1.37.2"
_K8S_FLAGS = " ".join(f"-X k8s.io/component-base/version.{key}={value}" for key, value in
                      (("gitVersion", _K8S_VERSION), ("gitMajor", "1"), ("gitMinor", "37")))  # fmt: skip
KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER = (
    GoTool(name, "kubernetes", f"k8s.io/kubernetes/cmd/{name}", _K8S_VERSION, extra_flags=_K8S_FLAGS)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
)
ETCD = GoTool("etcd", "etcd", "go.etcd.io/etcd/server/v3", "v3.7.3")
KWOK = GoTool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "v0.8.0")
CONTROL_PLANE = (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KWOK)
