"""`.env` updates through python-dotenv: the operator's lines, comments and order are kept, and the
file is left readable by its owner only (it may hold secrets)."""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values, set_key

from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.private_files import write_private

GENERATED_MARKER = "# Written by `invoke deploy`"


def update_env_file(path: Path, values: dict[str, str]) -> bool:
    """Set `values` in the .env at `path` (created 0600 if missing); True if any value changed."""
    try:
        if not path.exists():
            write_private(path, GENERATED_MARKER + "\n", exclusive=True)
        current = dotenv_values(path)
        changed = {key: value for key, value in values.items() if current.get(key) != value}
        for key, value in changed.items():
            set_key(path, key, value, quote_mode="never")
        path.chmod(0o600)
    except OSError as exc:
        raise DeployError(f"cannot update {path}: {exc.strerror}", f"make {path} writable and run again") from None
    return bool(changed)


def generated_by_deploy(path: Path) -> bool:
    """True if the file exists and `invoke deploy` created it (so cleanup may remove it)."""
    return path.exists() and path.read_text(encoding="utf-8").startswith(GENERATED_MARKER)
