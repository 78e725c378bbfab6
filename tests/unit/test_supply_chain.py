"""Hashes on every artifact: uv, the image's Python dependencies, the Terraform provider (Maven's jars:
tests/unit/test_search_engine_log4j.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime import stack_images
from temporal_dsql_deploy.runtime.installer import Installer
from temporal_dsql_deploy.runtime.stack_images import UV_VERSION
from temporal_dsql_deploy.settings.config import Architecture, Settings
from tests.conftest import PROJECT_ROOT

MakeSettings = Callable[..., Settings]

UV_REQUIREMENTS = PROJECT_ROOT / "docker" / "uv-requirements.txt"
SHA256 = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def _logical_lines(text: str) -> list[str]:
    """Shell and requirements continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_run_installs_the_pinned_uv_only_with_hashes() -> None:
    run = (PROJECT_ROOT / "run").read_text(encoding="utf-8")
    assert f"UV_VERSION={UV_VERSION}\n" in run
    installs = [line for line in _logical_lines(run) if "pip install" in line]
    assert installs, "./run installs uv with pip"
    for line in installs:
        assert "--require-hashes" in line
        assert "-r docker/uv-requirements.txt" in line


def test_the_uv_requirement_pins_the_version_with_a_hash_per_linux_wheel() -> None:
    (requirement,) = _logical_lines(UV_REQUIREMENTS.read_text(encoding="utf-8"))
    assert requirement.startswith(f"uv=={UV_VERSION} ")
    hashes = SHA256.findall(requirement)
    assert len(hashes) == len(set(hashes)) >= 2  # x86_64 and aarch64 at least
    assert requirement.count("--hash=") == len(hashes)  # no other algorithm, nothing malformed


def test_the_images_fetch_nothing_while_they_are_built() -> None:
    """Every file of an image enters through its build context (assembled from checked installs); no Dockerfile
    step downloads or installs a package. The one exception is a base on a registry's Debian image (below)."""
    fetchers = re.compile(r"\b(pip|uv|curl|wget|apt-get|apt|dpkg|go|npm|git)\b")
    for dockerfile in sorted((PROJECT_ROOT / "docker").glob("*Dockerfile")):
        if dockerfile.name == "base.Dockerfile":
            continue
        runs = [line for line in _logical_lines(dockerfile.read_text(encoding="utf-8")) if line.startswith("RUN ")]
        assert [run for run in runs if fetchers.search(run)] == [], dockerfile.name
        froms = [line for line in _logical_lines(dockerfile.read_text(encoding="utf-8")) if line.startswith("FROM ")]
        assert froms == ["FROM ${BASE_IMAGE}"], dockerfile.name  # the Debian base made here, no registry's


def test_a_base_on_a_registry_image_gets_only_debians_signed_packages() -> None:
    """base.Dockerfile starts from the upstream image pinned by digest (a setting that refuses anything else) and
    fetches by apt alone, which checks every package against the image's Debian keyring."""
    text = (PROJECT_ROOT / "docker" / "base.Dockerfile").read_text(encoding="utf-8")
    lines = _logical_lines(text)
    assert [line for line in lines if line.startswith("FROM ")] == ["FROM ${UPSTREAM_IMAGE}"]
    (run,) = [line for line in lines if line.startswith("RUN ")]
    assert set(re.findall(r"\b(pip|uv|curl|wget|apt-get|dpkg|go|npm|git)\b", run)) == {"apt-get"}
    assert "--allow-unauthenticated" not in run
    assert "--no-install-recommends" in run
    field = Settings.model_fields["base_image_upstream"]
    assert "@sha256:" in str(field.default)


FAKE_UV = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_RECORD"], "a", encoding="utf-8") as record:
    record.write(json.dumps(args) + "\\n")
if args == ["--version"]:
    print("uv " + os.environ["FAKE_UV_VERSION"] + " (x86_64-unknown-linux-gnu)")
elif args[:1] == ["export"]:
    print(os.environ.get("FAKE_EXPORT", "pydantic==2.0 --hash=sha256:" + "0" * 64))
elif args[:2] == ["pip", "install"]:
    target = args[args.index("--target") + 1]
    os.makedirs(os.path.join(target, "bin"), exist_ok=True)
    with open(os.path.join(target, "bin", "script"), "w") as script:
        script.write("#!/usr/bin/python3\\n")
    with open(os.path.join(target, "bin", "program"), "wb") as program:
        program.write(b"\\x7fELF")
"""


@dataclass
class FakeUv:
    """A `uv` first on PATH that records its arguments (one list per call) and reports `version`."""

    record: Path
    monkeypatch: pytest.MonkeyPatch

    def calls(self) -> list[list[str]]:
        """Every call but the version checks."""
        if not self.record.exists():
            return []
        calls = [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines()]
        return [call for call in calls if call != ["--version"]]

    def version_checks(self) -> int:
        lines = self.record.read_text(encoding="utf-8").splitlines() if self.record.exists() else []
        return sum(json.loads(line) == ["--version"] for line in lines)

    def reports(self, version: str) -> None:
        self.monkeypatch.setenv("FAKE_UV_VERSION", version)

    def exports(self, requirements: str) -> None:
        self.monkeypatch.setenv("FAKE_EXPORT", requirements)


@pytest.fixture
def fake_uv(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FakeUv:
    work = tmp_path_factory.mktemp("uv")
    uv = work / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable), encoding="utf-8")
    uv.chmod(0o755)
    monkeypatch.setenv("PATH", f"{work}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(work / "record.jsonl"))
    monkeypatch.setenv("FAKE_UV_VERSION", UV_VERSION)
    return FakeUv(work / "record.jsonl", monkeypatch)


def _installer(project_root: Path = PROJECT_ROOT) -> Installer:
    return Installer(lambda _m: None, project_root=project_root)


def _assert_installs_for_the_image(install: list[str], settings: Settings, arch: Architecture) -> None:
    assert install[:2] == ["pip", "install"]
    assert install[install.index("--target") + 1].startswith(str(settings.cache_dir))
    assert install[install.index("--python-platform") + 1] == stack_images.PYTHON_PLATFORMS[arch]
    assert install[install.index("--python-version") + 1] == stack_images.PYTHON_VERSION
    assert "--no-deps" in install


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_images_python_installs_every_locked_wheel_with_hashes_for_its_platform(
    make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory, fake_uv: FakeUv, arch: Architecture,
) -> None:  # fmt: skip
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    dependencies = stack_images.install_image_dependencies(settings, PROJECT_ROOT, arch, _installer())
    export, install = fake_uv.calls()
    assert export[:2] == ["export", "--frozen"]
    assert "--no-dev" in export
    assert "--no-emit-project" in export  # this package is installed on its own (install_image_package)
    assert not any("hash" in arg for arg in export)  # hashes stay in the export
    _assert_installs_for_the_image(install, settings, arch)
    assert install[-3:-1] == ["--require-hashes", "-r"]
    assert sorted(path.name for path in (dependencies / "bin").iterdir()) == ["program"]  # scripts naming this machine
    package = stack_images.install_image_package(settings, PROJECT_ROOT, arch, _installer())
    (package_install,) = fake_uv.calls()[2:]
    _assert_installs_for_the_image(package_install, settings, arch)
    assert package_install[-1] == str(PROJECT_ROOT)
    assert package != dependencies
    # Installed once: the same locked dependencies and sources ask for nothing more than the export that says so.
    stack_images.install_image_dependencies(settings, PROJECT_ROOT, arch, Installer(lambda _m: None))
    stack_images.install_image_package(settings, PROJECT_ROOT, arch, Installer(lambda _m: None))
    assert [call[0] for call in fake_uv.calls()[3:]] == ["export"]


def _project_copy(root: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_change_to_the_package_alone_reinstalls_only_the_package(make_settings: MakeSettings,
                                                                   tmp_path_factory: pytest.TempPathFactory,
                                                                   fake_uv: FakeUv) -> None:  # fmt: skip
    """The dependencies are a layer of their own, keyed by what uv exports of the lock file for the image: a change
    to the package's sources or project file rebuilds the package, never them; a change to the lock file rebuilds
    them only if it changes what the image installs (not one to the test tools)."""
    project = _project_copy(tmp_path_factory.mktemp("project"))
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")))

    def install() -> tuple[Path, Path]:
        return (stack_images.install_image_dependencies(settings, project, "amd64", _installer(project)),
                stack_images.install_image_package(settings, project, "amd64", _installer(project)))  # fmt: skip

    def steps_since(count: int) -> list[str]:  # export; the package's directory; the dependencies' requirements
        return [call[0] if call[0] == "export" else call[-1] if "-r" not in call else "-r"
                for call in fake_uv.calls()[count:]]  # fmt: skip

    dependencies, package = install()
    assert len(fake_uv.calls()) == 3  # export, the dependencies, the package
    source = project / "src" / "temporal_dsql_deploy" / "__init__.py"
    source.write_text(source.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    changed_dependencies, changed_package = install()
    assert changed_dependencies == dependencies
    assert changed_package != package
    assert steps_since(3) == ["export", str(project)]  # the package alone
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert install()[1] not in {package, changed_package}
    assert steps_since(5) == ["export", str(project)]
    # A new test tool changes uv.lock but not the image's export: nothing is installed again.
    lock = project / "uv.lock"
    lock.write_text(lock.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert install()[0] == dependencies
    assert steps_since(7) == ["export"]
    fake_uv.exports("pydantic==2.1 --hash=sha256:" + "1" * 64)
    assert install()[0] != dependencies
    assert steps_since(8) == ["export", "-r"]  # the dependencies alone


@pytest.mark.parametrize("install", ["install_image_dependencies", "install_image_package"])
def test_a_uv_other_than_the_pinned_one_installs_nothing(make_settings: MakeSettings,
                                                         tmp_path_factory: pytest.TempPathFactory, fake_uv: FakeUv,
                                                         install: str) -> None:  # fmt: skip
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    fake_uv.reports("0.1.0")
    with pytest.raises(DeployError) as refused:
        getattr(stack_images, install)(settings, PROJECT_ROOT, "amd64", _installer())
    assert f"not uv {UV_VERSION}" in refused.value.problem
    assert refused.value.fix is not None
    assert "./run" in refused.value.fix
    assert fake_uv.calls() == []
    assert fake_uv.version_checks() == 1


def _lock_block() -> dict[str, Any]:
    with (PROJECT_ROOT / "terraform" / ".terraform.lock.hcl").open(encoding="utf-8") as handle:
        providers = hcl2.load(handle)["provider"]
    (block,) = providers  # the AWS provider only
    ((source, body),) = block.items()
    assert source.strip('"') == "registry.terraform.io/hashicorp/aws"
    return dict(body)


def test_the_provider_constraint_is_exact_and_the_lock_file_matches_it() -> None:
    with (PROJECT_ROOT / "terraform" / "versions.tf").open(encoding="utf-8") as handle:
        (terraform,) = hcl2.load(handle)["terraform"]
    (providers,) = terraform["required_providers"]
    constraint = str(providers["aws"]["version"]).strip('"')
    assert re.fullmatch(r"= 5\.\d+\.\d+", constraint), constraint
    lock = _lock_block()
    assert str(lock["version"]).strip('"') == constraint.removeprefix("= ")
    assert str(lock["constraints"]).strip('"') == constraint.removeprefix("= ")


def test_the_lock_file_carries_the_providers_hashes() -> None:
    hashes = [str(entry).strip('"') for entry in _lock_block()["hashes"]]
    signed = [entry for entry in hashes if re.fullmatch(r"zh:[0-9a-f]{64}", entry)]
    unpacked = [entry for entry in hashes if re.fullmatch(r"h1:[A-Za-z0-9+/]{43}=", entry)]
    assert len(signed) >= 10  # one per platform the provider is released for
    assert unpacked
    assert len(signed) + len(unpacked) == len(hashes) == len(set(hashes))
