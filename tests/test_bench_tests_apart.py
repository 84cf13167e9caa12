"""bench/ and tests/ do not import each other in a circle: what both use lives in
tests/support/, which imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Tests whose subject is a bench script (the chaos harness) may import it.
BENCH_SUBJECTS = {ROOT / "tests" / "chaos"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute imports; the repo uses no relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_bench_imports_only_tests_support() -> None:
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("bench")
        for name in _imports(path)
        if _under(name, "tests") and not _under(name, "tests.support")
    }
    assert not wrong, sorted(wrong)


def test_tests_do_not_import_bench() -> None:
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("tests")
        if not any(path.is_relative_to(subject) for subject in BENCH_SUBJECTS)
        for name in _imports(path)
        if _under(name, "bench")
    }
    assert not wrong, sorted(wrong)


def test_tests_support_imports_neither_bench_nor_other_tests() -> None:
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("tests/support")
        for name in _imports(path)
        if _under(name, "bench") or (_under(name, "tests") and not _under(name, "tests.support"))
    }
    assert not wrong, sorted(wrong)
