"""No import loop between tuneforge's packages.

The rule: the packages and modules directly under `tuneforge` (`tuneforge.config`, `tuneforge.methods`,
`tuneforge.models`, `tuneforge.native`, `tuneforge.eval`, `tuneforge.rag`, `tuneforge.text`, ...) form a
directed graph with an edge A -> B when any module of A imports anything of B, and that graph has no
cycle. Every import statement that can run counts, wherever it stands: at module level, in a class
body, inside a function. A module-level loop breaks depending on which side is imported first; a
function-level ("lazy") import only hides the same loop until run time, so it is no way out: the
shared helper moves down to the ground floor (`tuneforge.text`, `tuneforge.paths`, ...) instead.
Imports under `if TYPE_CHECKING:` never run and do not count: they name a type for annotations only.
Imports within one package are free.

`KNOWN_LOOPS` lists the loops not yet taken apart, each with its reason; any other loop fails, and so
does a listed loop that no longer exists (remove it from the list).

The graph is read statically with `ast`, so the test imports nothing of tuneforge and sees every
module, optional dependencies or not.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "tuneforge"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement may load: the module, and for `from X import a` also `X.a`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


KNOWN_LOOPS: dict[frozenset[str], str] = {}


def _unit(name: str) -> str | None:
    """The package (or top-level module) of tuneforge a dotted name belongs to; None outside tuneforge."""
    parts = name.split(".")
    if parts[0] != "tuneforge" or len(parts) < 2:
        return None
    return f"tuneforge.{parts[1]}"


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module that can run: all but those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(ast.Module(body=[other], type_ignores=[]))
            else:
                visit(child)

    visit(tree)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{importing unit: {imported unit: ["path:line", ...]}} over every module under src/tuneforge."""
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")} - {None}
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        source = _unit(module)
        if source is None:  # tuneforge/__init__.py
            continue
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _imported(module, path.name == "__init__.py", node):
                target = _unit(name)
                if target in units and target != source:
                    where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                    if where not in graph[source][target]:
                        graph[source][target].append(where)
    return graph


def find_cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph has a few dozen nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    nodes = sorted(set(graph) | {w for edges in graph.values() for w in edges})
    for v in nodes:
        if v not in index:
            connect(v)

    cycles: list[list[str]] = []
    for component in components:
        for start in component:  # the shortest loop through each member names every loop of the knot
            cycle = _shortest_cycle(graph, start, set(component))
            rotations = [cycle[i:-1] + cycle[:i + 1] for i in range(len(cycle) - 1)]
            if not any(r in cycles for r in rotations):
                cycles.append(cycle)
    return cycles


def _shortest_cycle(graph: dict[str, dict[str, list[str]]], start: str, members: set[str]) -> list[str]:
    paths = {start: [start]}  # breadth-first from `start` back to it
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    return paths[v] + [start]
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def describe(cycle: list[str], graph: dict[str, dict[str, list[str]]]) -> str:
    steps = [f"  {a} -> {b}: {', '.join(graph[a][b][:3])}" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_the_graph_sees_the_packages():
    graph = import_graph()
    assert "tuneforge.config" in graph["tuneforge.train"]  # a known edge: the reader must find it
    assert "tuneforge.text" in graph["tuneforge.curate"]


def test_the_settings_base_stands_on_nothing():
    # config and the methods both build on it; it must import nothing of tuneforge to stay below both
    assert not import_graph().get("tuneforge.settings")


def test_no_import_loop_between_packages():
    graph = import_graph()
    cycles = [c for c in find_cycles(graph) if frozenset(c) not in KNOWN_LOOPS]
    assert not cycles, "import loops between packages:\n" + "\n".join(describe(c, graph) for c in cycles)


def test_known_loops_still_exist():
    found = {frozenset(c) for c in find_cycles(import_graph())}
    gone = [sorted(loop) for loop in KNOWN_LOOPS if loop not in found]
    assert not gone, f"these loops are gone: remove them from KNOWN_LOOPS: {gone}"


def test_type_checking_imports_do_not_count():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\ndef f():\n    import d\n")
    assert [n.names[0].name for n in _imports(tree)] == ["a", "c", "d"]


def test_find_cycles_names_a_loop():
    graph = {"a": {"b": ["a.py:1"]}, "b": {"c": ["b.py:2"]}, "c": {"a": ["c.py:3"]}, "d": {"a": ["d.py:4"]}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": ["a.py:1"]}}) == []
