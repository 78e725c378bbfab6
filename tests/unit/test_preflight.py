"""What `invoke up` refuses before it installs or starts anything: a disk too full, a damaged database directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_dsql_deploy.database.local_postgres import check_data_dir
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.preflight import check_disk_space
from tests.integration.conftest import require
from tests.unit.conftest import assert_clear_error, run_task


def _cluster_dir(root: Path, version: str = "15") -> Path:
    data = root / "data" / "elasticsearch" / "postgresql"
    for part in ("global", "base", "pg_wal"):
        (data / part).mkdir(parents=True, exist_ok=True)
    (data / "PG_VERSION").write_text(f"{version}\n", encoding="utf-8")
    (data / "global" / "pg_control").write_bytes(b"\0" * 16)
    return data


def test_a_whole_cluster_directory_and_a_missing_one_pass(tmp_path: Path) -> None:
    check_data_dir(tmp_path / "never-made", "15")
    check_data_dir(_cluster_dir(tmp_path), "15")


def test_a_directory_of_another_major_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeployError) as caught:
        check_data_dir(_cluster_dir(tmp_path, "14"), "15")
    assert "PostgreSQL '14'" in caught.value.problem
    assert "POSTGRES_VERSION=14" in caught.value.fix


@pytest.mark.parametrize("lost", ["global/pg_control", "pg_wal"])
def test_a_directory_missing_what_every_cluster_has_is_damaged(tmp_path: Path, lost: str) -> None:
    data = _cluster_dir(tmp_path)
    target = data / lost
    if target.is_dir():
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DeployError) as caught:
        check_data_dir(data, "15")
    assert f"{data} is damaged: {lost} missing" in caught.value.problem
    assert "invoke down --volumes" in caught.value.fix


def test_up_with_a_damaged_database_starts_and_installs_nothing(project: Path) -> None:
    stack = project / ".stack"  # unmarked: as an earlier version left it at the default place
    (_cluster_dir(stack) / "global" / "pg_control").unlink()
    result = run_task(project, "up", STACK_DIR=str(stack))
    assert_clear_error(result, "is damaged", "global/pg_control")
    assert sorted(p.name for p in stack.iterdir()) == ["data"]  # no config, logs or socket written
    assert not (project.parent / "cache").exists()  # nothing installed


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 32 MiB tmpfs: a disk with too little room for the stack."""
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    require(mounted.returncode == 0, f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_disk_too_small_is_named(small_disk: Path) -> None:
    with pytest.raises(DeployError) as caught:
        check_disk_space(small_disk / "stack")
    assert f"STACK_DIR {small_disk / 'stack'}" in caught.value.problem
    assert "MiB free" in caught.value.problem
    assert "STACK_DIR" in caught.value.fix


def test_up_on_a_full_disk_starts_and_installs_nothing(project: Path, small_disk: Path) -> None:
    stack = small_disk / "stack"
    result = run_task(project, "up", STACK_DIR=str(stack))
    assert_clear_error(result, f"STACK_DIR {stack}", "MiB free")
    assert not stack.exists()
    assert not (project.parent / "cache").exists()


def test_a_search_engine_port_the_local_runner_cannot_bind_starts_and_installs_nothing(project: Path) -> None:
    # Both engines' runners bind no HTTP port above 9299 (their hard-coded maximum) and exit at start.
    result = run_task(project, "up", TEMPORAL_ELASTICSEARCH_PORT="9300")
    assert_clear_error(result, "TEMPORAL_ELASTICSEARCH_PORT=9300", "9299")
    assert not (project / ".stack").exists()  # nothing written
    assert not (project.parent / "cache").exists()  # nothing installed


def test_the_local_runtime_refuses_several_hosts_per_role_before_anything(project: Path) -> None:
    stack = project / "several-hosts"
    result = run_task(project, "up", STACK_DIR=str(stack), TEMPORAL_HISTORY_HOSTS="2", TEMPORAL_FRONTEND_HOSTS="2")
    assert_clear_error(result, "TEMPORAL_HISTORY_HOSTS=2, TEMPORAL_FRONTEND_HOSTS=2", "--runtime docker")
    assert not stack.exists()  # nothing made
    assert not (project.parent / "cache").exists()  # nothing installed
