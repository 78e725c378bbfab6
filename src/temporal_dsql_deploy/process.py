"""The one way this package runs an external program: bounded, secrets in the environment, never a traceback.

A missing program, a timeout or an OS error becomes a DeployError that names what was being done and
how to fix it; a non-zero exit is the caller's to judge (`run_program`) or an error (`run_tool`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.environment import tool_environment
from temporal_dsql_deploy.errors import DeployError

OUTPUT_TAIL_LINES = 15


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        return "\n".join((self.stdout + self.stderr).strip().splitlines()[-lines:])


def run_program(
    argv: list[str],
    *,
    what: str,
    fix: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    replace_env: bool = False,
) -> Completed:
    """Run `argv` to completion and return its exit code and output, whatever the exit code.

    `env` is added to this process's environment (or is the whole environment with `replace_env`); put
    secrets there, never in `argv`.
    """
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env or {}) if replace_env else tool_environment(env),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        program = Path(argv[0]).name
        raise DeployError(f"{what}: `{argv[0]}` is not installed", f"install {program} and run again") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what}: `{Path(argv[0]).name}` gave no answer within {timeout_s:g}s", fix) from None
    except OSError as exc:
        raise DeployError(f"{what}: cannot run `{argv[0]}`: {exc.strerror}", fix) from None
    return Completed(result.returncode, result.stdout, result.stderr)


def run_tool(
    argv: list[str],
    *,
    what: str,
    fix: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run `argv` to completion and return its standard output; raise DeployError naming `what` if it fails."""
    result = run_program(argv, what=what, fix=fix, timeout_s=timeout_s, env=env, cwd=cwd)
    if result.returncode != 0:
        raise DeployError(f"{what} failed (exit {result.returncode}):\n{result.tail()}", fix)
    return result.stdout
