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
        for path in (PACKAGE / "memory").rglob("*.py")
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


# SQL that changes the file: only the db room (connections, migrations) and the tables room write it.
SQL_WRITE = re.compile(
    r"\binsert\s+(or\s+\w+\s+)?into\b|\bupdate\s+\[?\w+\]?\s+set\b|\bdelete\s+from\b|\breplace\s+into\b"
    r"|\bcreate\s+(virtual\s+|unique\s+)?(table|index|trigger)\b|\balter\s+table\b|\bdrop\s+(table|index)\b"
    r"|\bpragma\s+\w+\s*=",
    re.IGNORECASE,
)
WRITERS = ("db", "tables")


def sql_writes_outside_the_writers() -> list[str]:
    found = []
    for path in sorted((PACKAGE / "memory").rglob("*.py")):
        if path.relative_to(PACKAGE / "memory").parts[0] in WRITERS:
            continue
        for line, text in string_parts(ast.parse(path.read_text(encoding="utf-8"))):
            if SQL_WRITE.search(text):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text.strip()[:60]}")
    return found


def test_only_the_db_and_tables_rooms_write_sql() -> None:
    """Every change to the file is a named function of the tables room (the row, its audit line, its
    vectors together); upkeep, recall, portability and the front read, decide and call them."""
    assert sql_writes_outside_the_writers() == []


def test_the_write_check_sees_the_writes_of_the_tables() -> None:
    writes = [
        text
        for path in (PACKAGE / "memory" / "tables").rglob("*.py")
        for _, text in string_parts(ast.parse(path.read_text(encoding="utf-8")))
        if SQL_WRITE.search(text)
    ]
    assert len(writes) > 40
    assert not SQL_WRITE.search("select id from messages where update_at > ?")
    assert SQL_WRITE.search("UPDATE memories SET pinned = 1") and SQL_WRITE.search("PRAGMA user_version = 3")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_at_load(path: Path, known: set[str]) -> set[str]:
    """The companion modules a module imports at run time: when it loads, and in its functions (on first use);
    not those under `if TYPE_CHECKING:`, which never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    visit(inner)
            for handler in getattr(node, "handlers", []):
                visit(handler.body)
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("companion"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                if not base.startswith("companion"):
                    continue
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)

    visit(tree.body)
    found.discard(name)
    return {m for m in found if m in known}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return cycles


def load_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imported_at_load(p, known) for p in paths}
    for module in list(graph):  # loading a module loads its packages first
        parts = module.split(".")
        graph[module] |= {".".join(parts[:i]) for i in range(1, len(parts))} & known - {module}
    return graph


def test_no_import_cycles_at_run_time() -> None:
    """Imports point down: no module imports, when it loads or in a function, a module that imports it (the
    cycles there were: memory.encryption and memory.store, memory.operations and memory.personas, llm.llama
    and llm.models)."""
    graph = load_graph()
    assert "companion.memory.tables.memories" in graph["companion.memory.operations"]  # the graph is read
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]  # and cycles are seen
    # A package's own __init__ importing its submodules is how packages are built; anything else is a cycle.
    real = [c for c in find_cycles(graph) if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert real == []
