"""The package's shape: its public names, and an import graph without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import textsynth

PACKAGE = Path(textsynth.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    """Module -> textsynth modules it imports anywhere (function bodies and
    ``if TYPE_CHECKING:`` blocks included), except its own parent packages."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                base = node.module
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], node.module])
                targets.update(f"{base}.{a.name}" for a in node.names)
        resolved = {resolve(t) for t in targets if t.startswith("textsynth")}
        graph[name] = {t for t in resolved
                       if t is not None and t != name and not name.startswith(t + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_import_graph_has_no_cycle() -> None:
    graph = _import_graph()
    assert len(graph) > 30  # the walk found the package
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_public_names_are_exactly_all() -> None:
    assert textsynth.__all__ == sorted(textsynth.__all__)
    public = {name for name in dir(textsynth) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(textsynth, name)).__name__ == "module"}
    assert public - modules - {"annotations", "TYPE_CHECKING", "Any"} <= set(textsynth.__all__)
    for name in textsynth.__all__:  # lazy names resolve too
        assert getattr(textsynth, name) is not None, name


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    """Importing a submodule sets it as an attribute of the package: a module named
    like a public function (``textsynth/evaluate.py`` beside ``textsynth.evaluate()``)
    turned the function into the module once anything had imported it, so
    ``textsynth.evaluate(...)`` worked once and then raised "'module' object is not
    callable". Every public name stays what it is, before and after every module is
    imported, in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, types, textsynth\n"
        "before = {n: type(getattr(textsynth, n)).__name__ for n in textsynth.__all__}\n"
        "for m in pkgutil.walk_packages(textsynth.__path__, 'textsynth.'):\n"
        "    if m.name.split('.')[-1] not in ('__main__',):\n"
        "        try: importlib.import_module(m.name)\n"
        "        except ImportError: pass  # an optional engine not installed\n"
        "bad = [n for n in textsynth.__all__\n"
        "       if isinstance(getattr(textsynth, n), types.ModuleType)]\n"
        "print(bad, sorted(n for n in before if before[n] == 'module'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    assert out.strip() == "[] []"
    assert "evaluate" not in _modules() and "textsynth.evaluate" not in _modules()
