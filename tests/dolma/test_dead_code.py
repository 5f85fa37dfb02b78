"""No dead code at module level: every top-level function, class and constant of the packages is used somewhere.

A vulture-style reading, kept simple: a name defined at the top of a module in dolma/, mixers/ or taggers/ must
occur again in the packages, the tests, the benchmarks or pyproject.toml (entry points). Classes and functions
with a decorator call (`@register(...)`) are used by their registration. A name used only through a string
(e.g. an entry point) is found there too.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dolma", "mixers", "taggers")


def top_level_names(tree: ast.Module) -> list[tuple[int, str]]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not any(isinstance(d, ast.Call) for d in node.decorator_list):
                names.append((node.lineno, node.name))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [(node.lineno, t.id) for t in targets if isinstance(t, ast.Name)]
    return [(line, name) for line, name in names if not name.startswith("__")]


def unreferenced(sources: list[Path], corpus: list[str], root: Path = REPO) -> list[str]:
    words = Counter(word for text in corpus for word in re.findall(r"\w+", text))
    found = []
    for path in sources:
        for line, name in top_level_names(ast.parse(path.read_text(encoding="utf-8"))):
            if words[name] <= 1:  # the definition itself
                found.append(f"{path.relative_to(root)}:{line}: {name}")
    return found


def test_every_top_level_definition_is_used():
    sources = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    readers = sources + sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))
    corpus = [p.read_text(encoding="utf-8") for p in readers] + [(REPO / "pyproject.toml").read_text()]
    assert unreferenced(sources, corpus) == []


def test_the_check_finds_an_unused_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("LIMIT = 3\n\ndef used():\n    return LIMIT\n\ndef unused():\n    return used()\n")
    assert unreferenced([module], [module.read_text()], tmp_path) == ["m.py:6: unused"]
