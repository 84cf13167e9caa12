"""The store is the only code that talks to the database (issue 13, item 1).

Every module of the shipped packages (the wheel's, from ``pyproject.toml``) is parsed, and
any import of SQLAlchemy, a database driver or Alembic outside ``scheduler/store/`` fails the
test, wherever the import sits (top level, or inside a function). ``bot/``, ``dialogs/`` and
``crm_sync/`` admit none. Scheduler modules that still build their own statements are listed
in :data:`NOT_YET_IN_THE_STORE`, a list that may only shrink: a module on it that no longer
imports the database fails the test too, so the list is kept honest.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = Path("scheduler", "store")
DATABASE_LIBRARIES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "alembic"})

NOT_YET_IN_THE_STORE: frozenset[str] = frozenset(
    {
        # The dispatcher's claim/start/record/reap statements: left in place while the
        # outbox is being fixed elsewhere; they move with the delivery package (item 2).
        "scheduler/outbox.py",
    }
)
"""Scheduler modules (paths from the repository root) still allowed to import the database
libraries until their statements move into ``scheduler/store/``. Only ever remove entries."""


def shipped_packages() -> list[str]:
    """The top-level packages the wheel ships."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages: list[str] = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def database_imports(path: Path) -> list[str]:
    """``line: module`` of every database library the module at ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] in DATABASE_LIBRARIES]
    return found


def modules_outside_the_store() -> dict[str, list[str]]:
    """Every shipped module outside ``scheduler/store/`` that imports a database library,
    with those imports."""
    offenders: dict[str, list[str]] = {}
    for package in shipped_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.is_relative_to(STORE):
                continue
            imports = database_imports(path)
            if imports:
                offenders[relative.as_posix()] = imports
    return offenders


def test_only_the_store_imports_the_database() -> None:
    offenders = modules_outside_the_store()
    unexpected = {p: i for p, i in offenders.items() if p not in NOT_YET_IN_THE_STORE}
    assert not unexpected, (
        "only scheduler/store/ may import SQLAlchemy, the drivers or Alembic; move these "
        f"statements into a store module: {unexpected}"
    )


def test_the_allow_list_only_shrinks() -> None:
    offenders = modules_outside_the_store()
    done = sorted(NOT_YET_IN_THE_STORE - set(offenders))
    assert not done, (
        f"these modules no longer import the database: remove them from the list: {done}"
    )
    assert not any(p.startswith(("bot/", "dialogs/", "crm_sync/")) for p in NOT_YET_IN_THE_STORE)


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n"
        "import sqlalchemy.orm as orm\n"
        "from asyncpg import Record\n"
        "from . import sqlalchemy\n"  # a sibling module of ours with that name: not the library
        "def later():\n"
        "    from alembic import command\n"
        "    import aiosqlite\n"
        "from sqlalchemy_utils import x\n"  # another library that merely shares the prefix
    )
    assert database_imports(module) == [
        "2: sqlalchemy.orm",
        "3: asyncpg",
        "6: alembic",
        "7: aiosqlite",
    ]


def test_the_store_itself_is_where_the_database_is() -> None:
    # Not a vacuous pass: the walk finds the database where it must be.
    engine = ROOT / STORE / "engine.py"
    assert any(i.endswith(": sqlalchemy.ext.asyncio") for i in database_imports(engine))
    assert "scheduler" in shipped_packages()
