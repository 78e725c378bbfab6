"""The package's layers point one way: settings → database, Temporal, observability → runtime → operations and
tasks. Read from the source: every import, absolute or relative, also those under TYPE_CHECKING or inside a
function, and the packages' own __init__ modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "temporal_dsql_deploy"
PREFIX = "temporal_dsql_deploy."
# What each subpackage may not import: the layers above it.
FORBIDDEN = {
    "settings": ("runtime", "database", "observability", "temporal", "cloud", "load", "operations", "connectivity"),
    "database": ("runtime", "cloud", "load", "operations", "connectivity"),
    "observability": ("runtime", "cloud", "load", "operations", "connectivity"),
    "temporal": ("runtime", "cloud", "load", "operations", "connectivity"),
    "runtime": ("cloud", "load", "operations", "connectivity", "cli"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str | None:
    """The module an ImportFrom names, within the package ("" for the package itself), or None outside it."""
    if node.level:  # relative: from the module's own package, one level up per extra dot
        package = path.relative_to(PACKAGE).parent.parts
        base = package[: len(package) - (node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])
    if node.module == PREFIX.rstrip("."):
        return ""
    return node.module.removeprefix(PREFIX) if node.module and node.module.startswith(PREFIX) else None


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (base := _absolute(node, path)) is not None:
                imported |= {f"{base}.{alias.name}".lstrip(".") for alias in node.names} | ({base} - {""})
            elif isinstance(node, ast.Import):
                imported |= {a.name.removeprefix(PREFIX) for a in node.names if a.name.startswith(PREFIX)}
        graph[_module(path)] = imported
    known = set(graph)
    return {module: {name for name in names if name in known and name != module} for module, names in graph.items()}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_lower_layer_imports_nothing_from_the_layers_above(layer: str) -> None:
    arrows = sorted(f"{module} -> {target}" for module, targets in _imports().items()
                    if module == layer or module.startswith(f"{layer}.")
                    for target in targets if target.split(".")[0] in FORBIDDEN[layer])  # fmt: skip
    assert arrows == []


def test_no_module_imports_itself_through_others() -> None:
    graph = _imports()
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target == path[0]:
                circles.append([*path, target])
            elif target not in path and target > path[0]:  # each circle once, from its smallest module
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    assert circles == []
