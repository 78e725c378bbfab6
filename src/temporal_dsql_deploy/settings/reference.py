"""The README's configuration reference, generated from the settings object so it cannot drift."""

from __future__ import annotations

from pathlib import Path

from pydantic_core import PydanticUndefined

from temporal_dsql_deploy.settings.config import Settings

BEGIN = "<!-- BEGIN configuration reference (generated: `invoke docs`) -->"
END = "<!-- END configuration reference -->"


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return "(computed)"
    if field.default is None or field.default is PydanticUndefined:
        return "(unset)"
    default = field.default
    if hasattr(default, "total_seconds"):
        return f"`{int(default.total_seconds())}s`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def configuration_reference() -> str:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name.upper()}` | {_default_text(name)} | {description} |")
    return "\n".join(rows)


def render_readme_section(readme: str) -> str:
    """`readme` with the text between the markers replaced by the current reference."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError(f"README has no {BEGIN!r} marker")
    return f"{head}{BEGIN}\n{configuration_reference()}\n{END}{tail}"


def update_readme(path: Path) -> bool:
    """Rewrite the reference in `path`; True if it changed."""
    current = path.read_text(encoding="utf-8")
    updated = render_readme_section(current)
    if updated != current:
        path.write_text(updated, encoding="utf-8")
    return updated != current
