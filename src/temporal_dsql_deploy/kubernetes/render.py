"""The chart through helm itself: `helm lint --strict` and `helm template`, with the values a release needs.

A checkout that has not deployed a cluster does not know its endpoint, Region, search engine or the services' IAM
role, which the chart requires at install. Rendering fills exactly those with example values, written beside the
manifests, and says so: a user installs with their own (`-f`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from temporal_dsql_deploy.kubernetes.chart import RENDERED_DIR, chart_values
from temporal_dsql_deploy.kubernetes.tools import HELM
from temporal_dsql_deploy.process import run_tool
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.settings.config import Settings

RELEASE = "temporal"
NAMESPACE = "temporal"
HELM_TIMEOUT_S = 120
# Values only a user knows: what rendering uses where the checkout has none.
EXAMPLES: dict[tuple[str, ...], str] = {
    ("server", "config", "persistence", "default", "sql", "host"): "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
    ("server", "config", "persistence", "default", "sql", "region"): "us-east-1",
    ("elasticsearch", "host"): "search.example.internal",
    ("schema", "servicePrincipalArn"): "arn:aws:iam::123456789012:role/temporal-server",
}


@dataclass(frozen=True)
class Rendered:
    manifests: Path
    documents: int
    examples: Path | None  # the example values used, if any were needed


def example_values(values: dict[str, Any]) -> dict[str, Any]:
    """The examples for the required values `values` leave empty, as a values file's nesting."""
    examples: dict[str, Any] = {}
    for path, example in EXAMPLES.items():
        current: Any = values
        for key in path:
            current = current[key]
        if current == "":
            target = examples
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = example
    return examples


def helm_command(settings: Settings, installer: Installer) -> list[str]:
    """The pinned helm, built on first use."""
    return [str(HELM.install(settings, installer))]


def helm_environment(settings: Settings) -> dict[str, str]:
    """helm's state kept out of the user's home (this product installs no repositories or plugins)."""
    home = settings.cache_dir / "helm-home"
    return {"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"), "PATH": "/usr/bin:/bin"}  # fmt: skip


def lint_and_template(settings: Settings, chart: Path, installer: Installer,
                      values_files: tuple[Path, ...] = ()) -> str:  # fmt: skip
    """`helm lint --strict` then `helm template`'s manifests, with `values_files` over the chart's defaults."""
    helm = helm_command(settings, installer)
    given = [argument for path in values_files for argument in ("--values", str(path))]
    env = helm_environment(settings)
    fix = "correct the values named above (see the chart's values.yaml and values.schema.json)"
    run_tool([*helm, "lint", "--strict", str(chart), *given], what=f"helm lint {chart}", fix=fix,
             timeout_s=HELM_TIMEOUT_S, env=env)  # fmt: skip
    return run_tool([*helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *given],
                    what=f"helm template {chart}", fix=fix, timeout_s=HELM_TIMEOUT_S, env=env)  # fmt: skip


def render(settings: Settings, chart: Path, installer: Installer) -> Rendered:
    """The chart's manifests with its defaults (and examples where a release needs the user's own values)."""
    out = chart / RENDERED_DIR
    out.mkdir(exist_ok=True)
    examples = example_values(chart_values(settings))
    examples_file = None
    if examples:
        examples_file = out / "example-values.yaml"
        header = "# Example values for what only you know (rendering needs them): install with your own.\n"
        examples_file.write_text(header + yaml.safe_dump(examples, sort_keys=False), encoding="utf-8")
    manifests = lint_and_template(settings, chart, installer, (examples_file,) if examples_file else ())
    path = out / "manifests.yaml"
    path.write_text(manifests, encoding="utf-8")
    documents = sum(1 for document in yaml.safe_load_all(manifests) if document)
    return Rendered(path, documents, examples_file)
