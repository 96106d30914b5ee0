"""The tree shows the architecture: a few top-level modules, one room per concern, and imports
that flow one way, from the edge (cli, web) down to settings and errors."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

BROKER = Path(__file__).parents[2] / "broker"
# Each room may import only from the rooms below its own rank (and from inside itself).
RANKS = {
    "__main__": 9,
    "cli": 8,
    "web": 7,
    "sessions": 6,
    "events": 5,
    "identity": 4,
    "policy": 4,
    "gladia": 4,
    "store": 3,
    "observability": 2,
    "settings": 2,
    "bounded_json": 2,
    "errors": 1,
    # The Gladia simulator is a product of its own: `broker simulator` starts it; it imports
    # nothing of the broker's.
    "simulator": 0,
}
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(BROKER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text()) for path in BROKER.rglob("*.py")}


def imported(tree: ast.Module, known: set[str]) -> Iterator[str]:
    """Every broker module `tree` imports, under `if TYPE_CHECKING:` and in functions too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in known:
            # `from broker.web.routes import api_docs` imports the submodule, not the package.
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            found = [name for name in submodules if name in known]
            yield from found or [node.module]


def import_graph() -> dict[str, set[str]]:
    trees = modules()
    return {name: set(imported(tree, set(trees))) - {name} for name, tree in trees.items()}


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_through_others() -> None:
    assert first_cycle(import_graph()) is None


def test_a_graph_with_a_circle_is_caught() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert first_cycle(graph) == ["a", "b", "c", "a"]


def test_imports_flow_down_the_rooms() -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        for target in targets
        if source != "broker" and room(source) != room(target)
        if RANKS[room(target)] >= RANKS[room(source)]
    )
    assert upward == []


def test_every_room_has_a_rank() -> None:
    rooms = {room(name) for name in modules() if name != "broker"}
    assert rooms == set(RANKS)


def test_the_top_level_holds_few_modules_and_the_rooms_are_packages() -> None:
    top_modules = sorted(path.name for path in BROKER.glob("*.py"))
    packages = sorted(path.name for path in BROKER.iterdir() if (path / "__init__.py").is_file())
    assert len(top_modules) <= 8, top_modules
    assert len(packages) >= 5, packages


def test_no_function_is_longer_than_a_screen() -> None:
    long = sorted(
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    )
    assert long == []
