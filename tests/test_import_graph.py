"""The product's imports point one way, and no module reaches itself through others.

The graph is built from the source (ast), so function-local and TYPE_CHECKING
imports count like any other: a circle hidden inside a function is still a circle
in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("stream", "windows", "timesnet")

# stream's rooms from the bottom up: a room may import its own and lower ones only
STREAM_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"stream.errors", "stream.config"}),
    frozenset({"stream.kafka"}),
    frozenset({"stream.decode"}),
    frozenset({"stream.core"}),
    frozenset({"stream.http", "stream.jobs"}),
    frozenset({"stream.service"}),
    frozenset({"stream.cli", "stream.commands"}),
)
# what each standalone package may not import
FORBIDDEN = {"windows": ("stream", "timesnet"), "timesnet": ("stream", "windows")}
# left from the flat package; the restructure removes them one by one, none may be added
KNOWN_CIRCLES = []
KNOWN_UPWARD: list[str] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _product_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            modules[_module_name(path)] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Product modules `name` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # the longest known module the target names (a module or an attribute of one)
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _product_modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(module: str) -> int | None:
    for index, rooms in enumerate(STREAM_LAYERS):
        if any(module == room or module.startswith(room + ".") for room in rooms):
            return index
    return None


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_local_and_type_checking_imports() -> None:
    graph = _graph()
    assert "stream.core.worker" in graph["stream.service"]  # a plain import
    assert len(graph) > 60 and sum(map(len, graph.values())) > 150


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_stream_rooms_import_only_their_own_and_lower_rooms() -> None:
    wrong = []
    for module, targets in sorted(_graph().items()):
        mine = _layer(module)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = _layer(target)
            if theirs is None:
                continue
            same_layer_other_room = theirs == mine and _room(target) != _room(module)
            if theirs > mine or (same_layer_other_room and mine > 0):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_windows_and_timesnet_import_nothing_of_stream() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if module.split(".")[0] in FORBIDDEN
        and target.split(".")[0] in FORBIDDEN[module.split(".")[0]]
    ]
    assert wrong == []


def test_every_stream_module_lives_in_a_known_room() -> None:
    loose = [m for m in _graph() if m.startswith("stream.") and _layer(m) is None]
    assert loose == []


def test_the_checker_finds_a_circle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("stream.kafka.clients") < _layer("stream.core.worker")
