"""The layers hold: no import cycle between files of ``components/`` and ``pipelines/``, and no component imports ``pipelines``.

Two graphs: module-level imports (what runs when a module is imported;
``if TYPE_CHECKING:`` blocks do not run), and every import statement, inside
functions and ``TYPE_CHECKING`` blocks too (a deferred import that closes a
cycle is still two files that need each other). Neither may have a cycle; the
components -> pipelines rule holds for every import.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "pipelines")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                    visit(block)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` an import statement loads (a name imported from a package may be a submodule)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in known:
            out.add(sub)
        elif source in known:
            out.add(source)
    return out


def _every(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _graph(every: bool = False) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    known = _modules()
    graph: dict[str, set[str]] = {}
    upward: dict[str, list[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set()
        for node in _every(tree) if every else _module_level(tree):
            graph[module] |= _targets(node, module, is_package, known) - {module}
        if module.startswith("components"):
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                upward[module] = upward.get(module, []) + [n for n in names if n == "pipelines" or n.startswith("pipelines.")]
    return graph, {m: v for m, v in upward.items() if v}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_graph_sees_the_imports_it_must() -> None:
    graph, _ = _graph()
    assert "components.core.spec" in graph["pipelines.training"]  # absolute
    assert "pipelines.steps" in graph["pipelines.training"]  # relative, from a module
    assert "pipelines.cli.main" in graph["pipelines.cli"]  # relative, from a package
    assert "pipelines.cli.runs" in graph["pipelines.cli.main"]  # `from . import runs`: a submodule
    assert "components.core.lineage" not in graph["pipelines.cli.runs"]  # only under TYPE_CHECKING
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_files() -> None:
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_no_import_cycle_through_deferred_imports_either() -> None:
    graph, _ = _graph(every=True)
    assert "components.core.lineage" in graph["pipelines.cli.runs"]  # the TYPE_CHECKING import counts here
    assert _cycles(graph) == []


def test_no_component_imports_pipelines() -> None:
    _, upward = _graph()
    assert upward == {}
