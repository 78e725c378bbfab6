"""A user whose engine reaches a registry gets the images built on Debian's own image (BASE_IMAGES=registry):
proven against a real registry (Debian's docker-registry, on loopback) that serves a Debian bookworm image, since no
public registry is reachable here. The pull is real (the image is not on the engine before it), the base gets the
packages by apt, and the runtime image built on it runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from temporal_dsql_deploy.runtime.docker_runtime import DockerRuntime
from temporal_dsql_deploy.runtime.images import DEBIAN_SUITE, IMAGE_UID, build_image
from temporal_dsql_deploy.runtime.installer import apt_install, can_install_packages
from temporal_dsql_deploy.runtime.stack_images import RUNTIME_BASE, runtime_recipe
from temporal_dsql_deploy.settings.config import host_architecture
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import require

pytestmark = pytest.mark.containers
REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


def _docker(*argv: str, timeout_s: int = 600) -> str:
    ran = subprocess.run(["docker", *argv], capture_output=True, text=True, check=False, timeout=timeout_s)
    assert ran.returncode == 0, f"docker {' '.join(argv)}: {ran.stderr}"
    return ran.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def registry(docker_stack: DockerRuntime) -> Iterator[str]:
    """A registry on 127.0.0.1 (an engine trusts loopback registries over plain HTTP); its address."""
    if shutil.which("docker-registry") is None:
        require(can_install_packages(), "Debian's docker-registry is not installed and this is not root on Debian")
        apt_install(("docker-registry",), print)
    with tempfile.TemporaryDirectory(prefix="registry-") as root:
        port = _free_port()
        config = Path(root) / "config.yml"
        config.write_text(REGISTRY_CONFIG.format(root=Path(root) / "data", port=port), encoding="utf-8")
        server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not _answers(port):
                assert time.monotonic() < deadline, f"the registry on 127.0.0.1:{port} did not answer within 30 s"
                time.sleep(0.2)
            yield f"127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _debian_rootfs(cache_dir: Path) -> Path:
    """Debian's minbase file system, made by mmdebstrap once a week (about 26 s here) and kept in the cache."""
    kept = cache_dir / "test-debian-rootfs"
    year, week, _day = date.today().isocalendar()
    rootfs = kept / f"{DEBIAN_SUITE}-minbase-{year}w{week:02d}.tar"
    if rootfs.exists():
        return rootfs
    kept.mkdir(parents=True, exist_ok=True)
    for older in kept.glob(f"{DEBIAN_SUITE}-minbase-*.tar"):
        older.unlink()
    with tempfile.TemporaryDirectory(prefix="debian-", dir=kept) as scratch:
        made = Path(scratch) / "rootfs.tar"
        subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--quiet", DEBIAN_SUITE, str(made)],
                       check=True, timeout=900)  # fmt: skip
        made.rename(rootfs)  # whole or not at all: an interrupted run leaves no half-made file behind
    return rootfs


def _publish_debian(registry: str, cache_dir: Path) -> str:
    """Debian bookworm (minbase, as the official slim image) pushed to `registry`, removed from the engine after;
    its reference by tag and digest."""
    tag = f"{registry}/library/debian:{DEBIAN_SUITE}-slim"
    _docker("import", str(_debian_rootfs(cache_dir)), tag)
    _docker("push", "--quiet", tag)
    digest = _docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", tag).split("@")[1]
    _docker("image", "rm", tag)
    return f"{tag}@{digest}"


def test_with_a_registry_the_images_are_built_on_debians_image(docker_stack: DockerRuntime, registry: str) -> None:
    arch = host_architecture()
    upstream = _publish_debian(registry, docker_stack.settings.cache_dir)
    settings = docker_stack.settings.model_copy(update={
        "base_images": "registry", "base_image_upstream": upstream, "runtime_image": "temporal-dsql-registry-test"
    })  # fmt: skip
    base = RUNTIME_BASE.reference(arch, upstream)
    recipe = runtime_recipe(settings, PROJECT_ROOT, arch, print)
    try:
        assert build_image(recipe, arch, settings, print) is True
        # The base is the pulled image plus the packages and the containers' user.
        assert _docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", upstream).endswith(
            upstream.split("@")[1]
        )
        checked = _docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", base, "-c",
                          "python3 --version && curl --version | head -1 && id -u temporal")  # fmt: skip
        assert checked.startswith("Python 3.11"), checked
        assert checked.splitlines()[-1] == str(IMAGE_UID)
        version = _docker("run", "--rm", "--network", "none", "--entrypoint", "temporal-server", recipe.reference,
                          "--version")  # fmt: skip
        assert version == f"temporal-server version {settings.temporal_version}"
    finally:
        subprocess.run(["docker", "image", "rm", "--force", recipe.reference, base, upstream], capture_output=True,
                       check=False, timeout=300)  # fmt: skip
