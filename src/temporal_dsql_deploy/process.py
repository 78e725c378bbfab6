"""The one way this package runs an external program: bounded, secrets in the environment, never a traceback.

A missing program, a timeout or an OS error becomes a DeployError that names what was being done and
how to fix it; a non-zero exit is the caller's to judge (`run_program`) or an error (`run_tool`).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.settings.environment import tool_environment

OUTPUT_TAIL_LINES = 15
# A tool that prints a whole template or response body on one line (several KB) around its error is shown the
# start of that line only, so the error stays readable.
OUTPUT_LINE_CHARACTERS = 300
INTERRUPT_GRACE_S = 60


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        """The output's last lines, each cut to OUTPUT_LINE_CHARACTERS."""
        last = (self.stdout + self.stderr).strip().splitlines()[-lines:]
        return "\n".join(_clipped(line) for line in last)


def _clipped(line: str) -> str:
    cut = len(line) - OUTPUT_LINE_CHARACTERS
    return line if cut <= 0 else f"{line[:OUTPUT_LINE_CHARACTERS]}… ({cut:,} more characters)"


def run_program(
    argv: list[str],
    *,
    what: str,
    fix: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    replace_env: bool = False,
    stdin_text: str | None = None,
) -> Completed:
    """Run `argv` to completion and return its exit code and output, whatever the exit code.

    `env` is added to this process's environment (or is the whole environment with `replace_env`); put
    secrets there or in `stdin_text` (its standard input), never in `argv`.
    """
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env or {}) if replace_env else tool_environment(env),
            stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            # A group of its own: a terminal's Ctrl-C reaches this process alone, which passes exactly one
            # interrupt on (terraform takes a second one as "exit now, state or not").
            process_group=0,
        )
    except OSError as exc:
        raise _cannot_start(argv, what, fix, exc) from None
    try:
        stdout, stderr = process.communicate(input=stdin_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DeployError(f"{what}: `{Path(argv[0]).name}` gave no answer within {timeout_s:g}s", fix) from None
    except KeyboardInterrupt:
        _stop_gently(process)
        raise
    return Completed(process.returncode, stdout, stderr)


def _cannot_start(argv: list[str], what: str, fix: str, exc: OSError) -> DeployError:
    if isinstance(exc, FileNotFoundError):
        return DeployError(f"{what}: `{argv[0]}` is not installed", f"install {Path(argv[0]).name} and run again")
    return DeployError(f"{what}: cannot run `{argv[0]}`: {exc.strerror}", fix)


def _stop_gently(process: subprocess.Popen[str]) -> None:
    """Ctrl-C: pass the interrupt on once and give the tool time to stop on its own (terraform mid-apply records
    what it created; killed, it would leave its state behind), then kill it if it has not."""
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Spawned:
    """A long-running child (a benchmark worker, a dev server): output to a log file, stopped on exit."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self._popen, self.log = popen, log

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def stop(self, grace_s: float = 10) -> int:
        """SIGTERM, then SIGKILL after `grace_s`; returns the exit code."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._popen.kill()
        return self._popen.wait()

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def spawn(argv: list[str], *, what: str, log: Path, detached: bool = False) -> Spawned:
    """Start `argv` in the background with its output in `log`; the caller stops it (`with`). `detached`: in a
    session of its own, so it outlives this command (a daemon a later command stops)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        try:
            popen = subprocess.Popen(argv, env=tool_environment(), stdout=output, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=detached)  # fmt: skip
        except OSError as exc:
            raise _cannot_start(argv, what, f"see {log}", exc) from None
    return Spawned(popen, log)


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
