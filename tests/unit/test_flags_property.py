"""Every task flag, whatever text it is given: a value within the range its help documents, or one error naming it.

The tasks and their arguments are discovered from `tasks.namespace`, so a new task or flag is covered without
touching this file (and fails it until it declares a parser from `flags.py` whose range its help states). The
package operations the tasks call are replaced by a recorder, so what reaches them is checked and nothing runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import MagicMock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invoke import Context, Program, Task
from invoke.parser import Argument, Parser

from temporal_dsql_deploy import cli, flags
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.load import command
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import load_tasks

NAMESPACE = load_tasks()
TASKS_MODULE = sys.modules["tasks"]
Spec = flags.Flag
# Parsers declared in tasks.py, plus --shape's, declared beside the shapes it names (imported by bench alone).
SPECS: list[Spec] = [value for value in vars(TASKS_MODULE).values() if isinstance(value, Spec)] + [command.SHAPE]
# Values a user may type: any text, and text near and inside every declared range.
TYPED = st.one_of(
    st.text(),
    st.integers(min_value=-(10**7), max_value=10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "0",
            "-0",
            "1",
            "all",
            "local",
            "docker",
            "arm64",
            "hello",
            " ",
            "",
            "1e3",
            "nan",
            "5s",
            "none,multi-region",
            "none,none",
            "single-region,",
            "same-az",
        ]
    ),
)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _flag(argument: Argument) -> str:
    return f"--{str(argument.name).replace('_', '-')}"


def _arguments(task: Task[Any]) -> list[Argument]:
    # Invoke's get_arguments() consumes the task's help dict, so it is asked of a copy.
    return list(copy.deepcopy(task).get_arguments())


def _typed_arguments() -> list[tuple[str, Argument]]:
    """Every (task, argument) that takes a value, i.e. everything but an on/off switch."""
    return [(name, argument) for name in NAMESPACE.task_names for argument in _arguments(NAMESPACE[name])
            if argument.kind is not bool]  # fmt: skip


TYPED_ARGUMENTS = _typed_arguments()


def _spec(argument: Argument) -> Spec:
    """The parser of an argument: the one for its flag whose accepted range its help states."""
    found = [spec for spec in SPECS if spec.flag == _flag(argument) and spec.accepts in (argument.help or "")]
    assert len(found) == 1, f"{_flag(argument)}: {len(found)} parsers whose range its help states ({argument.help})"
    return found[0]


def _within(spec: Spec, value: object) -> bool:
    """Whether a parsed value lies in the range the spec documents (written out here, not asked of the spec)."""
    if isinstance(spec, flags.Count):
        return type(value) is int and spec.minimum <= value <= spec.maximum
    if isinstance(spec, flags.Amount):
        return isinstance(value, float) and math.isfinite(value) and (
            spec.minimum <= value <= spec.maximum or (spec.off and value == 0))  # fmt: skip
    if isinstance(spec, flags.Choice):
        return value in spec.options
    if isinstance(spec, flags.Choices):
        return isinstance(value, tuple) and value != () and len(set(value)) == len(value) and set(value) <= set(
            spec.options)  # fmt: skip
    return isinstance(value, str) and value.strip() != ""


def _assert_names_the_flag(error: DeployError, flag: str) -> None:
    assert error.problem.startswith(f"{flag} "), error.problem
    assert error.fix
    assert flag in error.fix
    assert len(error.problem) < 200, "a long value is not echoed back in full"


def test_every_argument_that_takes_a_value_has_a_parser_its_help_documents() -> None:
    assert len(TYPED_ARGUMENTS) >= 20  # the discovery itself works: every task's flags were found
    for _task, argument in TYPED_ARGUMENTS:
        _spec(argument)


@given(spec=st.sampled_from(SPECS), text=TYPED)
@settings(max_examples=400, deadline=None)
def test_any_text_parses_into_the_documented_range_or_names_the_flag(spec: Spec, text: str) -> None:
    try:
        value = spec.parse(text)
    except DeployError as exc:
        _assert_names_the_flag(exc, spec.flag)
        return
    assert _within(spec, value), (text, value)


class Recorder:
    """Stands in for a package module or function the tasks call: records each call, returns an empty result."""

    def __init__(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], name: str) -> None:
        self.calls = calls
        self.name = name

    def __getattr__(self, attribute: str) -> Recorder:
        return Recorder(self.calls, f"{self.name}.{attribute}")

    def __call__(self, *args: Any, **kwargs: Any) -> MagicMock:
        self.calls.append((self.name, args, kwargs))
        return MagicMock(missed=[])  # bench reports missed thresholds from `missed`; nothing else is read


def _package_callees() -> list[str]:
    """Names in tasks.py bound to the package's modules and functions (not the glue: cli, flags, errors)."""
    glue = {"temporal_dsql_deploy.cli", "temporal_dsql_deploy.flags", "temporal_dsql_deploy.errors"}
    names = []
    for name, value in vars(TASKS_MODULE).items():
        origin = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if not isinstance(origin, str) or not origin.startswith("temporal_dsql_deploy.") or origin in glue:
            continue
        if isinstance(value, ModuleType) or (callable(value) and not isinstance(value, type)):
            names.append(name)
    return names


@pytest.fixture
def calls(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    recorded: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    fixed = make_settings()
    monkeypatch.setattr(cli, "settings_for", lambda _root: fixed)
    for name in _package_callees():
        monkeypatch.setattr(TASKS_MODULE, name, Recorder(recorded, name))
    monkeypatch.setattr(command, "run_bench", Recorder(recorded, "run_bench"))
    return recorded


def _reached(call: tuple[str, tuple[Any, ...], dict[str, Any]]) -> list[object]:
    """Every value an operation was given, looking into lists and requests (dataclasses)."""
    found: list[object] = []
    pending: list[object] = [*call[1], *call[2].values()]
    while pending:
        value = pending.pop()
        found.append(value)
        if isinstance(value, list):
            pending.extend(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            pending.extend(getattr(value, field.name) for field in dataclasses.fields(value))
    return found


def _arrived(task: str, spec: Spec, text: str, call: tuple[str, tuple[Any, ...], dict[str, Any]]) -> bool:
    """Whether the value the flag's parser makes of `text` is what the operation was given."""
    value = spec.parse(text)
    # `invoke logs all`: every service's log, which the package asks for as "" (no one service).
    expected = "" if task == "logs" and value == TASKS_MODULE.EVERY_SERVICE else value
    reached = _reached(call)
    return expected in reached or (isinstance(expected, str) and Path(expected) in reached)


def test_the_recorder_replaces_every_package_call() -> None:
    names = _package_callees()
    assert {"operations", "infra", "render_compose", "runtime_build", "smoke", "connectivity"} <= set(names)


@given(case=st.sampled_from(TYPED_ARGUMENTS), text=TYPED)
@EXAMPLES
def test_task_bodies_pass_parsed_values_unchanged_or_name_the_flag(
    calls: list[Any], case: tuple[str, Argument], text: str
) -> None:
    task, argument = case
    calls.clear()
    body = NAMESPACE[task].body.__wrapped__  # past cli.reported, so the DeployError itself is seen
    given_value: object = [text] if argument.kind is list else text
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            body(Context(), **{str(argument.name): given_value})
        except DeployError as exc:
            _assert_names_the_flag(exc, _flag(argument))
            assert not calls, "an operation ran despite a bad flag"
            return
    assert len(calls) == 1, calls
    assert _arrived(task, _spec(argument), text, calls[0])


def _program(argv: list[str]) -> tuple[int, str]:
    """Run `invoke ARGV` in this process as the user's shell would; the exit code and stderr."""
    stderr = io.StringIO()
    program = Program(namespace=copy.deepcopy(NAMESPACE), name="invoke", binary="invoke")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        try:
            program.run(["invoke", *argv])
        except SystemExit as exc:
            return int(exc.code or 0), stderr.getvalue()
    return 0, stderr.getvalue()


def _argv(task: str, argument: Argument, text: str) -> list[str]:
    positional = [a.name for a in _arguments(NAMESPACE[task]) if a.positional and a.name != argument.name]
    return [task, *(["temporal-frontend"] * len(positional)), _flag(argument), text]


@given(case=st.sampled_from(TYPED_ARGUMENTS), text=TYPED.filter(lambda text: "\x00" not in text))
@EXAMPLES
def test_invoke_itself_never_shows_a_traceback_nor_exits_0_with_a_wrong_value(
    calls: list[Any], case: tuple[str, Argument], text: str
) -> None:
    task, argument = case
    calls.clear()
    code, stderr = _program(_argv(task, argument, text))
    assert "Traceback" not in stderr
    if code == 0:
        assert len(calls) == 1, calls
        assert _arrived(task, _spec(argument), text, calls[0])
        return
    assert code == 1, stderr
    assert not calls, "an operation ran, then the task failed"
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if errors:  # ours: one line naming the flag, then the fix
        assert len(errors) == 1
        assert errors[0].startswith(f"error: {_flag(argument)} "), stderr
        assert "fix:" in stderr
    else:  # Invoke's own: the text is another flag, so this one got no value
        assert f"Argument: {argument.name}" in stderr, stderr


@pytest.mark.parametrize(
    ("argv", "operation", "reached"),
    [(["logs", "temporal-history"], "operations.logs", "temporal-history"),
     (["logs", "--service", "temporal-history"], "operations.logs", "temporal-history"),
     (["logs", "all", "--lines", "7"], "operations.logs", 7),
     (["restart", "--service", "temporal-history", "--service", "temporal-matching"], "operations.restart",
      ["temporal-history", "temporal-matching"]),
     (["top", "--interval", "2.5", "--rounds", "3"], "operations.top", 2.5),
     (["bench", "--workflows", "100000", "--rate", "0"], "run_bench", 100_000)],
)  # fmt: skip
def test_the_forms_the_readme_shows_reach_the_operation(
    calls: list[Any], argv: list[str], operation: str, reached: object
) -> None:
    code, stderr = _program(argv)
    assert code == 0, stderr
    assert [call[0] for call in calls] == [operation]
    assert reached in _reached(calls[0])


def _forms(readme: str) -> Iterator[list[str]]:
    """Every `invoke ...` command the README's Tasks table and Operations section show, placeholders filled."""
    tasks_table = readme.split("## Tasks", 1)[1].split("\n## ", 1)[0]
    operations = readme.split("## Operations", 1)[1].split("\n## ", 1)[0]
    filled = {"NAME": "temporal-frontend", "SERVICE\\|all": "temporal-frontend", "S": "5", "N": "3", "C": "2",
              "R": "1", "X": "1", "PATH": "out", "local\\|docker": "docker", "hello\\|transitions\\|large": "large",
              "amd64\\|arm64": "arm64", "...": "local"}  # fmt: skip
    for line in tasks_table.splitlines():
        if found := re.match(r"\| `invoke ([^`]+)`", line):
            words = found.group(1).replace("[", " ").replace("]", " ").split()
            # `--runtime ...` is the value shown above; `NAME ...` says the flag repeats.
            yield [filled.get(word, word) for n, word in enumerate(words)
                   if word != "..." or words[n - 1].startswith("--")]  # fmt: skip
    for found in re.finditer(r"^invoke ([^#\n]+)|`invoke ([^`]+)`", operations, re.MULTILINE):
        yield (found.group(1) or found.group(2)).split()


def test_every_form_the_readme_shows_parses() -> None:
    forms = list(_forms((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")))
    assert len(forms) >= 25
    for argv in forms:
        Parser(contexts=copy.deepcopy(NAMESPACE).to_contexts()).parse_argv(argv)  # ParseError: a form Invoke refuses
