"""Another architecture's programs under emulation: an existing registration is used and left alone; where none
can be made the reason is given; what this module registers and mounts it undoes (runtime/emulation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_dsql_deploy.runtime import emulation


def test_an_existing_registration_is_used_and_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n")
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    ran: list[list[str]] = []
    monkeypatch.setattr(emulation, "_run", lambda argv: ran.append(argv) or True)
    with emulation.emulating("arm64", print) as unavailable:
        assert unavailable is None
    assert ran == []  # nothing registered, mounted or undone


def test_without_root_the_reason_is_given_and_nothing_is_done(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    monkeypatch.setattr(emulation, "can_install_packages", lambda: False)
    ran: list[list[str]] = []
    monkeypatch.setattr(emulation, "_run", lambda argv: ran.append(argv) or True)
    with emulation.emulating("arm64", print) as unavailable:
        assert unavailable is not None
        assert "qemu-aarch64" in unavailable
        assert "root" in unavailable
    assert ran == []


class FakeKernel:
    """binfmt_misc in a directory: mount makes `register`, enabling a format writes its file, as the kernel does."""

    def __init__(self, root: Path) -> None:
        self.root, self.ran = root, []

    def run(self, argv: list[str]) -> bool:
        self.ran.append(argv)
        if argv[0] == "mount":
            (self.root / "register").write_text("")
        elif argv[0] == "umount":
            for entry in self.root.iterdir():
                entry.unlink()
        elif argv[:2] == ["update-binfmts", "--enable"]:
            (self.root / argv[2]).write_text("enabled\n")
        elif argv[:2] == ["update-binfmts", "--disable"]:
            (self.root / argv[2]).write_text("disabled\n")
        return True

    def state(self) -> dict[str, str]:
        return {entry.name: entry.read_text() for entry in sorted(self.root.iterdir())}


@pytest.mark.parametrize("mounted_before", [True, False])
def test_the_kernel_is_left_as_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounted_before: bool) -> None:
    kernel = FakeKernel(tmp_path)
    if mounted_before:
        (tmp_path / "register").write_text("")
        (tmp_path / "qemu-x86_64").write_text("enabled\n")  # someone else's: stays
    before = kernel.state()
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    monkeypatch.setattr(emulation, "can_install_packages", lambda: True)
    monkeypatch.setattr(emulation.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(emulation, "_run", kernel.run)
    with emulation.emulating("arm64", print) as unavailable:
        assert unavailable is None
        assert (tmp_path / "qemu-aarch64").read_text().startswith("enabled")
    after = {name: text for name, text in kernel.state().items() if not text.startswith("disabled")}
    assert after == before
    assert ["update-binfmts", "--disable", "qemu-aarch64"] in kernel.ran
