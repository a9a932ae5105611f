"""The tests mirror the code, and what test modules share lives in tests/support/.

A test module imported as a library runs its tests twice and hides what depends on what;
a helper imported by its bare name works only from the folders pytest happens to put on
sys.path. So every test module imports what it shares from `tests.support`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# What a test folder may hold beside its test modules: only the fixtures of that folder.
CONFTEST = "conftest"


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _imported(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def _local_top_levels() -> set[str]:
    """Names a bare import finds only among the tests' own files and folders."""
    local = {p.stem for p in TESTS.rglob("*.py")} | {p.name for p in TESTS.rglob("*") if p.is_dir()}
    code = {p.stem for p in ROOT.glob("*.py")} | {p.parent.name for p in ROOT.glob("*/__init__.py")}
    return local - code - set(sys.stdlib_module_names) - {"__pycache__"}


def test_the_layout_check_finds_test_modules_and_their_imports() -> None:
    modules = {p.relative_to(TESTS).as_posix() for p in _test_modules()}
    assert {"parsers/test_parse_iin.py", "workers/test_pipeline.py",
            "e2e/test_e2e.py", "test_suite_layout.py"} <= modules
    assert "tests.support.pipeline" in _imported(TESTS / "services" / "test_services.py")


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    bad = [(p.relative_to(TESTS).as_posix(), name) for p in _test_modules()
           for name in _imported(p)
           if any(part.startswith("test_") or part == CONFTEST for part in name.split("."))]
    assert bad == []


def test_test_modules_reach_shared_helpers_through_tests_support() -> None:
    local = _local_top_levels() - {"tests"}
    bad = [(p.relative_to(TESTS).as_posix(), name) for p in _test_modules()
           for name in _imported(p)
           if name.startswith(".") or name.split(".")[0] in local
           or (name.startswith("tests.") and not name.startswith("tests.support"))]
    assert bad == []


def test_test_files_sit_in_the_folder_of_the_code_they_cover() -> None:
    top = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert top == ["test_suite_layout.py"]
    assert {p.name for p in TESTS.glob("*.py")} == {"conftest.py", "test_suite_layout.py"}


def test_test_module_basenames_are_unique() -> None:
    # Folders without __init__.py: pytest imports each test module by its basename.
    names = [p.name for p in _test_modules()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
