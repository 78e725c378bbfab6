"""The package's layers point one way: settings → database, Temporal, observability → runtime → operations and
tasks. Read from the source (every import, also those under TYPE_CHECKING or inside a function)."""

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
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
                base = node.module.removeprefix(PREFIX)
                imported |= {f"{base}.{alias.name}" for alias in node.names} | {base}
            elif isinstance(node, ast.Import):
                imported |= {a.name.removeprefix(PREFIX) for a in node.names if a.name.startswith(PREFIX)}
        graph[_module(path)] = imported
    known = set(graph)
    return {module: {name for name in names if name in known and name != module} for module, names in graph.items()}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_lower_layer_imports_nothing_from_the_layers_above(layer: str) -> None:
    arrows = sorted(f"{module} -> {target}" for module, targets in _imports().items() if module.startswith(f"{layer}.")
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
