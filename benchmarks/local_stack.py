"""Measure the local stack: warm `up` from stopped, resident memory, smoke duration. Prints numbers.

    nox -s bench            (or: python benchmarks/local_stack.py)

Leaves the stack as it found it (running or stopped). Data is kept.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from temporal_dsql_deploy.runtime.components import install_all
from temporal_dsql_deploy.runtime.stack import LocalStack
from temporal_dsql_deploy.settings.config import load_settings
from temporal_dsql_deploy.temporal.smoke import run_smoke

ROOT = Path(__file__).resolve().parents[1]
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def resident_mb(roots: list[int]) -> float:
    """Resident memory of `roots` and all their descendants, in MiB."""
    tree, seen, pending, total_kb = _children(), set(), list(roots), 0
    while pending:
        pid = pending.pop()
        if pid in seen or pid <= 0:
            continue
        seen.add(pid)
        try:
            total_kb += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
        pending.extend(tree.get(pid, []))
    return total_kb / 1024


def main() -> None:
    settings = load_settings(ROOT)
    stack = LocalStack(settings, ROOT)
    process_compose = install_all(settings, ROOT, lambda message: print(f"  {message}")).process_compose
    was_running = stack.running(process_compose)
    stack.down(process_compose, volumes=False)

    started = time.monotonic()
    states = stack.up(lambda _message: None)
    up_s = time.monotonic() - started
    memory = resident_mb([state.pid for state in states if not state.one_shot])
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
