from __future__ import annotations

from pathlib import Path

from temporal_dsql_deploy.settings.envfile import GENERATED_MARKER, generated_by_deploy, update_env_file


def test_new_file_is_marked_as_generated(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert update_env_file(path, {"A": "1", "B": "2"})
    assert path.read_text(encoding="utf-8") == f"{GENERATED_MARKER}\nA=1\nB=2\n"
    assert generated_by_deploy(path)


def test_operator_lines_and_comments_are_kept(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# mine\nTEMPORAL_UI_PORT=8081\nA=old\n# A=commented\n", encoding="utf-8")
    assert update_env_file(path, {"A": "new", "C": "3"})
    assert path.read_text(encoding="utf-8") == "# mine\nTEMPORAL_UI_PORT=8081\nA=new\n# A=commented\nC=3\n"
    assert not generated_by_deploy(path)


def test_written_readable_by_its_owner_only(tmp_path: Path) -> None:
    created, existing = tmp_path / "new.env", tmp_path / "old.env"
    existing.write_text("A=1\n", encoding="utf-8")
    existing.chmod(0o644)
    update_env_file(created, {"A": "1"})
    update_env_file(existing, {"B": "2"})
    assert created.stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o600


def test_same_values_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    update_env_file(path, {"A": "1"})
    assert not update_env_file(path, {"A": "1"})
