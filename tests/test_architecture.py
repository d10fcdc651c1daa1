"""The shape of the house, checked: only `companion/memory/` writes SQL, no module imports another module's
underscore names, and commands that need no model import no ML library."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "companion"
SQL = re.compile(
    r"\bselect\b[\s\S]+\bfrom\b|\binsert\s+(or\s+\w+\s+)?into\b|\bupdate\s+\[?\w+\]?\s+set\b|\bdelete\s+from\b"
    r"|\bcreate\s+(virtual\s+|unique\s+)?(table|index|trigger)\b|\bpragma\s+\w+|\balter\s+table\b|\bdrop\s+table\b",
    re.IGNORECASE,
)


def modules(outside: str | None = None) -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if outside is None or outside not in p.parts]


def string_parts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal, the constant parts of f-strings included, with its line."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def sql_outside_memory() -> list[str]:
    found = []
    for path in modules(outside="memory"):
        for line, text in string_parts(ast.parse(path.read_text(encoding="utf-8"))):
            if SQL.search(text):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text.strip()[:60]}")
    return found


def test_only_the_memory_layer_writes_sql() -> None:
    assert sql_outside_memory() == []


def test_the_sql_check_finds_sql() -> None:
    """The check above is not vacuous: it sees the SQL the memory layer does write."""
    memory_sql = [
        text
        for path in (PACKAGE / "memory").glob("*.py")
        for _, text in string_parts(ast.parse(path.read_text(encoding="utf-8")))
        if SQL.search(text)
    ]
    assert len(memory_sql) > 50
    assert SQL.search("select id from messages where x = ?") and SQL.search("UPDATE memories SET pinned = 1")


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("companion"):
                module = node.module or ""
                private = [
                    a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                ]
                if private or any(part.startswith("_") for part in module.split(".")):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {module} {private}")
    assert offenders == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["memory", "stats"],
        ["memory", "list"],
        ["memory", "show", "1"],
        ["memory", "threads"],
        ["profile"],
        ["config", "show"],
        ["persona", "list"],
        ["model", "list"],
    ],
)
def test_commands_that_need_no_model_import_no_ml_library(args: list[str], home: Path) -> None:
    code = (
        "import sys\n"
        "from companion.cli import main\n"
        f"sys.argv = ['companion', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'textual', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stderr, result.stderr
