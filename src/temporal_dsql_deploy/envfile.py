"""`.env` updates that keep everything the operator wrote and change only the keys given."""

from __future__ import annotations

from pathlib import Path

GENERATED_MARKER = "# Written by `invoke deploy`"


def update_env_file(path: Path, values: dict[str, str]) -> bool:
    """Set `values` in the .env at `path` (created if missing); True if the file changed.

    Lines for other keys, comments and order are kept; keys not yet present are appended in a block.
    """
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = current.splitlines()
    pending = dict(values)
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            lines[index] = f"{key}={pending.pop(key)}"
    if pending:
        if not lines:
            lines.append(GENERATED_MARKER)
        elif lines[-1].strip():
            lines.append("")
        lines.extend(f"{key}={value}" for key, value in pending.items())
    updated = "\n".join(lines) + "\n"
    if updated == current:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def generated_by_deploy(path: Path) -> bool:
    """True if the file exists and `invoke deploy` created it (so cleanup may remove it)."""
    return path.exists() and path.read_text(encoding="utf-8").startswith(GENERATED_MARKER)
