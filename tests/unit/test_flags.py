"""Task flags: the parsers of `flags.py`, and one representative case of each class run as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_dsql_deploy import flags
from temporal_dsql_deploy.errors import DeployError
from tests.unit.conftest import assert_clear_error, run_task

LINES = flags.Count("--lines", 100_000)
RATE = flags.Amount("--rate", 0.1, 1_000, "workflows per second", off=True)
INTERVAL = flags.Amount("--interval", 1, 3600, "seconds")
RUNTIME = flags.Choice("--runtime", ("local", "docker"))
SERVICE = flags.Text("--service", "a service name")


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("50", 50), (" 7 ", 7), ("100000", 100_000)])
def test_a_count_takes_a_whole_number_in_its_range(text: str, value: int) -> None:
    assert LINES.parse(text) == value


@pytest.mark.parametrize("text", ["x", "", "0", "-1", "1.5", "1e3", "100001", "5 lines", "9" * 5000])
def test_a_count_refuses_anything_else_naming_flag_value_and_range(text: str) -> None:
    with pytest.raises(DeployError) as caught:
        LINES.parse(text)
    assert caught.value.problem.startswith("--lines '")
    assert "a whole number from 1 to 100,000" in caught.value.problem
    assert caught.value.fix == "give --lines a whole number from 1 to 100,000"


def test_zero_is_off_only_where_declared() -> None:
    assert RATE.parse("0") == 0.0
    assert RATE.parse("-0") == 0.0
    assert RATE.parse("2.5") == 2.5
    with pytest.raises(DeployError) as caught:
        INTERVAL.parse("0")
    assert caught.value.problem == "--interval '0' is not a number of seconds from 1 to 3,600"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "0.05", "1001", "fast", "1e400", ""])
def test_an_amount_refuses_what_is_not_a_finite_number_in_range(text: str) -> None:
    with pytest.raises(DeployError) as caught:
        RATE.parse(text)
    assert (
        caught.value.problem == f"--rate {text!r} is not 0 (off) or a number of workflows per second from 0.1 to 1,000"
    )


def test_a_choice_takes_its_words_exactly() -> None:
    assert RUNTIME.parse("docker") == "docker"
    with pytest.raises(DeployError) as caught:
        RUNTIME.parse("Docker")
    assert caught.value.problem == "--runtime 'Docker' is not one of: local, docker"


def test_choices_take_several_words_once_each_in_order() -> None:
    profiles = flags.Choices("--dsql-latency", ("none", "single-region", "multi-region"))
    assert profiles.parse("multi-region, none") == ("multi-region", "none")
    for text in ["none,none", "", "none,", "Single-Region", "none;multi-region"]:
        with pytest.raises(DeployError) as caught:
            profiles.parse(text)
        assert caught.value.problem == (
            f"--dsql-latency {text!r} is not one or more of none, single-region, multi-region (comma-separated)"
        )


def test_text_is_kept_verbatim_and_blank_is_refused_not_taken_as_the_default() -> None:
    assert SERVICE.parse(None) == ""  # not given: the package's default
    assert SERVICE.parse(" temporal-ui") == " temporal-ui"  # the package judges the name itself
    for blank in ["", "  ", "\t"]:
        with pytest.raises(DeployError) as caught:
            SERVICE.parse(blank)
        assert caught.value.problem == f"--service {blank!r} is blank"
        assert caught.value.fix == "give --service a service name"


def test_a_pasted_wall_of_text_is_not_echoed_back() -> None:
    with pytest.raises(DeployError) as caught:
        LINES.parse("x" * 10_000)
    assert len(caught.value.problem) < 120
    assert "…" in caught.value.problem


def test_help_states_the_range_checked_the_default_and_the_note() -> None:
    rounds = flags.Count("--rounds", 100_000, note="leave it out to watch until Ctrl-C")
    assert rounds.help("Show this many rounds", "3") == (
        "Show this many rounds: a whole number from 1 to 100,000 (default 3); leave it out to watch until Ctrl-C."
    )
    with pytest.raises(DeployError) as caught:
        rounds.parse("0")
    assert caught.value.fix == "give --rounds a whole number from 1 to 100,000; leave it out to watch until Ctrl-C"


# As a user runs them (a subprocess of invoke each): one case per class.


def test_a_non_numeric_value_is_one_error_not_a_traceback(project: Path) -> None:
    assert_clear_error(run_task(project, "logs", "all", "--lines", "x"), "--lines 'x'", "1 to 100,000")


def test_zero_never_means_unlimited(project: Path) -> None:
    assert_clear_error(run_task(project, "top", "--rounds", "0"), "--rounds '0'", "leave it out")


def test_a_huge_count_is_refused_before_anything_runs(project: Path) -> None:
    result = run_task(project, "bench", "--workflows", "100000000", STACK_DIR=str(project / "stack"))
    assert_clear_error(result, "--workflows '100000000'", "1 to 100,000")
    assert not (project / "stack").exists()


def test_an_empty_service_is_refused_never_every_service(project: Path) -> None:
    result = run_task(project, "restart", "--service", "")
    assert_clear_error(result, "--service ''", "blank")
    assert "restarted" not in result.stdout


def test_logs_takes_the_service_as_the_readme_shows_it(project: Path) -> None:
    log = project / ".stack" / "logs" / "temporal-history.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {n}\n" for n in range(1, 11)), encoding="utf-8")
    for argv in (["logs", "temporal-history", "--lines", "2"], ["logs", "--service", "temporal-history", "-l", "2"]):
        result = run_task(project, *argv)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-2:] == ["line 9", "line 10"]
        assert "line 8" not in result.stdout
    assert_clear_error(run_task(project, "logs", "temporal-history", "--lines", "0"), "--lines '0'")
