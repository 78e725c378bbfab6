"""deploy and cleanup: a stand-in `terraform` that records its arguments and replays JSON, AWS under moto."""

from __future__ import annotations

import json
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from temporal_dsql_deploy import cli
from temporal_dsql_deploy.cloud import infra
from temporal_dsql_deploy.cloud.terraform import summarize_plan, variables
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.runtime.render_compose import write_compose
from temporal_dsql_deploy.settings.config import Settings, load_settings
from temporal_dsql_deploy.settings.envfile import GENERATED_MARKER

REGION = "us-east-1"  # moto's DSQL mock serves only some Regions
STAND_IN = """#!/usr/bin/env python3
import json, os, sys
args = [a for a in sys.argv[1:] if not a.startswith("-chdir=")]
with open(os.environ["FAKE_TF_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
replies = os.environ["FAKE_TF_REPLIES"]
if os.environ.get("FAKE_TF_WARN"):
    print("Warning: a provider deprecation that terraform prints on stderr", file=sys.stderr)
if args[:2] == ["show", "-json"]:
    name = "plan.json" if len(args) > 2 else "state.json"
    print(open(os.path.join(replies, name)).read())
elif args[:2] == ["output", "-json"]:
    print(open(os.path.join(replies, "output.json")).read())
elif args[:1] == ["apply"] and os.environ.get("FAKE_TF_SLOW_APPLY"):
    import signal, time
    def stop(*_):  # as terraform does on SIGINT: finish the resource in flight, write the state, exit
        open(os.environ["FAKE_TF_SLOW_APPLY"], "w").write("state written\\n")
        sys.exit(1)
    signal.signal(signal.SIGINT, stop)
    open(os.environ["FAKE_TF_SLOW_APPLY"], "w").write("applying\\n")
    time.sleep(60)
"""


@pytest.fixture
def aws_env(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    nowhere = str(tmp_path / "none")
    variables = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": nowhere,
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_REGION": REGION,
        "PROJECT_NAME": "demo",
    }
    for name, value in variables.items():
        clean_env.setenv(name, value)
    with mock_aws():
        yield clean_env


@pytest.fixture
def project(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A project root with terraform/ and a stand-in terraform first on PATH."""
    root = tmp_path / "project"
    (root / "terraform").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "terraform"
    stand_in.write_text(STAND_IN, encoding="utf-8")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    replies = tmp_path / "replies"
    replies.mkdir()
    clean_env.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    clean_env.setenv("FAKE_TF_LOG", str(tmp_path / "terraform.log"))
    clean_env.setenv("FAKE_TF_REPLIES", str(replies))
    return root


def _reply(project: Path, name: str, document: dict[str, Any]) -> None:
    (project.parent / "replies" / name).write_text(json.dumps(document), encoding="utf-8")


def _calls(project: Path) -> list[list[str]]:
    log = project.parent / "terraform.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _cluster(tags: dict[str, str], protected: bool = False) -> dict[str, str]:
    client = boto3.client("dsql", region_name=REGION)
    created = client.create_cluster(deletionProtectionEnabled=protected, tags=tags)
    return {"identifier": created["identifier"], "arn": created["arn"]}


def _outputs(cluster: dict[str, str]) -> dict[str, Any]:
    endpoint = f"{cluster['identifier']}.dsql.{REGION}.on.aws"
    values = {"identifier": cluster["identifier"], "endpoint": endpoint, "arn": cluster["arn"], "region": REGION}
    return {name: {"value": value, "type": "string", "sensitive": False} for name, value in values.items()}


CREATE_PLAN = {"resource_changes": [
    {"address": "aws_dsql_cluster.primary", "change": {"actions": ["create"]}},
    {"address": "aws_iam_policy.temporal_dsql_connect", "change": {"actions": ["create"]}},
    {"address": "data.aws_iam_policy_document.temporal_dsql_connect", "change": {"actions": ["read"]}},
]}  # fmt: skip
NO_CHANGES_PLAN = {"resource_changes": [{"address": "aws_dsql_cluster.primary", "change": {"actions": ["no-op"]}}]}


def _settings(project: Path) -> Settings:
    return load_settings(project)


def _deploy(project: Path, *, answer: bool = True, yes: bool = False, dry_run: bool = False) -> infra.DeployResult:
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return answer

    result = infra.deploy(
        _settings(project), project, yes=yes, dry_run=dry_run, confirm=confirm, report=lambda _m: None
    )
    result.steps.extend(f"asked: {q}" for q in asked)
    return result


def test_deploy_applies_after_confirmation_and_writes_env(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "demo"})
    _reply(project, "plan.json", CREATE_PLAN)
    _reply(project, "output.json", _outputs(cluster))
    result = _deploy(project)
    assert result.applied
    assert "asked: apply this plan?" in result.steps
    verbs = [call[0] for call in _calls(project)]
    assert verbs == ["init", "plan", "show", "apply", "output"]
    plan_call = _calls(project)[1]
    assert "project_name=demo" in plan_call
    assert f"region={REGION}" in plan_call
    env_text = (project / ".env").read_text(encoding="utf-8")
    assert env_text.startswith(GENERATED_MARKER)
    assert f"TEMPORAL_SQL_HOST={cluster['identifier']}.dsql.{REGION}.on.aws" in env_text
    assert "PASSWORD" not in env_text
    written = _settings(project)  # the written .env is valid configuration
    assert written.temporal_sql_plugin == "dsql"
    assert written.temporal_sql_iam_auth
    assert written.temporal_sql_tls_enabled
    assert not written.sql_is_local
    # The local stack's smaller pool stays local: the cluster gets the remote default.
    assert (written.temporal_sql_max_conns, written.temporal_sql_max_idle_conns) == (20, 20)


def test_deploy_keeps_a_pool_the_operator_set() -> None:
    outputs = {"region": REGION, "endpoint": f"abc.dsql.{REGION}.on.aws"}
    chosen = infra.dsql_env(Settings(_env_file=None, temporal_sql_max_conns=30), outputs)  # type: ignore[call-arg]
    assert (chosen["TEMPORAL_SQL_MAX_CONNS"], chosen["TEMPORAL_SQL_MAX_IDLE_CONNS"]) == ("30", "30")
    idle = infra.dsql_env(Settings(_env_file=None, temporal_sql_max_idle_conns=4), outputs)  # type: ignore[call-arg]
    assert (idle["TEMPORAL_SQL_MAX_CONNS"], idle["TEMPORAL_SQL_MAX_IDLE_CONNS"]) == ("20", "4")


def test_summary_names_what_will_be_created() -> None:
    summary = summarize_plan(CREATE_PLAN)
    assert summary.create == ["aws_dsql_cluster.primary", "aws_iam_policy.temporal_dsql_connect"]
    assert "2 to create, 0 to change, 0 to replace, 0 to destroy" in summary.describe()
    assert summarize_plan(NO_CHANGES_PLAN).no_changes


def test_rerun_with_nothing_to_change_changes_nothing(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "demo"})
    _reply(project, "plan.json", CREATE_PLAN)
    _reply(project, "output.json", _outputs(cluster))
    _deploy(project, yes=True)
    before = (project / ".env").read_text(encoding="utf-8")
    _reply(project, "plan.json", NO_CHANGES_PLAN)
    log_before = len(_calls(project))
    second = _deploy(project)
    assert not second.applied
    assert not second.env_changed
    assert not any(step.startswith("asked:") for step in second.steps)
    assert "apply" not in [call[0] for call in _calls(project)[log_before:]]
    assert (project / ".env").read_text(encoding="utf-8") == before


def test_declined_plan_applies_nothing(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    _reply(project, "plan.json", CREATE_PLAN)
    with pytest.raises(DeployError, match="cancelled"):
        _deploy(project, answer=False)
    assert "apply" not in [call[0] for call in _calls(project)]
    assert not (project / ".env").exists()


def test_dry_run_without_credentials_explains_and_touches_nothing(
    project: Path, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_EC2_METADATA_DISABLED", "true")
    clean_env.setenv("AWS_REGION", REGION)
    with pytest.raises(DeployError) as caught:
        _deploy(project, dry_run=True)
    assert "no AWS credentials" in str(caught.value)
    assert "nothing was created" in str(caught.value)
    assert _calls(project) == []
    assert not (project / ".env").exists()


def test_dry_run_with_everything_in_place_lists_the_steps(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    result = _deploy(project, dry_run=True)
    assert result.steps[0] == "terraform init"
    assert any(step == "terraform apply" for step in result.steps)
    assert _calls(project) == []


def test_missing_terraform_is_reported_first(aws_env: pytest.MonkeyPatch, project: Path, tmp_path: Path) -> None:
    aws_env.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeployError, match="terraform is not installed"):
        _deploy(project)


def test_region_that_is_not_a_region(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    aws_env.setenv("AWS_REGION", "zz-nowhere-9")
    with pytest.raises(DeployError, match="not an AWS Region"):
        _deploy(project)


def _state(cluster: dict[str, str], project_tag: str, protected: bool) -> dict[str, Any]:
    values = {"identifier": cluster["identifier"], "arn": cluster["arn"], "deletion_protection_enabled": protected,
              "tags_all": {"Project": project_tag, "ManagedBy": "temporal-dsql-deploy"}}  # fmt: skip
    return {"values": {"root_module": {"resources": [{"address": "aws_dsql_cluster.primary", "values": values}]}}}


def _cleanup(project: Path, *, destroy: bool = True) -> list[str]:
    settings = _settings(project)
    return infra.cleanup(settings, project, destroy_infra=destroy, yes=True, confirm=lambda _q: True,
                         report=lambda _m: None)  # fmt: skip


def _generated(project: Path) -> Callable[[], bool]:
    (project / ".stack" / "data").mkdir(parents=True)
    return (project / ".stack").exists


def test_cleanup_refuses_another_projects_cluster(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "someone-else"})
    _reply(project, "state.json", _state(cluster, "someone-else", protected=False))
    stack_exists = _generated(project)
    with pytest.raises(DeployError, match="Project='someone-else'"):
        _cleanup(project)
    assert stack_exists(), "nothing may be removed when the cleanup is refused"
    assert "apply" not in [call[0] for call in _calls(project)]


def test_cleanup_refuses_while_deletion_protection_is_on(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "demo"}, protected=True)
    _reply(project, "state.json", _state(cluster, "demo", protected=False))  # changed outside Terraform
    with pytest.raises(DeployError) as caught:
        _cleanup(project)
    assert "deletion protection is on" in str(caught.value)
    assert caught.value.fix is not None
    assert "deletion_protection=false" in caught.value.fix


def test_cleanup_destroys_own_cluster_and_only_generated_files(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "demo"})
    _reply(project, "state.json", _state(cluster, "demo", protected=False))
    _reply(project, "plan.json", {"resource_changes": [{"address": "aws_dsql_cluster.primary",
                                                        "change": {"actions": ["delete"]}}]})  # fmt: skip
    stack_exists = _generated(project)
    (project / ".env").write_text("# my own settings\nPROJECT_NAME=demo\n", encoding="utf-8")
    done = _cleanup(project)
    assert not stack_exists()
    assert (project / ".env").exists(), "an operator-written .env is not ours to delete"
    assert f"destroyed DSQL cluster {cluster['identifier']}" in done
    plan_call = next(call for call in _calls(project) if call[0] == "plan")
    assert "-destroy" in plan_call


def test_cleanup_removes_a_generated_env(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    (project / ".env").write_text(f"{GENERATED_MARKER}\nPROJECT_NAME=demo\n", encoding="utf-8")
    _cleanup(project, destroy=False)
    assert not (project / ".env").exists()
    assert _calls(project) == []


def test_cleanup_removes_the_config_directory_beside_the_compose_file(aws_env: pytest.MonkeyPatch,
                                                                      project: Path) -> None:  # fmt: skip
    compose = project / "compose" / "docker-compose.yml"
    write_compose(_settings(project), "amd64", compose)
    compose.unlink()  # no compose file: no Docker stack to stop (no engine is asked)
    done = _cleanup(project, destroy=False)
    assert not (project / "compose" / "config").exists()
    assert f"removed {project / 'compose' / 'config'}" in done
    assert _calls(project) == []


def test_cleanup_refuses_a_config_directory_it_did_not_write(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    theirs = project / "compose" / "config" / "notes.txt"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("someone else's", encoding="utf-8")
    stack_exists = _generated(project)
    with pytest.raises(DeployError, match="refusing to delete"):
        _cleanup(project, destroy=False)
    assert theirs.read_text(encoding="utf-8") == "someone else's"
    assert stack_exists(), "nothing may be removed when the cleanup is refused"


def test_cleanup_reads_terraform_json_from_stdout_only(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    cluster = _cluster({"Project": "demo"})
    _reply(project, "state.json", _state(cluster, "demo", protected=False))
    _reply(project, "plan.json", {"resource_changes": [{"address": "aws_dsql_cluster.primary",
                                                        "change": {"actions": ["delete"]}}]})  # fmt: skip
    aws_env.setenv("FAKE_TF_WARN", "1")
    assert f"destroyed DSQL cluster {cluster['identifier']}" in _cleanup(project)


def test_deploy_writes_env_from_the_settings_model(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    aws_env.setenv("TEMPORAL_SQL_MAX_CONN_LIFETIME", "20m")
    cluster = _cluster({"Project": "demo"})
    _reply(project, "plan.json", CREATE_PLAN)
    _reply(project, "output.json", _outputs(cluster))
    _deploy(project, yes=True)
    written = (project / ".env").read_text(encoding="utf-8")
    assert "TEMPORAL_SQL_PORT=5432\n" in written
    assert "TEMPORAL_SQL_MAX_CONN_LIFETIME=1200s\n" in written  # the operator's lifetime, under DSQL's 60 minutes
    assert (project / ".env").stat().st_mode & 0o777 == 0o600


def test_an_interrupted_deploy_lets_terraform_stop_cleanly_and_writes_no_env(
    aws_env: pytest.MonkeyPatch, project: Path, tmp_path: Path
) -> None:
    """Ctrl-C during apply: terraform gets the interrupt and time to write its state; .env is not touched."""
    marker = tmp_path / "apply.marker"
    aws_env.setenv("FAKE_TF_SLOW_APPLY", str(marker))
    _reply(project, "plan.json", CREATE_PLAN)

    main = threading.main_thread().ident
    assert main is not None

    applying_seen: list[bool] = []

    def interrupt_once_applying() -> None:
        deadline = time.monotonic() + 120  # generous: a loaded machine starts the stand-in terraform slowly
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.05)
        applying_seen.append(marker.exists())
        signal.pthread_kill(main, signal.SIGINT)  # as Ctrl-C would, to the main thread

    threading.Thread(target=interrupt_once_applying, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _deploy(project, yes=True)
    assert applying_seen == [True], f"apply did not start within 120 s; terraform calls: {_calls(project)}"
    assert marker.read_text() == "state written\n"  # terraform was not killed mid-apply
    assert not (project / ".env").exists()
    assert [call[0] for call in _calls(project)][-1] == "apply"  # nothing ran after the interrupted apply


def test_an_interrupted_task_says_so_and_how_to_go_on(capsys: pytest.CaptureFixture[str]) -> None:
    @cli.reported
    def deploy() -> None:
        raise KeyboardInterrupt

    with pytest.raises(cli.TaskFailed) as failed:
        deploy()
    assert failed.value.code == 130
    stderr = capsys.readouterr().err
    assert "error: deploy was interrupted" in stderr
    assert "fix: run the same command again" in stderr
    assert "Traceback" not in stderr


def _pair_state(primary: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """The state of a multi-Region pair: both clusters (the peer under count), as `terraform show -json` lists them."""
    resources = [
        {
            "address": address,
            "type": "aws_dsql_cluster",
            "values": state["values"]["root_module"]["resources"][0]["values"],
        }
        for address, state in (("aws_dsql_cluster.primary", primary), ("aws_dsql_cluster.peer[0]", peer))
    ]
    resources.append({"address": "aws_iam_policy.temporal_dsql_connect", "type": "aws_iam_policy", "values": {}})
    return {"values": {"root_module": {"resources": resources}}}


DESTROY_PAIR_PLAN = {"resource_changes": [
    {"address": "aws_dsql_cluster.primary", "change": {"actions": ["delete"]}},
    {"address": "aws_dsql_cluster.peer[0]", "change": {"actions": ["delete"]}},
    {"address": "aws_iam_policy.temporal_dsql_connect", "change": {"actions": ["delete"]}},
]}  # fmt: skip


def test_cleanup_refuses_listing_every_cluster_it_would_not_destroy(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    """The peer counts as much as the primary: each refused cluster is named with its reasons, before any plan."""
    primary = _cluster({"Project": "demo"}, protected=True)  # turned on outside Terraform: seen live
    peer = _cluster({"Project": "someone-else"})
    _reply(project, "state.json", _pair_state(_state(primary, "demo", False), _state(peer, "someone-else", False)))
    stack_exists = _generated(project)
    with pytest.raises(DeployError) as caught:
        _cleanup(project)
    message = str(caught.value)
    assert "refusing to destroy 2 of the 2 DSQL clusters" in message
    assert f"cluster {primary['identifier']} (aws_dsql_cluster.primary): deletion protection is on" in message
    assert f"cluster {peer['identifier']} (aws_dsql_cluster.peer[0]): the Terraform state tags it" in message
    assert "Project='someone-else'" in message
    assert [call[0] for call in _calls(project)] == ["show"], "refused before planning or asking anything"
    assert stack_exists()


def test_cleanup_refuses_when_only_the_peer_is_protected(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    primary = _cluster({"Project": "demo"})
    peer = _cluster({"Project": "demo"})
    _reply(project, "state.json", _pair_state(_state(primary, "demo", False), _state(peer, "demo", True)))
    with pytest.raises(DeployError) as caught:
        _cleanup(project)
    assert "refusing to destroy 1 of the 2 DSQL clusters" in str(caught.value)
    assert f"cluster {peer['identifier']} (aws_dsql_cluster.peer[0]): deletion protection is on" in str(caught.value)
    assert primary["identifier"] not in str(caught.value)
    assert "plan" not in [call[0] for call in _calls(project)]


def test_cleanup_shows_the_destroy_plan_before_asking(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    primary, peer = _cluster({"Project": "demo"}), _cluster({"Project": "demo"})
    _reply(project, "state.json", _pair_state(_state(primary, "demo", False), _state(peer, "demo", False)))
    _reply(project, "plan.json", DESTROY_PAIR_PLAN)
    stack_exists = _generated(project)
    seen: list[str] = []

    def confirm(question: str) -> bool:
        seen.append(f"asked: {question}")
        return False

    with pytest.raises(DeployError, match="cleanup cancelled; nothing was changed"):
        infra.cleanup(_settings(project), project, destroy_infra=True, yes=False, confirm=confirm,
                      report=seen.append)  # fmt: skip
    plan_shown = next(
        i for i, line in enumerate(seen) if "0 to create, 0 to change, 0 to replace, 3 to destroy" in line
    )
    asked = next(i for i, line in enumerate(seen) if line.startswith("asked:"))
    assert plan_shown < asked
    for address in ("aws_dsql_cluster.primary", "aws_dsql_cluster.peer[0]", "aws_iam_policy.temporal_dsql_connect"):
        assert f"  - {address}" in seen[plan_shown]
    assert "destroy the 3 resources above" in seen[asked]
    assert primary["identifier"] in seen[asked]
    assert peer["identifier"] in seen[asked]
    assert "apply" not in [call[0] for call in _calls(project)]
    assert stack_exists()
    assert not (project / "terraform" / "tfplan").exists()


def test_cleanup_applies_the_plan_it_showed_for_both_clusters(aws_env: pytest.MonkeyPatch, project: Path) -> None:
    primary, peer = _cluster({"Project": "demo"}), _cluster({"Project": "demo"})
    _reply(project, "state.json", _pair_state(_state(primary, "demo", False), _state(peer, "demo", False)))
    _reply(project, "plan.json", DESTROY_PAIR_PLAN)
    done = _cleanup(project)
    assert [call[0] for call in _calls(project)] == ["show", "plan", "show", "apply"]  # one plan, applied as shown
    assert _calls(project)[-1][-1] == "tfplan"
    assert f"destroyed DSQL cluster {primary['identifier']}" in done
    assert f"destroyed DSQL cluster {peer['identifier']}" in done


def test_a_peered_pair_is_planned_with_its_witness_and_writes_the_peers_endpoint() -> None:
    settings = Settings(_env_file=None, aws_region=REGION, standby_region="us-west-2",  # type: ignore[call-arg]
                        witness_region="us-east-2")  # fmt: skip
    assert variables(settings)[-4:] == ["-var", "peer_region=us-west-2", "-var", "witness_region=us-east-2"]
    outputs = {"region": REGION, "endpoint": f"abc.dsql.{REGION}.on.aws", "peer_endpoint": "def.dsql.us-west-2.on.aws"}
    written = infra.dsql_env(settings, outputs)
    assert (written["STANDBY_REGION"], written["WITNESS_REGION"], written["STANDBY_SQL_HOST"]) == (
        "us-west-2", "us-east-2", "def.dsql.us-west-2.on.aws")  # fmt: skip
    assert "STANDBY_SQL_HOST" not in infra.dsql_env(Settings(_env_file=None), {"region": REGION,  # type: ignore[call-arg]
                                                                                "endpoint": "abc"})  # fmt: skip
