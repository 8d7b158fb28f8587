"""The package's layers, read from the syntax tree of every module: a module imports only from its
own layer or below, also inside functions and under ``TYPE_CHECKING``, and no two modules import
each other, directly or around a loop (a name imported under ``TYPE_CHECKING`` only, for an
annotation, is no loop: it is never imported when the program runs). The layers, bottom to top,
are drawn in the README's Layout section."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aelab

PACKAGE = Path(aelab.__file__).parent
# bottom to top; the package's own __init__ (the public API) sits above them all
LAYERS = (
    ("aelab._version", "aelab.utils"),
    ("aelab.data", "aelab.models"),
    ("aelab.training",),
    ("aelab.runs",),
    ("aelab.analysis", "aelab.plots"),
    ("aelab.apps", "aelab.estimator"),
    ("aelab.cli", "aelab.bench", "aelab.__main__"),
)


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under ``root`` (the ``aelab`` folder) by its dotted name, and whether it is
    a package's ``__init__``."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """The lines of ``if TYPE_CHECKING:`` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines |= set(range(child.lineno, child.end_lineno + 1))
    return lines


def import_graph(root: Path, *, runtime: bool = False) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for every aelab module imported anywhere in a
    module's syntax tree (top level, functions, ``TYPE_CHECKING`` blocks alike; ``runtime``:
    leaving out ``TYPE_CHECKING`` blocks)."""
    mods = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in mods.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree) if runtime else set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            for target in targets:
                while target and target not in mods:  # aelab.x.name -> aelab.x
                    target = target.rpartition(".")[0]
                if target.startswith("aelab") and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def layer(module: str) -> int:
    if module == "aelab":
        return len(LAYERS)
    for i, group in enumerate(LAYERS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return i
    raise AssertionError(f"{module} is in no layer; add it to LAYERS (and the README's Layout)")


def upward(graph: dict[str, dict[str, int]]) -> list[str]:
    return [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)}) at line {line}"
        for a, edges in sorted(graph.items())
        for b, line in sorted(edges.items())
        if layer(b) > layer(a)
    ]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_is_in_a_layer():
    for name in modules(PACKAGE):
        layer(name)


def test_no_module_imports_a_higher_layer():
    assert upward(import_graph(PACKAGE)) == []


def test_no_import_cycles():
    assert cycles(import_graph(PACKAGE, runtime=True)) == []


def test_the_checks_fail_on_a_planted_cycle_and_an_upward_import(tmp_path):
    root = tmp_path / "aelab"
    (root / "runs").mkdir(parents=True)
    (root / "apps").mkdir()
    for init in (root, root / "runs", root / "apps"):
        (init / "__init__.py").write_text("")
    (root / "runs" / "run.py").write_text("def f():\n    from aelab.apps import report\n")
    (root / "apps" / "report.py").write_text("from ..runs.run import f\n")
    graph = import_graph(root)
    assert graph["aelab.runs.run"] == {"aelab.apps.report": 2}
    assert upward(graph) == [
        "aelab.runs.run (layer 3) imports aelab.apps.report (layer 5) at line 2"
    ]
    assert cycles(graph) == [["aelab.apps.report", "aelab.runs.run"]]


@pytest.mark.parametrize("module", sorted(modules(PACKAGE)))
def test_files_hold_one_concern(module):
    path, _ = modules(PACKAGE)[module]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 450, f"{path.name} has {lines} lines; split it by concern"
