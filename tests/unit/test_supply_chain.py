"""Hashes on every artifact: uv, the image's Python dependencies, the Terraform provider (Maven's jars:
tests/unit/test_search_engine_log4j.py)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import hcl2
import pytest

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
    step downloads or installs a package."""
    fetchers = re.compile(r"\b(pip|uv|curl|wget|apt-get|apt|dpkg|go|npm|git)\b")
    for dockerfile in sorted((PROJECT_ROOT / "docker").glob("*Dockerfile")):
        runs = [line for line in _logical_lines(dockerfile.read_text(encoding="utf-8")) if line.startswith("RUN ")]
        assert [run for run in runs if fetchers.search(run)] == [], dockerfile.name
        froms = [line for line in _logical_lines(dockerfile.read_text(encoding="utf-8")) if line.startswith("FROM ")]
        assert froms == ["FROM ${BASE_IMAGE}"], dockerfile.name  # the Debian base made here, no registry's


FAKE_UV = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_RECORD"], "a", encoding="utf-8") as record:
    record.write(json.dumps(args) + "\\n")
if args[:1] == ["export"]:
    with open(args[args.index("-o") + 1], "w", encoding="utf-8") as out:
        out.write("pydantic==2.0 --hash=sha256:" + "0" * 64 + "\\n")
elif args[:2] == ["pip", "install"]:
    target = args[args.index("--target") + 1]
    os.makedirs(os.path.join(target, "bin"), exist_ok=True)
    with open(os.path.join(target, "bin", "script"), "w") as script:
        script.write("#!/usr/bin/python3\\n")
    with open(os.path.join(target, "bin", "program"), "wb") as program:
        program.write(b"\\x7fELF")
"""


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_images_python_installs_every_locked_wheel_with_hashes_for_its_platform(
    make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    arch: Architecture,
) -> None:  # fmt: skip
    work = tmp_path_factory.mktemp("uv")
    uv = work / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable), encoding="utf-8")
    uv.chmod(0o755)
    record = work / "record.jsonl"
    monkeypatch.setenv("PATH", f"{work}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(record))
    settings = make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    installed = stack_images.install_image_python(settings, PROJECT_ROOT, arch,
                                                  Installer(lambda _m: None, project_root=PROJECT_ROOT))  # fmt: skip
    calls = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    export, dependencies, package = calls
    assert export[:2] == ["export", "--frozen"]
    assert "--no-dev" in export
    assert not any("hash" in arg for arg in export)  # hashes stay in the export
    for install in (dependencies, package):
        assert install[:2] == ["pip", "install"]
        assert install[install.index("--target") + 1].startswith(str(settings.cache_dir))
        assert install[install.index("--python-platform") + 1] == stack_images.PYTHON_PLATFORMS[arch]
        assert install[install.index("--python-version") + 1] == stack_images.PYTHON_VERSION
        assert "--no-deps" in install
    assert dependencies[-3:-1] == ["--require-hashes", "-r"]
    assert package[-1] == str(PROJECT_ROOT)
    assert sorted(path.name for path in (installed / "bin").iterdir()) == ["program"]  # scripts naming this machine
    # Installed once: the same sources ask for nothing more.
    stack_images.install_image_python(settings, PROJECT_ROOT, arch, Installer(lambda _m: None))
    assert len(record.read_text(encoding="utf-8").splitlines()) == 3


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
