"""Register the stack's namespace through the real temporal CLI, idempotently."""

from __future__ import annotations

from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.process import Completed, run_program

RETENTION = "72h"


class _NotReadyError(Exception):
    """The frontend answered with something other than found / not found; try again shortly."""


def _cli(cli: Path, address: str, *args: str) -> Completed:
    argv = [str(cli), "operator", "namespace", *args, "--address", address]
    return run_program(argv, what=f"temporal operator namespace {args[0]}", fix="check `invoke status`", timeout_s=60)


@retry(retry=retry_if_exception_type(_NotReadyError), stop=stop_after_delay(90), wait=wait_fixed(2), reraise=True)
def _ensure(cli: Path, address: str, namespace: str) -> bool:
    described = _cli(cli, address, "describe", "--namespace", namespace)
    if described.returncode == 0:
        return False
    if "not found" not in described.stderr.lower():
        raise _NotReadyError(described.stderr.strip())
    created = _cli(cli, address, "create", "--namespace", namespace, "--retention", RETENTION)
    if created.returncode != 0 and "already" not in created.stderr.lower():
        raise _NotReadyError(created.stderr.strip())
    return True


def ensure_namespace(cli: Path, address: str, namespace: str) -> bool:
    """Create `namespace` unless it exists; True if it was created."""
    try:
        return _ensure(cli, address, namespace)
    except _NotReadyError as exc:
        raise DeployError(
            f"could not register namespace {namespace!r} at {address} within 90s: {exc}",
            "check `invoke status` and `invoke logs temporal-frontend`",
        ) from None
