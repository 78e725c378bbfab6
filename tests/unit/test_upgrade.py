"""`invoke upgrade`: which moves between releases are allowed, the plan, the record of the stack's release, and how
each runtime moves one role at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from temporal_dsql_deploy import operations
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.interface import ServiceRow
from temporal_dsql_deploy.runtime.local_runtime import LocalRuntime
from temporal_dsql_deploy.runtime.model import Runtime
from temporal_dsql_deploy.runtime.render_compose import render_compose, with_service_from
from temporal_dsql_deploy.runtime.render_supervisor import render_supervisor
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings, pin_setting
from temporal_dsql_deploy.settings.layout import Layout
from temporal_dsql_deploy.temporal.upgrade import (
    UPGRADE_ORDER,
    ReleaseRecord,
    check_hop,
    check_start,
    mark_moving,
    next_release,
    plan_hop,
    plan_lines,
    read_record,
    record_release,
    write_record,
)
from tests.conftest import fake_paths

MakeSettings = Callable[..., Settings]
ROLES = {f"temporal-{role}": 1 for role in UPGRADE_ORDER}


def test_the_next_minor_release_is_an_upgrade_history_first() -> None:
    hop = check_hop("1.30.9", "1.31.2", "1.18")
    assert not hop.rollback
    assert hop.schema_changes
    assert hop.template_changes
    assert hop.roles == ("history", "matching", "frontend", "worker")
    same_schema = check_hop("1.31.2", "1.32.2", "1.19")
    assert not same_schema.schema_changes
    assert not same_schema.template_changes


def test_without_a_target_the_next_minor_release() -> None:
    assert [next_release(version) for version in ("1.30.9", "1.31.2", "1.32.2")] == ["1.31.2", "1.32.2", "1.32.2"]
    with pytest.raises(DeployError, match="already runs"):
        check_hop("1.32.2", next_release("1.32.2"), "1.19")


def test_a_skipped_minor_release_is_refused_with_the_path_to_take() -> None:
    with pytest.raises(DeployError) as refused:
        check_hop("1.30.9", "1.32.2", "1.18")
    assert "skips a minor release" in refused.value.problem
    assert "1.30.9 → 1.31.2 → 1.32.2" in refused.value.fix


def test_a_rollback_without_a_schema_step_goes_the_other_way() -> None:
    hop = check_hop("1.32.2", "1.31.2", "1.19")
    assert hop.rollback
    assert hop.roles == ("worker", "frontend", "matching", "history")


@pytest.mark.parametrize(("current", "target", "schema", "said"), [
    ("1.31.2", "1.30.9", "1.19", "the database is at schema 1.19"),  # the upgrade applied 1.31's step
    ("1.31.2", "1.30.9", None, "the database is at schema 1.19"),  # unknown: the current release's schema
    ("1.32.2", "1.30.9", "1.19", "goes back more than one minor release"),
    ("1.32.2", "1.32.2", "1.19", "already runs Temporal 1.32.2"),
    ("1.30.9", "1.29.0", "1.18", "not a release this product supports"),
    ("1.29.0", "1.30.9", "1.18", "the stack runs Temporal 1.29.0"),
])  # fmt: skip
def test_moves_upstream_does_not_support_are_refused(current: str, target: str, schema: str | None,
                                                     said: str) -> None:  # fmt: skip
    with pytest.raises(DeployError) as refused:
        check_hop(current, target, schema)
    assert said in refused.value.problem


def test_a_rollback_after_the_schema_step_says_why_and_what_to_do() -> None:
    with pytest.raises(DeployError) as refused:
        check_hop("1.31.2", "1.30.9", "1.19")
    assert "1.30.9 runs on 1.18" in refused.value.problem
    assert "restore the backup" in refused.value.fix


def test_the_plan_names_the_schema_step_the_template_and_the_order() -> None:
    lines = plan_lines(check_hop("1.30.9", "1.31.2", "1.18"), "local", "1.18", ROLES)
    text = "\n".join(lines)
    assert lines[0] == "Temporal 1.30.9 → 1.31.2 (upgrade) on the local runtime"
    assert "schema: 1.18 → 1.19" in text
    assert "v13 → v14" in text
    assert "temporal-history (1 host), then temporal-matching" in text
    assert "history first" in text
    rollback = "\n".join(plan_lines(check_hop("1.32.2", "1.31.2", "1.19"), "docker", "1.19", ROLES))
    assert "schema: none (the database stays at 1.19)" in rollback


def test_the_release_record_is_kept_with_the_data(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "stack", "elasticsearch")
    assert read_record(layout) is None
    record_release(layout, "1.31.2")
    assert layout.release_record.parent == layout.all_data
    assert read_record(layout) == ReleaseRecord("1.31.2")
    layout.release_record.write_text("\n", encoding="utf-8")
    assert read_record(layout) is None


def test_up_moves_a_stack_only_where_an_upgrade_could(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "stack", "elasticsearch")
    assert check_start(layout, "1.30.9") is None  # new data
    record_release(layout, "1.30.9")
    assert check_start(layout, "1.30.9") is None
    said = check_start(layout, "1.31.2")
    assert said is not None
    assert "the whole stack restarts on 1.31.2 (the schema first)" in said
    with pytest.raises(DeployError) as refused:
        check_start(layout, "1.32.2")
    assert "TEMPORAL_VERSION=1.32.2" in refused.value.problem
    assert refused.value.fix.startswith("set TEMPORAL_VERSION=1.30.9 again")
    record_release(layout, "1.31.2")
    with pytest.raises(DeployError, match=r"database is at schema 1\.19"):
        check_start(layout, "1.30.9")
    record_release(layout, "1.28.0")
    with pytest.raises(DeployError) as unsupported:
        check_start(layout, "1.30.9")
    assert "last run by Temporal 1.28.0: Temporal 1.28.0 is not a release this product supports" in (
        unsupported.value.problem
    )
    assert "start afresh with `invoke down --volumes`" in unsupported.value.fix


def test_each_role_runs_through_its_own_link(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_SQL_PASSWORD="pw")
    stack = LocalStack(settings, tmp_path)
    paths = fake_paths(tmp_path)
    document = yaml.safe_load(render_supervisor(stack.model, settings, paths, stack.layout, tmp_path))
    for role in UPGRADE_ORDER:
        command = document["processes"][f"temporal-{role}"]["command"]
        assert f"{stack.layout.roles}/temporal-{role}/server --config-file" in command
    build = tmp_path / "build-a"
    build.mkdir()
    stack.layout.root.mkdir()  # made by `up`
    stack.link_role("temporal-history", build)
    stack.link_role("temporal-history", tmp_path)  # replaced in one step, never missing
    assert stack.layout.role_build("temporal-history").resolve() == tmp_path.resolve()
    assert [p.name for p in stack.layout.roles.iterdir()] == ["temporal-history"]


def test_compose_moves_one_service_to_the_other_release(make_settings: MakeSettings) -> None:
    old = make_settings(TEMPORAL_VERSION="1.30.9")
    new = old.model_copy(update={"temporal_version": "1.31.2"})
    current = render_compose(build_stack(old), old, "amd64")
    moved = yaml.safe_load(with_service_from(current, render_compose(build_stack(new), new, "amd64"),
                                             "temporal-history"))  # fmt: skip
    images = {name: service["image"] for name, service in moved["services"].items() if "temporal-" in name}
    assert images["temporal-history"].endswith(":1.31.2")
    assert {image.rsplit(":", 1)[1] for name, image in images.items() if name != "temporal-history"} == {"1.30.9"}
    assert moved["volumes"] == yaml.safe_load(current)["volumes"]


def test_the_new_release_is_written_to_env_unless_the_environment_sets_it(
    make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("# mine\nTEMPORAL_VERSION=1.30.9\n", encoding="utf-8")
    monkeypatch.delenv("TEMPORAL_VERSION", raising=False)
    assert pin_setting(tmp_path, "TEMPORAL_VERSION", "1.31.2") == f"set TEMPORAL_VERSION=1.31.2 in {tmp_path / '.env'}"
    assert (tmp_path / ".env").read_text(encoding="utf-8") == "# mine\nTEMPORAL_VERSION=1.31.2\n"
    monkeypatch.setenv("TEMPORAL_VERSION", "1.30.9")
    said = pin_setting(tmp_path, "TEMPORAL_VERSION", "1.32.2")
    assert said == "TEMPORAL_VERSION is 1.30.9 in the environment, which wins over .env: set it to 1.32.2"
    assert "1.31.2" in (tmp_path / ".env").read_text(encoding="utf-8")


def test_an_unfinished_upgrade_is_finished_or_undone_and_nothing_else() -> None:
    record = ReleaseRecord("1.31.2", "1.32.2")
    finishing = plan_hop(record, "1.32.2", "1.19")
    assert (finishing.current.version, finishing.target.version, finishing.rollback) == ("1.31.2", "1.32.2", False)
    undoing = plan_hop(record, "1.31.2", "1.19")  # both on 1.19: allowed, roles in the reverse order
    assert (undoing.current.version, undoing.target.version, undoing.rollback) == ("1.32.2", "1.31.2", True)
    with pytest.raises(DeployError) as refused:
        plan_hop(ReleaseRecord("1.30.9", "1.31.2"), "1.30.9", "1.19")  # the 1.19 step was applied
    assert "cannot roll back" in refused.value.problem
    with pytest.raises(DeployError) as other:
        plan_hop(ReleaseRecord("1.30.9", "1.31.2"), "1.32.2", "1.19")
    assert "did not finish" in other.value.problem
    assert "`invoke upgrade --to 1.31.2`" in other.value.fix


def test_a_database_a_later_release_wrote_is_not_upgraded_as_the_older_one() -> None:
    """No record (data from before records), TEMPORAL_VERSION at 1.30.9, but the database at 1.19."""
    with pytest.raises(DeployError) as refused:
        check_hop("1.30.9", "1.31.2", "1.19")
    assert "newer than Temporal 1.30.9's (1.18)" in refused.value.problem


def test_up_after_an_unfinished_upgrade(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "stack", "elasticsearch")
    write_record(layout, ReleaseRecord("1.30.9", "1.31.2"))
    said = check_start(layout, "1.31.2")
    assert said is not None
    assert said.startswith("finishing the move from Temporal 1.30.9 to 1.31.2")
    with pytest.raises(DeployError) as refused:
        check_start(layout, "1.30.9")  # the schema may have moved to 1.19 already
    assert "did not finish" in refused.value.problem
    write_record(layout, ReleaseRecord("1.31.2", "1.32.2"))
    back = check_start(layout, "1.31.2")  # the same schema: going back is fine
    assert back is not None
    assert "did not finish" in back


class _RecordingRuntime(LocalRuntime):
    """The local runtime's interface with the stack's moves recorded instead of made, and one role failing once:
    what `upgrade` itself does around them (the plan, the record, resuming) is the real code."""

    moves: ClassVar[list[str]] = []
    fail_on: ClassVar[str | None] = None

    def status(self) -> list[ServiceRow]:
        return [ServiceRow(name, "Running", "healthy", "-", True) for name in self.model.names]

    def check_replaceable(self) -> None:
        pass

    def schema_version(self) -> str | None:
        return None

    def prepare_release(self, release_settings: Settings, report: Reporter) -> None:
        if self.fail_on == "build":
            _RecordingRuntime.fail_on = None
            raise DeployError("building Temporal failed", "check access to the package registries")
        self.moves.append(f"build {release_settings.temporal_version}")

    def migrate(self, release_settings: Settings, report: Reporter) -> list[str]:
        self.moves.append(f"schema {release_settings.temporal_version}")
        return []

    def replace_release(self, service: str, release_settings: Settings) -> None:
        if service == self.fail_on:
            _RecordingRuntime.fail_on = None
            raise DeployError(f"{service} was not healthy after 600s", f"see `invoke logs {service}`")
        self.moves.append(service)

    def finish_release(self, release_settings: Settings) -> None:
        self.moves.append("finish")


def test_an_upgrade_that_stops_half_way_is_finished_by_running_it_again(
    make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_VERSION="1.30.9")
    layout = Layout(settings.stack_dir, settings.search_engine)
    record_release(layout, "1.30.9")
    monkeypatch.setattr(operations, "runtime_for", lambda s, root, _kind: _RecordingRuntime(s, root))
    _RecordingRuntime.moves.clear()
    _RecordingRuntime.fail_on = "build"
    with pytest.raises(DeployError, match="building Temporal failed"):
        operations.upgrade(settings, tmp_path, Runtime.LOCAL, to="", dry_run=False)
    assert read_record(layout) == ReleaseRecord("1.30.9")  # a failed build changes nothing
    _RecordingRuntime.fail_on = "temporal-matching"
    with pytest.raises(DeployError) as stopped:
        operations.upgrade(settings, tmp_path, Runtime.LOCAL, to="", dry_run=False)
    assert "the move to Temporal 1.31.2 stopped there" in stopped.value.problem
    assert "`invoke upgrade --to 1.31.2` finishes it" in stopped.value.fix
    assert read_record(layout) == ReleaseRecord("1.30.9", "1.31.2")
    assert _RecordingRuntime.moves == ["build 1.31.2", "schema 1.31.2", "temporal-history"]
    _RecordingRuntime.moves.clear()
    monkeypatch.delenv("TEMPORAL_VERSION")
    operations.upgrade(settings, tmp_path, Runtime.LOCAL, to="", dry_run=False)  # no --to: the unfinished move's
    assert _RecordingRuntime.moves == ["build 1.31.2", "schema 1.31.2", "temporal-history", "temporal-matching",
                                       "temporal-frontend", "temporal-worker", "finish"]  # fmt: skip
    assert read_record(layout) == ReleaseRecord("1.31.2")
    assert "TEMPORAL_VERSION=1.31.2" in (tmp_path / ".env").read_text(encoding="utf-8")


def test_a_dry_run_changes_nothing(make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    settings = make_settings(STACK_DIR=str(tmp_path / "stack"), TEMPORAL_VERSION="1.31.2")
    layout = Layout(settings.stack_dir, settings.search_engine)
    monkeypatch.setattr(operations, "runtime_for", lambda s, root, _kind: _RecordingRuntime(s, root))
    _RecordingRuntime.moves.clear()
    operations.upgrade(settings, tmp_path, Runtime.DOCKER, to="1.32.2", dry_run=True)
    assert _RecordingRuntime.moves == []
    assert read_record(layout) is None
    assert "Temporal 1.31.2 → 1.32.2 (upgrade) on the docker runtime" in capsys.readouterr().out


def test_up_records_the_move_it_makes(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "stack", "elasticsearch")
    mark_moving(layout, "1.30.9")
    assert read_record(layout) is None  # new data: `up` records its release once it runs
    record_release(layout, "1.30.9")
    mark_moving(layout, "1.30.9")
    assert read_record(layout) == ReleaseRecord("1.30.9")
    mark_moving(layout, "1.31.2")
    assert read_record(layout) == ReleaseRecord("1.30.9", "1.31.2")
    mark_moving(layout, "1.31.2")  # the same move again: still from 1.30.9
    assert read_record(layout) == ReleaseRecord("1.30.9", "1.31.2")
    write_record(layout, ReleaseRecord("1.31.2", "1.32.2"))
    mark_moving(layout, "1.31.2")  # back from an unfinished move on the same schema
    assert read_record(layout) == ReleaseRecord("1.32.2", "1.31.2")
