"""Images built only when what goes into them changed (runtime/images.py), against a stand-in `docker` that keeps
its images' labels in a JSON file; a stand-in `mmdebstrap` and `apt-get` record any call (there must be none)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from temporal_dsql_deploy.errors import ConfigError, DeployError
from temporal_dsql_deploy.runtime import images
from temporal_dsql_deploy.runtime.images import (
    BASE_REPOSITORY,
    DEBIAN_SUITE,
    DIGEST_LABEL,
    IMAGE_UID,
    UPSTREAM_BASE_DOCKERFILE,
    BaseImage,
    ImageRecipe,
    build_image,
    content_digest,
    ensure_base,
    image_label,
)
from temporal_dsql_deploy.settings.config import Architecture, Settings, host_architecture

MakeSettings = Callable[..., Settings]

FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
images_file = os.environ["FAKE_DOCKER_IMAGES"]
with open(images_file, encoding="utf-8") as handle:
    images = json.load(handle)  # reference -> its content-digest label ("" for none)
call = {{"program": "docker", "argv": args, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT")}}
if args[:1] == ["build"]:
    context = args[-1]
    call["context"] = {{
        os.path.relpath(os.path.join(root, name), context): open(os.path.join(root, name), encoding="utf-8").read()
        for root, _dirs, files in os.walk(context) for name in files
    }}
    label = args[args.index("--label") + 1].split("=", 1)[1] if "--label" in args else ""
    images[args[args.index("--tag") + 1]] = label  # as an engine would: the built image carries the label
    with open(images_file, "w", encoding="utf-8") as handle:
        json.dump(images, handle)
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\\n")
if args[:2] == ["image", "inspect"]:
    if args[-1] not in images:
        print("Error: No such image: " + args[-1], file=sys.stderr)
        sys.exit(1)
    print(images[args[-1]] or "<no value>")
elif args[:1] == ["pull"]:
    if os.environ.get("FAKE_PULL") == "hang":
        import time
        time.sleep(30)
    if os.environ.get("FAKE_PULL") != "ok":
        print("Error response from daemon: Get https://registry/v2/: no such host", file=sys.stderr)
        sys.exit(1)
elif args[:2] == ["image", "prune"]:
    assert args[2:] == ["--force", "--filter", "label=org.temporal-dsql-deploy.content-digest"], args  # ours only
elif args[:1] != ["build"]:
    sys.exit(3)  # nothing else is expected
"""
# mmdebstrap's stand-in writes a root filesystem archive where it is asked to (its last argument).
FAKE_MMDEBSTRAP = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"program": "mmdebstrap", "argv": sys.argv[1:]}}) + "\\n")
with open(sys.argv[-1], "w", encoding="utf-8") as rootfs:
    rootfs.write("root filesystem")
"""
RECORDER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"program": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}}) + "\\n")
sys.exit(1)
"""


class Engine:
    """The stand-in engine's images and the calls made to it (and to mmdebstrap or apt-get)."""

    def __init__(self, root: Path) -> None:
        self.images_file = root / "images.json"
        self.log = root / "calls.jsonl"
        self.set_images({})

    def set_images(self, images: dict[str, str]) -> None:
        self.images_file.write_text(json.dumps(images), encoding="utf-8")

    def images(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads(self.images_file.read_text(encoding="utf-8"))
        return loaded

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def calls_of(self, program: str) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["program"] == program]

    def builds(self) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["program"] == "docker" and call["argv"][:1] == ["build"]]


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Engine:
    root = tmp_path_factory.mktemp("engine")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("mmdebstrap", FAKE_MMDEBSTRAP), ("apt-get", RECORDER)):
        (bin_dir / name).write_text(text.format(python=sys.executable), encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    stand_in = Engine(root)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", str(stand_in.images_file))
    monkeypatch.setenv("FAKE_LOG", str(stand_in.log))
    return stand_in


@pytest.fixture
def settings(make_settings: MakeSettings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(CACHE_DIR=str(tmp_path_factory.mktemp("cache")))


# --- content_digest --------------------------------------------------------------------------------------------------
def _tree(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "engine.jar").write_bytes(b"jar bytes")
    (root / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n', encoding="utf-8")
    (root / "entrypoint.sh").chmod(0o755)
    (root / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    (root / "lib" / "current.jar").symlink_to("engine.jar")
    return root


def test_content_digest_is_the_same_for_the_same_content_anywhere(tmp_path: Path) -> None:
    first = content_digest(_tree(tmp_path / "a"))
    assert first == content_digest(_tree(tmp_path / "b"))
    os.utime(tmp_path / "a" / "Dockerfile", (1, 1))  # times are not content
    (tmp_path / "a" / "Dockerfile").chmod(0o600)  # nor are permissions other than executable
    assert content_digest(tmp_path / "a") == first


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "lib" / "engine.jar").write_bytes(b"jar bytez"),
        lambda root: (root / "lib" / "engine.jar").write_bytes(b"jar bytes\0"),
        lambda root: (root / "Dockerfile").chmod(0o755),
        lambda root: (root / "entrypoint.sh").chmod(0o644),
        lambda root: (root / "Dockerfile").rename(root / "lib" / "Dockerfile"),
        lambda root: (root / "lib" / "new").write_bytes(b""),
        lambda root: ((root / "lib" / "current.jar").unlink(), (root / "lib" / "current.jar").symlink_to("x.jar")),
    ],
    ids=["a-byte", "an-appended-byte", "executable-bit-on", "executable-bit-off", "a-move", "a-new-file", "a-link"],
)
def test_content_digest_changes_with_any_content(tmp_path: Path, change: Callable[[Path], object]) -> None:
    root = _tree(tmp_path / "tree")
    before = content_digest(root)
    change(root)
    assert content_digest(root) != before


def test_content_digest_comes_back_when_the_change_is_undone(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    before = content_digest(root)
    (root / "lib" / "engine.jar").write_bytes(b"other")
    (root / "Dockerfile").chmod(0o755)
    assert content_digest(root) != before
    (root / "lib" / "engine.jar").write_bytes(b"jar bytes")
    (root / "Dockerfile").chmod(0o644)
    assert content_digest(root) == before


# --- BaseImage.reference ---------------------------------------------------------------------------------------------
def test_a_base_reference_is_stable_and_names_its_packages() -> None:
    base = BaseImage("runtime", ("ca-certificates", "curl", "python3"))
    reference = base.reference("amd64")
    assert reference == BaseImage("runtime", ("ca-certificates", "curl", "python3")).reference("amd64")
    assert reference == BaseImage("runtime", ("python3", "curl", "ca-certificates")).reference("amd64")  # a set
    repository, tag = reference.split(":")
    assert repository == f"{BASE_REPOSITORY}-runtime"
    assert len(tag) == 16
    int(tag, 16)  # hexadecimal
    others = {
        BaseImage("runtime", ("ca-certificates", "curl")).reference("amd64"),
        BaseImage("runtime", ("ca-certificates", "curl", "python3", "tzdata")).reference("amd64"),
        BaseImage("runtime", ("ca-certificates", "curl", "python3.11")).reference("amd64"),
        base.reference("arm64"),
    }
    assert reference not in others
    assert len(others) == 4


# --- image_label -----------------------------------------------------------------------------------------------------
def test_image_label_tells_a_missing_image_from_an_unlabelled_one(engine: Engine) -> None:
    engine.set_images({"unlabelled:1": "", "labelled:1": "abc123"})
    assert image_label("missing:1") is None
    assert image_label("unlabelled:1") == ""
    assert image_label("labelled:1") == "abc123"
    inspect = engine.calls()[0]["argv"]
    assert inspect[:3] == ["image", "inspect", "--format"]
    assert DIGEST_LABEL in inspect[3]


# --- build_image -----------------------------------------------------------------------------------------------------
BASE = BaseImage("test", ("ca-certificates",))


def _recipe(root: Path, build_args: tuple[tuple[str, str], ...] = (("VERSION", "1.2.3"),)) -> ImageRecipe:
    sources = root / "sources"
    if not sources.exists():
        (sources / "lib").mkdir(parents=True)
        (sources / "lib" / "engine.jar").write_text("jar", encoding="utf-8")
        (sources / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n', encoding="utf-8")
        (sources / "entrypoint.sh").chmod(0o755)
        (sources / "test.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", encoding="utf-8")
    return ImageRecipe("temporal-dsql-test:1", BASE, sources / "test.Dockerfile",
                       {"lib": sources / "lib", "entrypoint.sh": sources / "entrypoint.sh"}, build_args)  # fmt: skip


def _no_base_was_made(engine: Engine) -> None:
    programs = [call["program"] for call in engine.calls()]
    assert "mmdebstrap" not in programs
    assert "apt-get" not in programs
    assert not any(call["argv"][:1] == ["import"] for call in engine.calls())


def test_an_image_is_built_on_its_base_with_its_digest_as_label(engine: Engine, settings: Settings,
                                                                tmp_path: Path) -> None:  # fmt: skip
    arch = host_architecture()
    base = BASE.reference(arch)
    engine.set_images({base: ""})  # the base was imported earlier (no label of its own)
    recipe = _recipe(tmp_path)
    assert build_image(recipe, arch, settings, lambda _message: None) is True
    (build,) = engine.builds()
    argv: list[str] = build["argv"]
    digest = engine.images()[recipe.reference]
    assert len(digest) == 64
    assert argv[argv.index("--label") + 1] == f"{DIGEST_LABEL}={digest}"
    assert argv[argv.index("--tag") + 1] == recipe.reference
    assert argv[argv.index("--platform") + 1] == f"linux/{arch}"
    assert f"--build-arg=BASE_IMAGE={base}" in argv
    assert "--build-arg=VERSION=1.2.3" in argv
    assert build["DOCKER_BUILDKIT"] == "0"  # the classic builder: no buildx needed
    # The context: the recipe's files under their names, and its Dockerfile as the Dockerfile.
    assert build["context"] == {"Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", "lib/engine.jar": "jar",
                                "entrypoint.sh": "#!/bin/sh\nexec \"$@\"\n"}  # fmt: skip
    context = Path(argv[-1])
    assert context.is_relative_to(settings.cache_dir)
    assert not context.exists()  # assembled in a scratch directory, gone after
    _no_base_was_made(engine)


def test_an_image_built_from_the_same_content_is_not_built_again(engine: Engine, settings: Settings,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    arch = host_architecture()
    engine.set_images({BASE.reference(arch): ""})
    assert build_image(_recipe(tmp_path), arch, settings, lambda _message: None) is True
    lines: list[str] = []
    assert build_image(_recipe(tmp_path), arch, settings, lines.append) is False
    assert len(engine.builds()) == 1
    assert lines == [f"temporal-dsql-test:1 ({arch}) is up to date"]
    _no_base_was_made(engine)
    # The one build removed the build it replaced (ours alone); the skipped one removed nothing.
    prunes = [call for call in engine.calls_of("docker") if call["argv"][:2] == ["image", "prune"]]
    assert len(prunes) == 1


CHANGES: dict[str, tuple[Callable[[Path, Engine], object], bool]] = {  # what changes, and whether it is content
    "a-file": (lambda root, _engine: (root / "sources" / "lib" / "engine.jar").write_text("jar2"), True),
    "an-executable-bit": (lambda root, _engine: (root / "sources" / "entrypoint.sh").chmod(0o644), True),
    "the-dockerfile": (
        lambda root, _engine: (root / "sources" / "test.Dockerfile").write_text(
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nUSER 1000\n"
        ),
        True,
    ),
    "another-label": (lambda _root, engine: engine.set_images({**engine.images(), "temporal-dsql-test:1": "x"}), False),
    "no-label": (lambda _root, engine: engine.set_images({**engine.images(), "temporal-dsql-test:1": ""}), False),
    "no-image": (lambda _root, engine: engine.set_images({BASE.reference(host_architecture()): ""}), False),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_an_image_is_built_again_when_its_content_or_label_differs(engine: Engine, settings: Settings,
                                                                   tmp_path: Path, what: str) -> None:  # fmt: skip
    change, is_content = CHANGES[what]
    arch = host_architecture()
    engine.set_images({BASE.reference(arch): ""})
    assert build_image(_recipe(tmp_path), arch, settings, lambda _message: None) is True
    first = engine.images()["temporal-dsql-test:1"]
    change(tmp_path, engine)
    assert build_image(_recipe(tmp_path), arch, settings, lambda _message: None) is True
    assert len(engine.builds()) == 2
    # The same content is the same digest (the image was rebuilt for its label alone); new content, a new one.
    assert (engine.images()["temporal-dsql-test:1"] != first) is is_content


def test_a_changed_build_argument_is_a_new_digest(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    arch = host_architecture()
    engine.set_images({BASE.reference(arch): ""})
    build_image(_recipe(tmp_path), arch, settings, lambda _message: None)
    first = engine.images()["temporal-dsql-test:1"]
    assert build_image(_recipe(tmp_path, (("VERSION", "1.2.4"),)), arch, settings, lambda _message: None) is True
    assert engine.images()["temporal-dsql-test:1"] != first
    assert "--build-arg=VERSION=1.2.4" in engine.builds()[1]["argv"]


def test_a_missing_context_source_is_named_before_any_build(engine: Engine, settings: Settings,
                                                            tmp_path: Path) -> None:  # fmt: skip
    arch = host_architecture()
    engine.set_images({BASE.reference(arch): ""})
    recipe = _recipe(tmp_path)
    shutil.rmtree(tmp_path / "sources" / "lib")
    with pytest.raises(DeployError, match="lib is missing"):
        build_image(recipe, arch, settings, lambda _message: None)
    assert engine.builds() == []


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_a_missing_base_is_made_from_debian_packages_for_its_architecture(engine: Engine, settings: Settings,
                                                                         arch: Architecture) -> None:  # fmt: skip
    """mmdebstrap makes the root filesystem for `arch`; an image FROM scratch holding it is tagged with the base's
    reference (`FROM scratch` records the architecture asked for). Another time, the base is found and kept."""
    reference = ensure_base(BASE, arch, settings, lambda _message: None)
    assert reference == BASE.reference(arch)
    (mmdebstrap,) = engine.calls_of("mmdebstrap")
    argv: list[str] = mmdebstrap["argv"]
    assert f"--architectures={arch}" in argv
    assert "--include=ca-certificates" in argv
    assert "--variant=minbase" in argv
    assert argv[-2] == DEBIAN_SUITE
    # The containers' user, whom the Dockerfiles give the data directories (tests/unit/test_build.py).
    assert any(arg.startswith("--customize-hook=") and f"useradd --uid {IMAGE_UID} " in arg for arg in argv)
    assert Path(argv[-1]).is_relative_to(settings.cache_dir)
    (build,) = engine.builds()
    assert build["argv"][build["argv"].index("--platform") + 1] == f"linux/{arch}"
    assert build["argv"][build["argv"].index("--tag") + 1] == reference
    assert build["DOCKER_BUILDKIT"] == "0"
    assert build["context"] == {"Dockerfile": "FROM scratch\nADD rootfs.tar /\n", "rootfs.tar": "root filesystem"}
    assert not Path(argv[-1]).exists()  # the scratch directory is gone
    assert engine.calls_of("apt-get") == []
    assert ensure_base(BASE, arch, settings, lambda _message: None) == reference
    assert len(engine.calls_of("mmdebstrap")) == 1
    assert len(engine.builds()) == 1


# --- bases from a registry -------------------------------------------------------------------------------------------
UPSTREAM = "registry.example:5000/library/debian:bookworm-slim@sha256:" + "ab" * 32


def _pulls(engine: Engine) -> list[list[str]]:
    return [call["argv"] for call in engine.calls_of("docker") if call["argv"][:1] == ["pull"]]


def test_with_a_registry_the_base_is_debians_image_with_the_packages_installed(
    engine: Engine, make_settings: MakeSettings, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PULL", "ok")
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES="registry", BASE_IMAGE_UPSTREAM=UPSTREAM)
    lines: list[str] = []
    arch = host_architecture()
    reference = ensure_base(BASE, arch, settings, lines.append)
    assert reference == BASE.reference(arch, UPSTREAM) != BASE.reference(arch)
    assert _pulls(engine) == [["pull", "--quiet", "--platform", f"linux/{arch}", UPSTREAM]]
    (build,) = engine.builds()
    argv: list[str] = build["argv"]
    assert argv[argv.index("--file") + 1] == str(UPSTREAM_BASE_DOCKERFILE)
    assert argv[argv.index("--network") + 1] == "host"  # apt needs a network; the project's engine has no bridge
    assert argv[argv.index("--tag") + 1] == reference
    assert f"--build-arg=UPSTREAM_IMAGE={UPSTREAM}" in argv
    assert f"--build-arg=DEBIAN_SUITE={DEBIAN_SUITE}" in argv
    assert "--build-arg=PACKAGES=ca-certificates" in argv
    assert any(arg.startswith("--build-arg=ADD_USER=useradd --uid 1000 ") for arg in argv)
    assert engine.calls_of("mmdebstrap") == []
    assert any(UPSTREAM in line for line in lines)
    assert ensure_base(BASE, arch, settings, lines.append) == reference  # built once, found after
    assert len(_pulls(engine)) == 1


def test_with_registry_required_a_failed_pull_is_an_error_naming_the_settings(
    engine: Engine, make_settings: MakeSettings, settings: Settings
) -> None:
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES="registry", BASE_IMAGE_UPSTREAM=UPSTREAM)
    with pytest.raises(DeployError) as raised:
        ensure_base(BASE, host_architecture(), settings, lambda _message: None)
    assert "BASE_IMAGE_UPSTREAM" in str(raised.value)
    assert "no such host" in str(raised.value)
    assert raised.value.fix is not None
    assert "BASE_IMAGES=debian" in raised.value.fix
    assert engine.builds() == []
    assert engine.calls_of("mmdebstrap") == []


def test_auto_falls_back_to_debians_packages_when_the_pull_fails_and_says_why(
    engine: Engine, make_settings: MakeSettings, settings: Settings
) -> None:
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES="auto", BASE_IMAGE_UPSTREAM=UPSTREAM)
    lines: list[str] = []
    arch = host_architecture()
    assert ensure_base(BASE, arch, settings, lines.append) == BASE.reference(arch)
    assert len(_pulls(engine)) == 1
    assert len(engine.calls_of("mmdebstrap")) == 1
    assert any("no upstream base" in line and "no such host" in line for line in lines), lines
    # A base made either way is used as it is: no pull is tried again.
    assert ensure_base(BASE, arch, settings, lines.append) == BASE.reference(arch)
    assert len(_pulls(engine)) == 1


@pytest.mark.parametrize("mode", ["auto", "debian"])
def test_a_base_already_made_from_debians_packages_needs_no_registry(
    engine: Engine, make_settings: MakeSettings, settings: Settings, mode: str
) -> None:
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES=mode, BASE_IMAGE_UPSTREAM=UPSTREAM)
    arch = host_architecture()
    engine.set_images({BASE.reference(arch): ""})
    assert ensure_base(BASE, arch, settings, lambda _message: None) == BASE.reference(arch)
    assert engine.calls_of("docker")[-1]["argv"][:2] == ["image", "inspect"]
    assert _pulls(engine) == []
    assert engine.builds() == []


def test_debian_mode_never_pulls(engine: Engine, make_settings: MakeSettings, settings: Settings,
                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_PULL", "ok")
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES="debian", BASE_IMAGE_UPSTREAM=UPSTREAM)
    assert ensure_base(BASE, host_architecture(), settings, lambda _message: None) == BASE.reference(
        host_architecture()
    )
    assert _pulls(engine) == []
    assert len(engine.calls_of("mmdebstrap")) == 1


@pytest.mark.parametrize(
    "reference", ["debian:bookworm-slim", "debian@sha256:" + "ab" * 32, "debian:bookworm-slim@sha256:abc"]
)
def test_an_upstream_base_not_pinned_by_tag_and_digest_is_refused(make_settings: MakeSettings, reference: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(BASE_IMAGE_UPSTREAM=reference)
    assert "BASE_IMAGE_UPSTREAM" in str(raised.value)


def test_auto_falls_back_when_the_registry_hangs(engine: Engine, make_settings: MakeSettings, settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_PULL", "hang")
    monkeypatch.setattr(images, "AUTO_PULL_TIMEOUT_S", 1)
    settings = make_settings(CACHE_DIR=str(settings.cache_dir), BASE_IMAGES="auto", BASE_IMAGE_UPSTREAM=UPSTREAM)
    lines: list[str] = []
    assert ensure_base(BASE, host_architecture(), settings, lines.append) == BASE.reference(host_architecture())
    assert any("no upstream base" in line and "no answer within 1s" in line for line in lines), lines
    assert len(engine.calls_of("mmdebstrap")) == 1
