"""Measure the local stack: warm `up` from stopped, resident memory, smoke duration. Prints numbers.

    nox -s bench_stack      (or: python benchmarks/local_stack.py)

Leaves the stack as it found it (running or stopped). Data is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

from temporal_dsql_deploy.load.probes import ProcessUsage
from temporal_dsql_deploy.runtime.components import install_all
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import load_settings
from temporal_dsql_deploy.temporal.smoke import run_smoke

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    settings = load_settings(ROOT)
    stack = LocalStack(settings, ROOT)
    process_compose = install_all(settings, ROOT, lambda message: print(f"  {message}")).process_compose
    was_running = stack.running(process_compose)
    stack.down(process_compose, volumes=False)

    started = time.monotonic()
    states = stack.up(lambda _message: None)
    up_s = time.monotonic() - started
    usage = ProcessUsage({state.name: state.pid for state in states if not state.one_shot})
    usage.sample()
    memory = usage.peak_rss_mib
    smoke = run_smoke(stack.settings, ROOT)

    print(f"search engine:            {settings.search_engine} {settings.search_engine_version}")
    print(f"warm invoke up (stopped): {up_s:.1f} s to {len(states)} services healthy")
    print(f"stack resident memory:    {memory:.0f} MiB over {sum(not s.one_shot for s in states)} services")
    steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in smoke.steps)
    print(f"smoke:                    {smoke.steps[-1][1]:.1f} s ({steps})")
    if not was_running:
        stack.down(process_compose, volumes=False)


if __name__ == "__main__":
    main()
