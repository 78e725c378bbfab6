"""Glue shared by the entry points (tasks.py and `python -m temporal_dsql_deploy`).

Loads settings once per task, turns errors a user can act on into a clean non-zero exit, and
owns the console so the rest of the package returns values instead of printing.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

from rich.console import Console
from rich.markup import escape

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.config import Settings, env_file_warnings, load_settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


# Every task leaves nothing half-done when interrupted: a stack half-started is restarted, a schema resumes at the
# last version fully applied, terraform's state records what it made and .env is written only at the end.
INTERRUPTED_FIX = "run the same command again: it picks up from where it stopped"


class TaskFailed(SystemExit):
    """Raised by entry points after the failure has been reported; carries the exit code."""


def settings_for(project_root: Path) -> Settings:
    """The project's settings (`.env` + environment), with the local database's password when it has one."""
    settings = load_settings(project_root)  # first: it refuses a .env that cannot be read
    for warning in env_file_warnings(project_root / ".env"):
        error_console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    # psycopg and the database layer: half of a task's start-up, which a refused argument need not wait for.
    from temporal_dsql_deploy.database.local_postgres import with_local_secrets  # noqa: PLC0415

    return with_local_secrets(settings, create=False)


def lazy_module(name: str) -> ModuleType:
    """The module `name`, loaded at its first attribute access (importlib's LazyLoader): an entry point lists its
    commands, shows help and refuses a bad argument without loading what only a task's work needs."""
    if (loaded := sys.modules.get(name)) is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def reported(function: Callable[P, R]) -> Callable[P, R]:
    """Report a DeployError as `error: ... / fix: ...` on stderr and exit 1; let anything else raise."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except DeployError as exc:
            error_console.print(f"[bold red]error:[/] {escape(exc.problem)}", soft_wrap=True)
            if exc.fix:
                error_console.print(f"[bold]fix:[/] {escape(exc.fix)}", soft_wrap=True)
            raise TaskFailed(1) from None
        except KeyboardInterrupt:
            error_console.print(f"[bold red]error:[/] {escape(function.__name__)} was interrupted", soft_wrap=True)
            error_console.print(f"[bold]fix:[/] {escape(INTERRUPTED_FIX)}", soft_wrap=True)
            raise TaskFailed(130) from None

    return wrapper


def confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse rather than guess."""
    if not sys.stdin.isatty():
        raise DeployError(f"{question} needs an answer, and there is no terminal to ask on", "pass --yes to confirm")
    return console.input(f"{escape(question)} [y/N] ").strip().lower() in {"y", "yes"}


def say(message: str, **kwargs: Any) -> None:
    """Print plain text (never interpreted as markup)."""
    console.print(escape(message), **kwargs)
