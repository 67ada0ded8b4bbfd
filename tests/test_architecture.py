"""The folder tree is the architecture: every import in core/ runs one way.

Packages in order (core/__init__.py): each may import the base modules and the packages
before it, never one after it, at the top of a module or inside a function. core/ never
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


def test_every_import_in_core_runs_one_way():
    assert violations() == []


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
