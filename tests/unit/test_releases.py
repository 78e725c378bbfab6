"""The supported Temporal releases: TEMPORAL_VERSION picks one, and the server module has a build list for each."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from temporal_dsql_deploy.errors import ConfigError
from temporal_dsql_deploy.kubernetes.chart import chart_values
from temporal_dsql_deploy.runtime.model import GrpcProbe, HttpProbe
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.releases import LATEST, RELEASES, Release, release
from tests.conftest import PROJECT_ROOT

MakeSettings = Callable[..., Settings]
SERVER = PROJECT_ROOT / "server"


@pytest.mark.parametrize("chosen", RELEASES, ids=[chosen.version for chosen in RELEASES])
def test_each_release_is_a_build_list_of_the_server_module_at_that_release(chosen: Release) -> None:
    assert release(chosen.version) == chosen
    modfile = SERVER / chosen.modfile
    text = modfile.read_text(encoding="utf-8")
    assert re.findall(r"^\s*go\.temporal\.io/server (v\S+)$", text, re.MULTILINE) == [f"v{chosen.version}"]
    assert "module github.com/temporal-dsql-deploy/server\n" in text
    assert modfile.with_suffix(".sum").is_file(), f"{modfile.name} has no {modfile.with_suffix('.sum').name} beside it"


def test_releases_are_consecutive_minors_oldest_first_the_newest_in_go_mod() -> None:
    """An upgrade goes one minor release at a time (upstream's rule), so every minor between two is supported."""
    minors = [tuple(int(part) for part in chosen.version.split(".")[:2]) for chosen in RELEASES]
    assert minors == [(1, minor) for minor in range(minors[0][1], minors[0][1] + len(minors))]
    assert LATEST.modfile == "go.mod"
    assert len({chosen.modfile for chosen in RELEASES}) == len(RELEASES)


def test_a_release_tag_selects_one_of_two_variants_of_the_plugin_code() -> None:
    sources = {path: path.read_text(encoding="utf-8") for path in (SERVER / "internal").rglob("*.go")}
    for tag in {tag for chosen in RELEASES for tag in chosen.tags}:
        with_tag = [path for path, text in sources.items() if text.startswith(f"//go:build {tag}\n")]
        without = [path for path, text in sources.items() if text.startswith(f"//go:build !{tag}\n")]
        assert with_tag, f"no file is built only with {tag}"
        assert sorted(path.name.replace("release_current", "") for path in without) == sorted(
            path.name.replace(f"release_{tag.removeprefix('temporal_')}", "") for path in with_tag
        ), f"each file built with {tag} has a counterpart built without it"


def test_the_release_picks_the_go_flags() -> None:
    oldest = RELEASES[0]
    assert oldest.go_flags() == [
        f"-modfile={oldest.modfile}",
        "-tags",
        ",".join(("disable_grpc_modules", *oldest.tags)),
    ]
    assert LATEST.go_flags() == ["-tags", "disable_grpc_modules"]


def test_an_unsupported_release_is_refused_with_the_supported_ones(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(TEMPORAL_VERSION="1.29.0")
    message = str(caught.value)
    assert "TEMPORAL_VERSION='1.29.0'" in message
    assert ", ".join(chosen.version for chosen in RELEASES) in message
    assert make_settings(TEMPORAL_VERSION=RELEASES[0].version).temporal_version == RELEASES[0].version


def test_the_worker_of_a_release_without_its_grpc_health_is_probed_on_its_metrics(make_settings: MakeSettings) -> None:
    """1.30's worker serves no gRPC; from 1.31 it reports its own health service, NOT_SERVING as it stops."""
    oldest = make_settings(TEMPORAL_VERSION=RELEASES[0].version)
    worker = build_stack(oldest).get("temporal-worker")
    metrics = next(port.number for port in worker.ports if port.name == "metrics")
    assert worker.healthcheck is not None
    assert worker.healthcheck.probe == HttpProbe(metrics, "/metrics")
    assert chart_values(oldest)["server"]["worker"]["health"] == {"httpPath": "/metrics"}
    newest = build_stack(make_settings(TEMPORAL_VERSION=LATEST.version)).get("temporal-worker").healthcheck
    assert newest is not None
    assert newest.probe == GrpcProbe(7239, "temporal.api.workflowservice.v1.WorkerService")
