"""The stack's images, built on this machine, with or without an image registry.

A base is Debian bookworm with a few packages and the containers' user. With a registry it is Debian's official image
(pinned by digest) with the packages installed by apt (docker/base.Dockerfile); without one, a root filesystem that
mmdebstrap makes from Debian's packages, added to an empty image (`FROM scratch`, which records the architecture
asked for: `docker import` records the engine's own). Each image of the stack is a base plus what it runs.
Everything is built by the classic builder (`DOCKER_BUILDKIT=0`: it needs no buildx plugin) and named or labelled
by the digest of everything that went into it, so a second build with nothing changed builds nothing. Another
architecture's base and images are made under emulation (runtime/emulation.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import run_program, run_tool
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.installer import apt_install, build_step, can_install_packages
from temporal_dsql_deploy.settings.config import Architecture, Settings, host_architecture

DEBIAN_SUITE = "bookworm"
BASE_REPOSITORY = "temporal-dsql-base"
DIGEST_LABEL = "org.temporal-dsql-deploy.content-digest"
IMAGE_UID = 1000  # the unprivileged user every container runs as
BUILD_TIMEOUT_S = 1800
PULL_TIMEOUT_S = 900
AUTO_PULL_TIMEOUT_S = 120  # `auto` falls back to mmdebstrap rather than wait on a registry that hangs
# The containers' user (its home the only place it owns), made the same way in both kinds of base.
ADD_USER = f"useradd --uid {IMAGE_UID} --user-group --create-home --shell /usr/sbin/nologin temporal"
# Run in mmdebstrap's new root filesystem: the user, then apt's caches out.
BASE_HOOKS = (f'chroot "$1" {ADD_USER}', 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*')
UPSTREAM_BASE_DOCKERFILE = Path(__file__).resolve().parents[3] / "docker" / "base.Dockerfile"


@dataclass(frozen=True)
class BaseImage:
    """A Debian root filesystem with `packages` (and their dependencies) installed."""

    name: str
    packages: tuple[str, ...]

    def reference(self, arch: Architecture, upstream: str | None = None) -> str:
        """Its name when made by mmdebstrap (`upstream` None) or from the pulled image `upstream`."""
        made_by = [BASE_HOOKS] if upstream is None else [upstream, ADD_USER, UPSTREAM_BASE_DOCKERFILE.read_text()]
        key = json.dumps([DEBIAN_SUITE, arch, sorted(self.packages), *made_by])
        return f"{BASE_REPOSITORY}-{self.name}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class ImageRecipe:
    """One image of the stack: a base, a Dockerfile from docker/, and the files its context holds."""

    reference: str  # repository:tag
    base: BaseImage
    dockerfile: Path
    context: dict[str, Path]  # name in the build context -> a file or directory on this machine
    build_args: tuple[tuple[str, str], ...] = ()


def docker_env() -> dict[str, str]:
    # The classic builder: Debian's docker.io has no buildx, and our Dockerfiles need nothing BuildKit adds.
    return {"DOCKER_BUILDKIT": "0"}


def image_label(reference: str) -> str | None:
    """The content digest an image was built from ("" if it has none), or None when there is no such image."""
    label = f'{{{{ index .Config.Labels "{DIGEST_LABEL}" }}}}'
    inspected = run_program(["docker", "image", "inspect", "--format", label, reference], what="docker image inspect",
                            fix="check that `docker info` answers", timeout_s=60)  # fmt: skip
    if inspected.returncode != 0:
        return None
    label = inspected.stdout.strip()
    return "" if label == "<no value>" else label


def ensure_base(base: BaseImage, arch: Architecture, settings: Settings, report: Reporter) -> str:
    """The base image's reference: one already built, else pulled and completed, else made from Debian's packages
    (as BASE_IMAGES says)."""
    upstream, made_here = base.reference(arch, settings.base_image_upstream), base.reference(arch)
    usable = {"auto": (upstream, made_here), "registry": (upstream,), "debian": (made_here,)}[settings.base_images]
    for reference in usable:
        if image_label(reference) is not None:
            return reference
    if settings.base_images != "debian" and _build_on_upstream(base, arch, settings, upstream, report):
        return upstream
    _make_with_mmdebstrap(base, arch, settings, made_here, report)
    return made_here


def _build_on_upstream(base: BaseImage, arch: Architecture, settings: Settings, reference: str,
                       report: Reporter) -> bool:  # fmt: skip
    """Pull BASE_IMAGE_UPSTREAM and install the base's packages on it; False where `auto` falls back to mmdebstrap."""
    answer = _pull(settings.base_image_upstream, arch, PULL_TIMEOUT_S if settings.base_images == "registry" else
                   AUTO_PULL_TIMEOUT_S)  # fmt: skip
    if answer is not None:
        if settings.base_images == "registry":
            raise DeployError(f"BASE_IMAGES=registry, and pulling BASE_IMAGE_UPSTREAM={settings.base_image_upstream} "
                              f"failed: {answer}", "check that the engine reaches the registry (`docker pull` it), "
                              "or set BASE_IMAGES=debian to make the bases from Debian's packages")  # fmt: skip
        report(f"no upstream base ({answer}); making the {base.name} base from Debian's packages instead "
               "(BASE_IMAGES=debian skips the pull)")  # fmt: skip
        return False
    report(f"making the {base.name} base image for {arch} on {settings.base_image_upstream}: "
           f"{', '.join(base.packages)}")  # fmt: skip
    # The host's network for apt: the project's own engine gives containers no bridge (runtime/docker_engine.py).
    run_tool(["docker", "build", "--quiet", "--network", "host", "--platform", f"linux/{arch}",
              f"--build-arg=UPSTREAM_IMAGE={settings.base_image_upstream}", f"--build-arg=DEBIAN_SUITE={DEBIAN_SUITE}",
              f"--build-arg=PACKAGES={' '.join(sorted(base.packages))}", f"--build-arg=ADD_USER={ADD_USER}",
              "--file", str(UPSTREAM_BASE_DOCKERFILE), "--tag", reference, str(UPSTREAM_BASE_DOCKERFILE.parent)],
             what=f"docker build of the {base.name} base", fix="check the Docker engine's log",
             timeout_s=BUILD_TIMEOUT_S, env=docker_env())  # fmt: skip
    return True


def _pull(reference: str, arch: Architecture, timeout_s: int) -> str | None:
    """Pull `reference`; None if it worked, else what went wrong (the engine's last line, or the time it took)."""
    try:
        pulled = run_program(["docker", "pull", "--quiet", "--platform", f"linux/{arch}", reference],
                             what=f"docker pull {reference}", fix="check the registry",
                             timeout_s=timeout_s)  # fmt: skip
    except DeployError as failed:  # it did not finish in time
        return failed.problem.splitlines()[0]
    if pulled.returncode == 0:
        return None
    return ((pulled.stderr or pulled.stdout).strip().splitlines() or ["no answer"])[-1]


def _make_with_mmdebstrap(base: BaseImage, arch: Architecture, settings: Settings, reference: str,
                          report: Reporter) -> None:  # fmt: skip
    mmdebstrap = _require_mmdebstrap(report)
    emulated = "" if arch == host_architecture() else " (emulated: several minutes)"
    report(f"making the {base.name} base image for {arch} from Debian {DEBIAN_SUITE}'s packages{emulated}: "
           f"{', '.join(base.packages)}")  # fmt: skip
    work = settings.cache_dir / "build" / "bases"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{base.name}-", dir=work) as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        hooks = [f"--customize-hook={hook}" for hook in BASE_HOOKS]
        build_step([mmdebstrap, "--mode=root", "--variant=minbase", "--quiet", f"--architectures={arch}",
                    f"--include={','.join(base.packages)}", *hooks, DEBIAN_SUITE, str(rootfs)],
                   f"mmdebstrap of the {base.name} base")  # fmt: skip
        (Path(scratch) / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n", encoding="utf-8")
        run_tool(["docker", "build", "--quiet", "--platform", f"linux/{arch}", "--tag", reference, scratch],
                 what=f"docker build of the {base.name} base", fix="check the Docker engine's log",
                 timeout_s=BUILD_TIMEOUT_S, env=docker_env())  # fmt: skip


def _require_mmdebstrap(report: Reporter) -> str:
    found = shutil.which("mmdebstrap")
    if found is not None:
        return found
    if not can_install_packages():
        raise DeployError("making a base image here needs mmdebstrap (no image registry is used), and it is missing",
                          "install Debian's mmdebstrap package, then run again")  # fmt: skip
    report("installing Debian's mmdebstrap (first time only)")
    apt_install(("mmdebstrap",), report)
    return shutil.which("mmdebstrap") or "mmdebstrap"


def content_digest(root: Path) -> str:
    """SHA-256 over every file under `root`: its relative path, whether it is executable, its bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            digest.update(f"{path.relative_to(root)}->{os.readlink(path)}\0".encode())
        elif path.is_file():
            digest.update(f"{path.relative_to(root)}:{os.access(path, os.X_OK)}\0".encode())
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _link_or_copy(source: str, target: str) -> None:
    try:  # the cache and the context share a filesystem as a rule: a link costs nothing
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _assemble(recipe: ImageRecipe, context: Path) -> None:
    context.mkdir(parents=True)
    shutil.copyfile(recipe.dockerfile, context / "Dockerfile")
    for name, source in recipe.context.items():
        if not source.exists():
            raise DeployError(f"{source} is missing (the image {recipe.reference} needs it)",
                              "run `invoke build` again; it installs what the images hold")  # fmt: skip
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(target))


def build_image(recipe: ImageRecipe, arch: Architecture, settings: Settings, report: Reporter) -> bool:
    """Build `recipe` for `arch` unless the engine has it from the same content; True if it was built."""
    base = ensure_base(recipe.base, arch, settings, report)
    work = settings.cache_dir / "build" / "contexts"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="context-", dir=work) as scratch:
        context = Path(scratch) / "context"
        _assemble(recipe, context)
        inputs = json.dumps([base, arch, sorted(recipe.build_args), content_digest(context)])
        digest = hashlib.sha256(inputs.encode()).hexdigest()
        if image_label(recipe.reference) == digest:
            report(f"{recipe.reference} ({arch}) is up to date")
            return False
        report(f"building {recipe.reference} for linux/{arch}")
        build_args = [f"--build-arg={name}={value}" for name, value in (("BASE_IMAGE", base), *recipe.build_args)]
        run_tool(["docker", "build", "--quiet", "--platform", f"linux/{arch}", *build_args,
                  "--label", f"{DIGEST_LABEL}={digest}", "--tag", recipe.reference, str(context)],
                 what=f"docker build of {recipe.reference}", fix="see the build output above",
                 timeout_s=BUILD_TIMEOUT_S, env=docker_env())  # fmt: skip
    # The build it replaced, now untagged, goes (a build of ours still in use by a container stays).
    run_tool(["docker", "image", "prune", "--force", "--filter", f"label={DIGEST_LABEL}"],
             what="docker image prune of replaced builds", fix="check `docker info`", timeout_s=300)  # fmt: skip
    return True
