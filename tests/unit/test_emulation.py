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
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 1000)
    ran: list[list[str]] = []
    monkeypatch.setattr(emulation, "_run", lambda argv: ran.append(argv) or True)
    with emulation.emulating("arm64", print) as unavailable:
        assert unavailable is not None
        assert "qemu-aarch64" in unavailable
        assert "root" in unavailable
    assert ran == []


@pytest.mark.parametrize("mounted_before", [True, False])
def test_what_it_registers_and_mounts_it_undoes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                mounted_before: bool) -> None:  # fmt: skip
    if mounted_before:
        (tmp_path / "register").write_text("")
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 0)
    monkeypatch.setattr(emulation.shutil, "which", lambda name: f"/usr/bin/{name}")
    ran: list[list[str]] = []
    monkeypatch.setattr(emulation, "_run", lambda argv: ran.append(argv) or True)
    with emulation.emulating("arm64", print) as unavailable:
        assert unavailable is None
        inside = list(ran)
    mount = [["mount", "-t", "binfmt_misc", "binfmt_misc", str(tmp_path)]] if not mounted_before else []
    assert inside == [*mount, ["update-binfmts", "--enable", "qemu-aarch64"]]
    undone = [["update-binfmts", "--disable", "qemu-aarch64"], *([["umount", str(tmp_path)]] if mount else [])]
    assert ran[len(inside) :] == undone
