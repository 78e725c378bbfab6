"""Running external tools: bounded, with secrets passed in the environment, failures turned into DeployError."""

from __future__ import annotations

import subprocess
from pathlib import Path

from temporal_dsql_deploy.config import inherited_environment
from temporal_dsql_deploy.errors import DeployError

OUTPUT_TAIL_LINES = 15


def run_tool(
    argv: list[str],
    *,
    what: str,
    fix: str,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run `argv` to completion and return its output; raise DeployError naming `what` if it fails.

    `env` is added to the inherited environment; put secrets there, never in `argv`.
    """
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=inherited_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise DeployError(
            f"{what}: `{argv[0]}` is not installed", f"install {Path(argv[0]).name} and run again"
        ) from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what}: gave up after {int(timeout_s)}s", fix) from None
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-OUTPUT_TAIL_LINES:])
        raise DeployError(f"{what} failed (exit {result.returncode}):\n{output}", fix)
    return result.stdout + result.stderr
