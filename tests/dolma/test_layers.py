"""Layers point one way: taggers -> dolma and mixers -> dolma; the framework never imports the packages above it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dolma.commands import FRAMEWORK_COMMANDS, all_commands, find_command

REPO = Path(__file__).resolve().parents[2]
DOLMA = REPO / "dolma"
UPPER = ("taggers", "mixers")

# Imports every dolma module in a fresh interpreter (`dolma.__main__` runs the CLI when imported: left out) and
# prints the packages above the framework that ended up in sys.modules.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import dolma
names = sorted(m.name for m in pkgutil.walk_packages(dolma.__path__, "dolma.") if m.name != "dolma.__main__")
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "upper": sorted(m for m in sys.modules if m.split(".")[0] in UPPER)}))
""".replace("UPPER", repr(UPPER))


def test_importing_every_dolma_module_imports_no_tagger_or_mixer():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True, cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "dolma.commands.tag" in result["modules"] and "dolma.cli" in result["modules"]
    assert result["upper"] == []


def upper_imports(path: Path, root: Path = REPO) -> list[str]:
    """`import taggers...` / `from mixers... import` anywhere in a file (functions included), and
    `import_module("taggers...")` calls with a literal name, as `file:line: statement`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in UPPER:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    return found


def test_no_dolma_source_names_taggers_or_mixers_in_an_import():
    files = sorted(DOLMA.rglob("*.py"))
    assert len(files) > 20
    assert [hit for path in files for hit in upper_imports(path)] == []


def test_the_static_check_finds_an_import_inside_a_function(tmp_path):
    # the check above must be able to fail: the forms it looks for, hidden in a function
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import importlib\n"
        "def f():\n"
        "    from mixers.mix import run_mix\n"
        "    import taggers.language\n"
        "    importlib.import_module('taggers')\n"
    )
    hits = upper_imports(sample, tmp_path)
    assert [hit.rsplit(": ", 1)[1] for hit in hits] == ["mixers.mix", "taggers.language", "taggers"]


@pytest.mark.parametrize(
    ("name", "module"),
    [("mix", "mixers.mix"), ("tokens", "mixers.tokens_command"), ("train-fasttext", "taggers.train_fasttext")],
)
def test_commands_of_the_packages_above_come_from_entry_points(name, module):
    assert name not in FRAMEWORK_COMMANDS
    command = find_command(name)
    assert command is not None and command.module == module
    config_type, run = command.load()
    assert callable(run) and config_type.__module__.split(".")[0] == module.split(".")[0]


def test_every_command_is_listed_once_framework_first():
    names = list(all_commands())
    assert names[: len(FRAMEWORK_COMMANDS)] == list(FRAMEWORK_COMMANDS)
    assert {"tag", "list", "dedupe", "mix", "tokens", "train-fasttext"} <= set(names)
    assert find_command("no-such-command") is None


LONG_MODULE = 400


def long_modules_without_a_reason(root: Path) -> list[str]:
    """Modules (Python packages and the Rust crates) over LONG_MODULE lines whose first 5 lines give no reason
    ("because" or "Longer than")."""
    found = []
    sources = [path for package in ("dolma", "mixers", "taggers") for path in sorted((root / package).rglob("*.py"))]
    sources += [path for crate in ("core", "py") for path in sorted((root / "rust_ext" / crate / "src").rglob("*.rs"))]
    for path in sources:
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > LONG_MODULE and not any("because" in line or "Longer than" in line for line in lines[:5]):
            found.append(path.relative_to(root).as_posix())
    return found


def test_long_modules_say_why_at_their_top():
    assert [name for name in long_modules_without_a_reason(REPO)] == []


def test_the_length_check_finds_a_long_module_without_a_reason(tmp_path):
    (tmp_path / "mixers").mkdir()
    body = "\n".join(f"x{i} = {i}" for i in range(LONG_MODULE))
    (tmp_path / "mixers" / "long.py").write_text('"""A module."""\n' + body, encoding="utf-8")
    (tmp_path / "mixers" / "why.py").write_text("# Longer than 400 lines because of x\n" + body, encoding="utf-8")
    (tmp_path / "mixers" / "short.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "rust_ext" / "core" / "src").mkdir(parents=True)
    rust = "\n".join(f"const X{i}: u32 = {i};" for i in range(LONG_MODULE))
    (tmp_path / "rust_ext" / "core" / "src" / "long.rs").write_text("//! A module.\n" + rust, encoding="utf-8")
    (tmp_path / "rust_ext" / "core" / "src" / "why.rs").write_text("// Longer than 400 lines because x\n" + rust)
    assert long_modules_without_a_reason(tmp_path) == ["mixers/long.py", "rust_ext/core/src/long.rs"]
