"""Distinct names for distinct things, and one root for every error (issue 13, item 2).

- No two public classes of the shipped packages share a name: five classes called
  ``Outcome`` meant five different things, and a reader (or an import) could not tell which.
  Private classes (``_Model``, ``_Plan``) are module-local helpers and may repeat.
- Every exception class the shipped packages define derives from
  :class:`dialogs.errors.LeadbotError`, so ``except LeadbotError`` means "anything leadbot
  raised on purpose". Module-level classes are checked on the imported class (its real MRO);
  a class defined inside a function cannot be imported, so the source tree is checked for
  exception classes defined anywhere but at module level.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from collections import defaultdict
from pathlib import Path

from dialogs.errors import LeadbotError
from tests.test_layering import ROOT, shipped_packages

NOT_IMPORTABLE = frozenset({"scheduler.store.migrations.env"})
"""Modules only Alembic can run (they read ``alembic.context`` at import)."""


def python_files() -> list[Path]:
    """Every module of the shipped Python packages (``prompts/`` is data)."""
    return [
        path
        for package in shipped_packages()
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__main__.py"  # running it is its import
    ]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_two_public_classes_share_a_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    shared = {name: places for name, places in where.items() if len(places) > 1}
    assert not shared, f"give each a name that says what it is: {shared}"


def _exception_like(base: ast.expr) -> bool:
    """A base that names an exception: a built-in one or a name ending in Error/Exception."""
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    builtin = getattr(builtins, name, None)
    return (isinstance(builtin, type) and issubclass(builtin, BaseException)) or name.endswith(
        ("Error", "Exception")
    )


def test_exception_classes_are_defined_at_module_level() -> None:
    """So that the import walk below sees every one of them."""
    nested = []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            is_nested = isinstance(node, ast.ClassDef) and id(node) not in top
            if is_nested and any(_exception_like(base) for base in node.bases):
                nested.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not nested, nested


def test_every_exception_derives_from_the_root() -> None:
    checked, strays = [], []
    for path in python_files():
        name = module_name(path)
        if name in NOT_IMPORTABLE:
            tree = ast.parse(path.read_text(), filename=str(path))
            assert not any(isinstance(node, ast.ClassDef) for node in tree.body), name
            continue
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == name):
                continue
            if issubclass(cls, BaseException):
                checked.append(cls)
                if not issubclass(cls, LeadbotError):
                    strays.append(f"{name}.{cls.__qualname__}")
    assert not strays, f"derive these from dialogs.errors.LeadbotError: {strays}"
    assert len(checked) > 40  # the walk really saw the project's errors


def test_built_in_bases_that_callers_catch_are_kept() -> None:
    """Deriving from the root must not break an ``except ValueError`` (or KeyError) that
    already catches these."""
    from bot.http.inputs import RequestInputError
    from dialogs.icp import IcpError
    from scheduler.errors import InvalidLeadError, NotFoundError
    from scheduler.followups.cadence import UnknownSequenceError

    assert issubclass(RequestInputError, ValueError)
    assert issubclass(IcpError, ValueError)
    assert issubclass(InvalidLeadError, ValueError)
    assert issubclass(NotFoundError, LookupError)
    assert issubclass(UnknownSequenceError, KeyError)
