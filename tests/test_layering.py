"""The store is the only code that talks to the database (issue 13, item 1), and no folder
imports a folder that imports it back (item 2).

Every module of the shipped packages (the wheel's, from ``pyproject.toml``) is parsed, and
any import of SQLAlchemy, a database driver or Alembic outside ``scheduler/store/`` fails the
test, wherever the import sits (top level, or inside a function). ``bot/``, ``dialogs/`` and
``crm_sync/`` admit none. Scheduler modules that still build their own statements are listed
in :data:`NOT_YET_IN_THE_STORE`, a list that may only shrink: a module on it that no longer
imports the database fails the test too, so the list is kept honest.

The folders ("rooms") are the subpackages of ``bot/`` and ``scheduler/`` (``bot/http/``,
``scheduler/followups/``, …); a module at the root of either (``bot/app.py``,
``scheduler/loop.py``) is a room of its own, and ``dialogs/`` and ``crm_sync/`` are one room
each. Every import counts, also one inside a function or under ``TYPE_CHECKING``: an import
that is only deferred still ties the two folders together.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPLIT = frozenset({"bot", "scheduler"})
"""Top-level packages whose subpackages are rooms of their own."""
STORE = Path("scheduler", "store")
DATABASE_LIBRARIES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "alembic"})

NOT_YET_IN_THE_STORE: frozenset[str] = frozenset()
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


def module_name(path: Path) -> str:
    """The dotted name of the module at ``path`` (relative to the repository root)."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    """The folder ``module`` lives in: ``bot.http.errors`` → ``bot.http``; a module at the
    root of ``bot``/``scheduler`` is its own room (``bot.app``); ``dialogs.engine`` →
    ``dialogs``."""
    parts = module.split(".")
    if parts[0] in SPLIT and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def imported_modules(
    path: Path, name: str, known: frozenset[str], *, type_checking: bool = True
) -> set[str]:
    """Our modules that the module ``name`` at ``path`` imports (``from a import b`` counts
    as an import of ``a.b`` when that is a module, of ``a`` otherwise). With
    ``type_checking=False``, imports under ``if TYPE_CHECKING:`` are left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    for node in ast.walk(tree) if type_checking else runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    found.discard(name)
    return found


def room_graph() -> dict[str, set[str]]:
    """Which rooms each room imports (the shipped packages only)."""
    paths = {
        module_name(path.relative_to(ROOT)): path
        for package in shipped_packages()
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    known = frozenset(paths)
    graph: dict[str, set[str]] = {room(m): set() for m in paths}
    for name, path in paths.items():
        for target in imported_modules(path, name, known):
            if room(target) != room(name):
                graph[room(name)].add(room(target))
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one node (Tarjan),
    each sorted: rooms that reach each other through their imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_folder_imports_a_folder_that_imports_it_back() -> None:
    graph = room_graph()
    tangles = cycles(graph)
    detail = [
        {a: sorted(set(graph[a]) & set(component)) for a in component} for component in tangles
    ]
    assert not tangles, f"these folders import each other (room: rooms it imports): {detail}"


def test_the_room_graph_sees_the_rooms() -> None:
    # Not a vacuous pass: the rooms are there and their imports are seen.
    graph = room_graph()
    assert {"bot.http", "bot.whatsapp", "scheduler.store", "scheduler.delivery"} <= set(graph)
    assert "bot.whatsapp" in graph["bot.app"]
    assert "scheduler.store" in graph["scheduler.pipeline"]
    assert "dialogs" in graph["bot.whatsapp"]
    assert room("bot.http.errors") == "bot.http"
    assert room("bot.settings") == "bot.settings"
    assert room("dialogs.engine") == "dialogs"


def test_the_cycle_check_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": {"x"}, "z": {"x"}}) == [["x", "y"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_imports_are_resolved_to_our_modules(tmp_path: Path) -> None:
    package = tmp_path / "bot" / "email"
    package.mkdir(parents=True)
    module = package / "webhook.py"
    module.write_text(
        "import os\n"
        "from bot.http import errors\n"  # a module imported from its package
        "from bot.http.appkeys import SESSIONS\n"
        "from . import actions\n"  # relative, within the room
        "def later():\n"
        "    from ..whatsapp import envelope\n"  # relative, into another room
        "    import scheduler.store.models\n"
    )
    known = frozenset(
        {
            "bot.http",
            "bot.http.errors",
            "bot.http.appkeys",
            "bot.email",
            "bot.email.actions",
            "bot.whatsapp",
            "bot.whatsapp.envelope",
            "scheduler.store",
            "scheduler.store.models",
        }
    )
    assert imported_modules(module, "bot.email.webhook", known) == {
        "bot.http.errors",
        "bot.http.appkeys",
        "bot.email.actions",
        "bot.whatsapp.envelope",
        "scheduler.store.models",
    }


# --- module cycles ------------------------------------------------------------------------------
#
# Below the folders, no module may import a module that imports it back, directly or through
# others: every import counts, also one deferred into a function (it only hides the cycle from
# the interpreter), except those under ``if TYPE_CHECKING:``, which never run.

MODULE_CYCLES_LEFT: frozenset[frozenset[str]] = frozenset()
"""Module cycles not broken yet, each the set of its modules. Only ever remove entries."""


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those inside an ``if TYPE_CHECKING:`` block (its
    ``else`` branch runs, so it is kept)."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_graph() -> dict[str, set[str]]:
    """Which of our modules each shipped module imports at run time."""
    paths = {
        module_name(path.relative_to(ROOT)): path
        for package in shipped_packages()
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    known = frozenset(paths)
    return {
        name: imported_modules(path, name, known, type_checking=False)
        for name, path in paths.items()
    }


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = module_graph()
    found = {frozenset(component) for component in cycles(graph)}
    new = [sorted(c) for c in found - MODULE_CYCLES_LEFT]
    detail = [{m: sorted(graph[m] & set(c)) for m in c} for c in new]
    assert not new, f"these modules import each other (module: modules it imports): {detail}"
    broken = [sorted(c) for c in MODULE_CYCLES_LEFT - found]
    assert not broken, f"these cycles are gone: remove them from MODULE_CYCLES_LEFT: {broken}"


def test_the_module_graph_sees_deferred_imports_but_not_type_checking_ones(
    tmp_path: Path,
) -> None:
    module = tmp_path / "cadence.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "from scheduler.followups import timing\n"
        "if TYPE_CHECKING:\n"
        "    from scheduler.followups.drafting import Drafter\n"
        "else:\n"
        "    from scheduler.followups import gates\n"
        "if typing.TYPE_CHECKING:\n"
        "    import scheduler.followups.sweeper\n"
        "def later():\n"
        "    from scheduler.followups.touches import x\n"
    )
    known = frozenset(
        f"scheduler.followups.{m}"
        for m in ("cadence", "timing", "drafting", "gates", "sweeper", "touches")
    )
    name = "scheduler.followups.cadence"
    assert imported_modules(module, name, known, type_checking=False) == {
        "scheduler.followups.timing",
        "scheduler.followups.gates",
        "scheduler.followups.touches",
    }
    assert "scheduler.followups.drafting" in imported_modules(module, name, known)
    # Not a vacuous pass: the real graph has the edges the check walks.
    graph = module_graph()
    assert "scheduler.followups.templates" in graph["scheduler.followups.cadence"]
    assert "scheduler.followups.cadence" in graph["scheduler.followups.drafting"]
