"""Nothing is deleted but what the product made: one delete function, real directories, whatever the settings say."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from temporal_dsql_deploy.cloud import infra
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.owned_paths import (
    LEGACY_STACK_ENTRIES,
    MARKER,
    adopt_stack_dir,
    is_legacy_stack_dir,
    make_owned_dir,
    remove_owned,
)
from temporal_dsql_deploy.runtime import stack as stack_module
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.envfile import GENERATED_MARKER
from temporal_dsql_deploy.settings.layout import Layout
from tests.unit.conftest import assert_clear_error, run_task

MakeSettings = Callable[..., Settings]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project root, one level down so that its parent can be marked too."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text("# the project\n")
    return project


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CACHE_DIR outside the project (one inside the checkout is refused)."""
    return tmp_path_factory.mktemp("cache")


def _refused(path: Path, root: Path, *reason: str) -> None:
    with pytest.raises(DeployError) as caught:
        remove_owned(path, project_root=root)
    assert f"refusing to delete {path}" in caught.value.problem
    for text in reason:
        assert text in caught.value.problem
    assert caught.value.fix


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (lambda root: Path("/"), "the root directory"),
        (lambda root: Path.home(), "home directory"),
        (lambda root: root, "project root"),
        (lambda root: root / "..", "a parent of the project root"),
        (lambda root: root.parent.parent, "a parent of the project root"),
    ],
    ids=["filesystem-root", "home", "project-root", "parent-via-dotdot", "grandparent"],
)
def test_the_root_the_home_and_the_project_are_never_deleted_even_when_marked(
    root: Path, where: Callable[[Path], Path], reason: str
) -> None:
    target = where(root)
    if target.resolve().is_relative_to(root.parent):  # only this test's own directories
        (target / MARKER).touch()  # marked by mistake or by hand: still refused
    _refused(target, root, reason)
    assert (root / "tasks.py").exists()


def test_an_unmarked_directory_is_refused_and_kept(root: Path, tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_text("x")
    _refused(mine, root, "did not create it", MARKER)
    assert (mine / "holiday.jpg").exists()


def test_a_symlink_to_a_marked_directory_is_refused_and_its_target_kept(root: Path, tmp_path: Path) -> None:
    target = make_owned_dir(tmp_path / "real-stack", project_root=root)
    (target / "data").mkdir()
    link = root / ".stack"
    link.symlink_to(target)
    _refused(link, root, "symbolic link", str(target))
    assert (target / "data").is_dir()


def test_a_marked_directory_and_what_is_inside_it_are_deleted(root: Path) -> None:
    stack = make_owned_dir(root / ".stack", project_root=root)
    (stack / "config" / "dashboards").mkdir(parents=True)
    _refused(stack / "config" / "dashboards", root, "did not create it")  # no marker of its own
    remove_owned(stack / "config" / "dashboards", project_root=root, owner=stack)  # inside the named marked one
    assert not (stack / "config" / "dashboards").exists()
    remove_owned(stack, project_root=root)
    assert not stack.exists()
    remove_owned(stack, project_root=root)  # gone already: nothing to do


def test_a_marker_in_a_parent_makes_nothing_below_it_the_products(root: Path, tmp_path: Path) -> None:
    outer = tmp_path / "outer"  # say, a directory once used as STACK_DIR
    mine = outer / "mine"
    mine.mkdir(parents=True)
    (outer / MARKER).touch()
    (mine / "thesis.tex").write_text("x")
    _refused(mine, root, "did not create it")
    with pytest.raises(DeployError, match="already holds files the product did not create"):
        make_owned_dir(mine, project_root=root)
    assert not (mine / MARKER).exists()
    elsewhere = make_owned_dir(tmp_path / "elsewhere", project_root=root)
    with pytest.raises(DeployError, match="not inside"):
        remove_owned(mine, project_root=root, owner=elsewhere)
    with pytest.raises(DeployError, match="carries no"):
        remove_owned(mine / "..", project_root=root, owner=tmp_path)  # the owner named must be marked itself
    assert (mine / "thesis.tex").exists()


def test_a_symlinked_stack_dir_is_marked_where_it_points_but_never_deleted_through_the_link(
    root: Path, tmp_path: Path
) -> None:
    bigger_disk = tmp_path / "bigger-disk"
    bigger_disk.mkdir()
    link = root / "stack-link"
    link.symlink_to(bigger_disk)
    make_owned_dir(link, project_root=root)
    assert (bigger_disk / MARKER).is_file()
    _refused(link, root, "symbolic link")


def test_only_the_generated_files_are_deleted(root: Path) -> None:
    compose = root / "compose" / "docker-compose.yml"
    compose.parent.mkdir()
    compose.write_text("services: {}\n")
    remove_owned(compose, project_root=root)
    assert not compose.exists()
    _refused(root / "tasks.py", root, "not a file the product generates")
    (root / ".env").write_text("TEMPORAL_UI_PORT=8081\n")
    _refused(root / ".env", root, "not written by `invoke deploy`")
    (root / ".env").write_text(f"{GENERATED_MARKER}\nAWS_REGION=us-east-1\n")
    remove_owned(root / ".env", project_root=root)
    assert not (root / ".env").exists()


def test_an_existing_directory_holding_other_files_is_not_claimed(root: Path, tmp_path: Path) -> None:
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "letter.txt").write_text("x")
    with pytest.raises(DeployError, match="already holds files the product did not create"):
        make_owned_dir(documents, project_root=root)
    assert not (documents / MARKER).exists()
    with pytest.raises(DeployError, match="project root"):
        make_owned_dir(root, project_root=root)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (make_owned_dir(empty, project_root=root) / MARKER).is_file()


def test_legacy_entries_are_what_the_layout_makes_in_stack_dir(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "elasticsearch")
    made = {layout.config, layout.logs, layout.all_data, layout.socket, layout.state, layout.runtime_dir}
    assert {path.name for path in made} | {MARKER} == LEGACY_STACK_ENTRIES
    assert all(path.parent == tmp_path for path in made)


def test_a_stack_dir_of_an_earlier_version_is_adopted_only_at_the_default_place_and_only_with_the_products_files(
    root: Path, tmp_path: Path
) -> None:
    old = root / ".stack"
    (old / "data").mkdir(parents=True)
    (old / "stack-state.json").write_text("{}")
    assert is_legacy_stack_dir(old, project_root=root)
    remove_owned(old / "data", project_root=root, owner=old)  # recognised without writing anything
    assert not (old / MARKER).exists()
    (old / "notes.txt").write_text("mine")  # something the product never makes there
    assert not adopt_stack_dir(old, project_root=root)
    _refused(old, root, "did not create it")
    for elsewhere in (root / "userdir", tmp_path / "elsewhere"):  # the product's layout, not the default place
        (elsewhere / "data").mkdir(parents=True)
        assert not adopt_stack_dir(elsewhere, project_root=root)
        _refused(elsewhere, root, "did not create it")
    (old / "notes.txt").unlink()
    assert adopt_stack_dir(old, project_root=root)
    assert (old / MARKER).is_file()


def test_cleanup_keeps_an_unmarked_directory_in_the_project_even_with_a_data_folder(
    project: Path, cache_dir: Path
) -> None:
    precious = project / "userdir" / "data" / "file"
    precious.parent.mkdir(parents=True)
    precious.write_text("precious")
    result = run_task(project, "cleanup", "--yes", STACK_DIR="userdir", CACHE_DIR=str(cache_dir))
    assert_clear_error(result, f"refusing to delete {project.resolve() / 'userdir'}", "did not create it")
    assert precious.read_text() == "precious"
    assert not (project / "userdir" / MARKER).exists()


def test_cleanup_keeps_a_directory_below_a_marked_one(project: Path, tmp_path: Path, cache_dir: Path) -> None:
    mine = tmp_path / "outer" / "mine"
    mine.mkdir(parents=True)
    (mine.parent / MARKER).touch()
    (mine / "keep.txt").write_text("x")
    result = run_task(project, "cleanup", "--yes", STACK_DIR=str(mine), CACHE_DIR=str(cache_dir))
    assert_clear_error(result, f"refusing to delete {mine}", "did not create it")
    assert (mine / "keep.txt").exists()


def test_cleanup_marks_nothing_before_the_user_said_yes(
    make_settings: MakeSettings, root: Path, cache_dir: Path
) -> None:
    old = root / ".stack"
    (old / "data").mkdir(parents=True)
    settings = make_settings(CACHE_DIR=str(cache_dir)).model_copy(update={"stack_dir": old})
    with pytest.raises(DeployError, match="cancelled"):
        infra.cleanup(settings, root, destroy_infra=False, yes=False, confirm=lambda _q: False,
                      report=lambda _m: None)  # fmt: skip
    assert not (old / MARKER).exists()
    assert (old / "data").is_dir()


def test_cleanup_refuses_the_project_root_as_stack_dir_even_past_settings_validation(
    make_settings: MakeSettings, root: Path, cache_dir: Path
) -> None:
    # An empty STACK_DIR once resolved to the project root, which cleanup removed with .git; settings validation
    # now refuses it, and this guard holds on its own: settings forced past validation are still refused.
    settings = make_settings(CACHE_DIR=str(cache_dir)).model_copy(update={"stack_dir": root})
    (root / ".git").mkdir()
    asked: list[str] = []
    with pytest.raises(DeployError, match=r"refusing to delete .*: it is the project root"):
        infra.cleanup(settings, root, destroy_infra=False, yes=False, confirm=lambda q: asked.append(q) is None,
                      report=lambda _m: None)  # fmt: skip
    assert asked == []  # refused before the question
    assert (root / ".git").is_dir()


def test_cleanup_refuses_a_stack_dir_the_product_did_not_make(project: Path, tmp_path: Path, cache_dir: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    result = run_task(project, "cleanup", "--yes", STACK_DIR=str(foreign), CACHE_DIR=str(cache_dir))
    assert_clear_error(result, f"refusing to delete {foreign}", "did not create it")
    assert (foreign / "keep.txt").exists()


def test_cleanup_deletes_a_stack_dir_it_made(project: Path, cache_dir: Path) -> None:
    stack = make_owned_dir(project / ".stack", project_root=project)
    (stack / "logs").mkdir()
    result = run_task(project, "cleanup", "--yes", CACHE_DIR=str(cache_dir))
    assert result.returncode == 0, result.stderr
    assert f"removed {stack}" in result.stdout
    assert not stack.exists()
    assert (project / "tasks.py").exists()


def test_down_volumes_asks_first_and_without_a_terminal_refuses_unless_yes(project: Path, cache_dir: Path) -> None:
    stack = make_owned_dir(project / ".stack", project_root=project)
    data = make_owned_dir(stack / "data", project_root=project)
    (data / "postgresql.password").write_text("x")
    refused = run_task(project, "down", "--volumes", CACHE_DIR=str(cache_dir))
    assert_clear_error(refused, str(data), "no terminal", "--yes")
    assert data.is_dir()
    deleted = run_task(project, "down", "--volumes", "--yes", CACHE_DIR=str(cache_dir))
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted its data in {data}" in deleted.stdout
    assert not data.exists()
    assert stack.is_dir()


def test_down_volumes_deletes_the_data_of_an_earlier_versions_stack_dir_only_after_yes(
    project: Path, cache_dir: Path
) -> None:
    data = project / ".stack" / "data"  # made before the marker existed
    (data / "elasticsearch").mkdir(parents=True)
    refused = run_task(project, "down", "--volumes", CACHE_DIR=str(cache_dir))
    assert_clear_error(refused, "no terminal", "--yes")
    assert not (project / ".stack" / MARKER).exists()  # nothing written before the answer
    result = run_task(project, "down", "--volumes", "--yes", CACHE_DIR=str(cache_dir))
    assert result.returncode == 0, result.stderr
    assert not data.exists()


def test_up_deletes_or_repairs_nothing_in_a_stack_dir_it_may_not_claim(
    make_settings: MakeSettings, root: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "config").mkdir(parents=True)
    (foreign / "config" / "secrets.env").write_text("mine")
    repaired: list[Path] = []  # the step that may delete or regenerate generated secret files in STACK_DIR
    monkeypatch.setattr(stack_module, "check_local_state", lambda layout, *_args: repaired.append(layout.root))
    settings = make_settings(STACK_DIR=str(foreign), CACHE_DIR=str(cache_dir))
    with pytest.raises(DeployError, match="already holds files the product did not create"):
        stack_module.LocalStack(settings, root).up(lambda _line: None)
    assert repaired == []
    assert (foreign / "config" / "secrets.env").read_text() == "mine"
    assert not (foreign / MARKER).exists()
