"""The folder tree is the architecture: every import in core/ runs one way.

Packages in order (core/__init__.py): each may import the base modules and the packages
before it, never one after it, at the top of a module or inside a function. Inside a
package, no two modules import each other, directly or round a longer circle. core/ never
imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ("config", "display", "jsonvalue")  # settings and pure helpers: no Spread imports of their own
ORDER = ("store", "prompts", "models", "run", "analyse", "review", "evaluate", "watch", "execution", "serve",
         "formats", "cli")

def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, at any depth, relative ones resolved;
    `from a import b` gives a.b (b may be a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def layer(dotted: str) -> int | None:
    """Where a core module sits: -1 for the base modules, else its package's index in
    ORDER; None outside core."""
    parts = dotted.split(".")
    if parts[0] != "core":
        return None
    if len(parts) == 1 or parts[1] in BASE:
        return -1
    if parts[1] in ORDER:
        return ORDER.index(parts[1])
    raise AssertionError(f"{dotted}: a module of core/ outside the layers; add it to BASE or ORDER")


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "core").rglob("*.py")):
        name = module_name(path, root)
        own = layer(name)
        for line, target in imported(path, root):
            where = f"{path.relative_to(root)}:{line}"
            if target.split(".")[0] == "streamlit":
                found.append(f"{where} imports streamlit")
                continue
            theirs = layer(target)
            if theirs is None:
                continue
            if own == -1 and theirs == -1 and target.split(".")[:2] != name.split(".")[:2]:
                found.append(f"{where}: base module {name} imports {target}")
            elif theirs > own:
                found.append(f"{where}: {name} imports {target}, a later package")
    return found


def module_of(dotted: str, root: Path) -> str | None:
    """The core module an imported name lives in (`core.a.b` is module b, or name b of a)."""
    parts = dotted.split(".")
    for end in (len(parts), len(parts) - 1):
        path = root.joinpath(*parts[:end])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts[:end])
    return None


def circles(root: Path = ROOT) -> list[list[str]]:
    """Every set of core modules that import each other round a circle (at any depth of a
    function), each as its sorted module names; a package's own __init__ is left out (it
    gathers its modules' names for callers)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "core").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        name = module_name(path, root)
        graph[name] = {target for _, dotted in imported(path, root)
                       if dotted.startswith("core.") and (target := module_of(dotted, root)) and target != name}
    # Tarjan's strongly connected components: a component of more than one module is a circle.
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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
    return sorted(found)


def test_every_import_in_core_runs_one_way():
    assert violations() == []


def test_no_modules_of_core_import_each_other():
    assert circles() == []


def test_the_circle_check_sees_a_circle_through_a_function(tmp_path):
    (tmp_path / "core" / "evaluate").mkdir(parents=True)
    (tmp_path / "core" / "evaluate" / "a.py").write_text("from core.evaluate import b\n")
    (tmp_path / "core" / "evaluate" / "b.py").write_text("def f():\n    from core.evaluate.c import g\n")
    (tmp_path / "core" / "evaluate" / "c.py").write_text("import core.evaluate.a\n")
    (tmp_path / "core" / "evaluate" / "d.py").write_text("from core.evaluate import a\n")
    assert circles(tmp_path) == [["core.evaluate.a", "core.evaluate.b", "core.evaluate.c"]]


def test_the_check_sees_imports_inside_functions_and_relative_ones(tmp_path):
    (tmp_path / "core" / "models").mkdir(parents=True)
    (tmp_path / "core" / "run").mkdir()
    (tmp_path / "core" / "models" / "bad.py").write_text(
        "def f():\n    from core.run import plan\n"
        "from ..analyse import spread\n"
        "import core.evaluate.gate\n"
        "import streamlit as st\n")
    (tmp_path / "core" / "run" / "fine.py").write_text("from core.models import llm\nfrom . import plan\n")
    found = violations(tmp_path)
    assert sorted(found) == [
        "core/models/bad.py:2: core.models.bad imports core.run.plan, a later package",
        "core/models/bad.py:3: core.models.bad imports core.analyse.spread, a later package",
        "core/models/bad.py:4: core.models.bad imports core.evaluate.gate, a later package",
        "core/models/bad.py:5 imports streamlit",
    ]
