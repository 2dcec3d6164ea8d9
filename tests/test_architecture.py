"""The shape of the code that the rest of the suite cannot see: imports at the top (a cycle
hidden in a function once stopped every process at start-up), no `assert` standing in for a
runtime check (Python's -O removes them), and the settings at the bottom of the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

CODE = [*sorted((REPO / "app").rglob("*.py")), *sorted((REPO / "channels").rglob("*.py"))]
# The command line imports each command's modules when that command runs, so `--help` stays
# fast and a command's broker choice is made after its settings are read.
LAZY_IMPORTS_ALLOWED = {REPO / "app" / "cli.py"}


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_no_import_inside_a_function() -> None:
    found = []
    for path in CODE:
        if path in LAZY_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [
                    f"{_relative(path)}:{inner.lineno}: {ast.unparse(inner)}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                ]
    assert found == []


def test_no_assert_as_a_runtime_check() -> None:
    found = [
        f"{_relative(path)}:{node.lineno}"
        for path in CODE
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_the_settings_import_nothing_above_them() -> None:
    """Only the bottom module, durations (no Carillon import of its own): a channel's settings
    are the channel's, above these."""
    tree = ast.parse((REPO / "app" / "settings.py").read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in ("app", "channels")
    }
    assert imported == {"app.durations"}
    for bottom in ("app/durations.py",):
        source = ast.parse((REPO / bottom).read_text(encoding="utf-8"))
        assert not [
            n
            for n in ast.walk(source)
            if isinstance(n, ast.ImportFrom)
            and (n.module or "").split(".")[0] in ("app", "channels")
        ], bottom


def test_tests_share_code_through_the_helpers_module_only() -> None:
    """A test file imports what it shares from tests/helpers.py (or its own folder's conftest),
    never from another test file or another folder's conftest: moving or deleting one test file
    must not break another."""
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        own_conftest = ".".join(path.parent.relative_to(REPO).parts + ("conftest",))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            last = node.module.split(".")[-1]
            other_conftest = last == "conftest" and node.module != own_conftest
            if last.startswith("test_") or other_conftest:
                found.append(f"{_relative(path)}:{node.lineno}: from {node.module}")
    assert found == []


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import, `from a import b` counted as `a` and as `a.b`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


# What runs the jobs: the workers' module list, the embedded worker, the command line.
WORKER_ENTRY_POINTS = {REPO / "app" / name for name in ("tasks.py", "embedded.py", "cli.py")}


def test_jobs_are_enqueued_by_name_never_through_an_imported_actor() -> None:
    """Only the modules that define jobs (`app.queue.actor`) and the workers' entry points may
    import a job's actor; everything else enqueues an `app.queue.Job` by name."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in CODE}
    defining = {
        _module(path)
        for path, tree in trees.items()
        if "app.queue.actor" in {module for _, module in _imported(tree)}
    }
    assert {"app.events.tasks", "app.delivery.tasks"} <= defining
    allowed = {_module(path) for path in WORKER_ENTRY_POINTS} | defining
    found = [
        f"{_relative(path)}:{line}: imports {module}"
        for path, tree in trees.items()
        if _module(path) not in allowed
        for line, module in _imported(tree)
        if module in defining or module == "app.tasks"
    ]
    assert found == []
