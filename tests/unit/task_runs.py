"""Tasks run as a user runs them, each in a process of its own, without paying Python's imports every time.

`python -m invoke` spends most of its 0.6 s importing pydantic, invoke and rich; a unit session runs it hundreds of
times. Here each run is a process forked from a fork server (multiprocessing's, stdlib) that imported those once:
its own environment, directory, stdout and stderr, exit code and crash, as `subprocess.run` would give it. Unlike a
new interpreter it runs no atexit handler at its end (the product registers none).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Imported once by the fork server: libraries, and the package's modules that make nothing as they are imported
# (not `cli`, whose consoles read the terminal and the environment when made), so a run's own environment and
# output decide everything, as in a process started fresh.
PRELOADED = ["invoke", "invoke.main", "pydantic", "pydantic_settings", "rich.console", "rich.markup", "yaml",
             "temporal_dsql_deploy.settings.config", "temporal_dsql_deploy.flags", "temporal_dsql_deploy.runtime.model",
             "temporal_dsql_deploy.database.local_postgres"]  # fmt: skip
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(PRELOADED)


def _invoke(argv: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str) -> None:
    """In the forked process: become the user's `invoke` (environment, directory, output), then run it."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for descriptor, path in ((1, stdout), (2, stderr)):
        opened = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(opened, descriptor)
        os.close(opened)
    sys.argv = argv
    from invoke.main import program  # noqa: PLC0415 (preloaded: already imported)

    program.run(argv)


def run_invoke(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """`invoke *argv` in `cwd` with exactly `env`: its exit code (1 for a crash, whose traceback is on stderr) and
    output, as `subprocess.run(..., capture_output=True, text=True)` gives them."""
    with tempfile.TemporaryDirectory(prefix="task-run-") as scratch:
        stdout, stderr = Path(scratch, "stdout"), Path(scratch, "stderr")
        stdout.touch()
        stderr.touch()
        run = _FORKS.Process(target=_invoke, args=(["invoke", *argv], env, str(cwd), str(stdout), str(stderr)))
        run.start()
        run.join(timeout_s)
        if run.exitcode is None:
            run.kill()
            run.join()
            raise subprocess.TimeoutExpired(["invoke", *argv], timeout_s)
        result = subprocess.CompletedProcess(["invoke", *argv], run.exitcode, stdout.read_text(encoding="utf-8"),
                                             stderr.read_text(encoding="utf-8"))  # fmt: skip
    if result.returncode != 0 and not result.stdout and not result.stderr:
        # It failed before its output was its own (the fork server's start, say): the reason is on this test's stderr.
        raise RuntimeError(f"invoke {' '.join(argv)} ended with exit {result.returncode} before it could print")
    return result
