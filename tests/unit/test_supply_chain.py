"""Hashes on every artifact: uv, the image's Python dependencies, the Terraform provider (Maven's jars:
tests/unit/test_search_engine_log4j.py)."""

from __future__ import annotations

import re
from typing import Any

import hcl2

from temporal_dsql_deploy.runtime.stack_images import UV_VERSION
from tests.conftest import PROJECT_ROOT

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


def test_the_image_installs_every_wheel_with_require_hashes() -> None:
    lines = _logical_lines((PROJECT_ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8"))
    text = "\n".join(lines)
    assert "--no-hashes" not in text
    commands = [part.strip() for line in lines for part in line.split("&&")]
    exports = [command for command in commands if command.startswith("uv export")]
    assert exports, "the image installs from uv.lock's export"
    requirement_installs = [command for command in commands if command.startswith("pip install") and " -r " in command]
    assert len(requirement_installs) == 2  # uv, then the locked dependencies
    for command in requirement_installs:
        assert "--require-hashes" in command
    assert any("uv-requirements.txt" in command for command in requirement_installs)


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
