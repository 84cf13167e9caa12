"""Known failures of ``leadbot`` commands as one line that says what is wrong and what to do.

:func:`explain` is the one place that recognises them: a bad setting, an unreachable or
unmigrated database, a port in use, an invalid dialog/cadence/ICP file, a server that is not
running (:class:`CliError`, raised by the commands' own checks). Every command runs inside
:class:`bot.cli.support.OneLineErrors`, which prints that line and exits with code 2; an
exception it does not recognise is a bug and keeps its traceback.

This module is imported by ``leadbot --help``: it imports nothing heavy. Exception classes
of other packages are looked up in ``sys.modules`` only, since an exception of a class whose
module was never imported cannot have been raised.
"""

from __future__ import annotations

import errno
import socket
import sys

from dialogs.errors import LeadbotError


class CliError(LeadbotError):
    """A known failure: ``str(error)`` is the one line to print (what is wrong, what to do)."""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def _class(module: str, name: str) -> type[BaseException] | None:
    """The exception class ``module.name`` if that module has been imported, else None."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def _is(exc: BaseException, module: str, name: str) -> bool:
    cls = _class(module, name)
    return cls is not None and isinstance(exc, cls)


def explain(exc: BaseException, *, database_url: str | None = None) -> str | None:
    """The one line for a known failure, or None when ``exc`` is not one (a bug)."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return explain(exc.exceptions[0], database_url=database_url)
    if isinstance(exc, CliError) or _is(exc, "bot.settings", "SettingsError"):
        return str(exc)
    for module, name, check in FILE_ERRORS:
        if _is(exc, module, name):
            return file_problem(exc, check)
    if _is(exc, "dialogs.icp", "IcpError") or _is(exc, "dialogs.prompts", "PromptError"):
        return str(exc)
    if _is(exc, "dialogs.llm_model", "ModelConfigError"):
        return str(exc)
    if _is(exc, "alembic.util.exc", "CommandError"):
        return f"database migration failed: {exc}"
    return database_problem(exc, database_url, connecting=False)


FILE_ERRORS = (
    ("scheduler.followups.cadence", "CadenceError", "leadbot cadence check"),
    ("dialogs.loader", "ScriptError", "leadbot dialogs check"),
)


def file_problem(exc: BaseException, check: str) -> str:
    """The first ``file:line: reason`` of a script or cadence error, and how to see them all."""
    problems = [str(p) for p in getattr(exc, "problems", [])] or [str(exc)]
    more = len(problems) - 1
    first = one_line(problems[0])
    if more:
        return f"{first} (and {more} more problem(s): `{check}` lists them)"
    return first


# PostgreSQL error codes (SQLSTATE) of a wrong URL or an unmigrated database.
_NO_DATABASE = "3D000"
_BAD_LOGIN = ("28000", "28P01")
_NO_TABLE = "42P01"
_NOT_READY = ("57P03", "53300")  # starting up / too many connections


def database_problem(
    exc: BaseException, database_url: str | None, *, connecting: bool = True
) -> str | None:
    """The one line for a database failure, or None when ``exc`` is not one.

    ``connecting`` says ``exc`` was raised while opening the database, so a bare ``OSError``
    (refused, unknown host, timeout) is the database's; elsewhere it could be anything's.
    """
    where = database_location(database_url)
    server = database_location(database_url, server_only=True)
    chain = _chain(exc)
    sqlstate = next((s for s in (getattr(e, "sqlstate", None) for e in chain) if s), None)
    text = one_line(str(chain[-1]))
    fix = "fix LEADBOT_DATABASE_URL"
    if sqlstate == _NO_DATABASE:
        return f"{text} on the PostgreSQL server {server}: create it (createdb) or {fix}"
    if sqlstate in _BAD_LOGIN:
        return f"the PostgreSQL server {server} refused the login: {text}; {fix} (user, password)"
    if sqlstate in _NOT_READY:
        return f"the PostgreSQL server {server} does not accept connections now: {text}"
    schema_hint = "the database schema is not migrated: run `leadbot db upgrade`"
    if sqlstate == _NO_TABLE:
        return f"{schema_hint} ({text})"
    for error in chain:
        if _is(error, "sqlite3", "OperationalError"):
            message = str(error)
            if message.startswith("no such table"):
                return f"{schema_hint} ({message})"
            if "unable to open database file" in message:
                return (
                    f"cannot open the SQLite database {where}: does its folder exist and "
                    "is it writable?"
                )
    if not connecting:
        return None
    for error in chain:
        if isinstance(error, socket.gaierror):
            return f"the database host of {server} does not resolve ({error.strerror}): {fix}"
        if isinstance(error, ConnectionRefusedError):
            return (
                f"nothing answers at {server} (connection refused): is PostgreSQL running "
                f"there? or {fix}"
            )
        if isinstance(error, TimeoutError):
            return f"the database at {server} did not answer in time: is it reachable? or {fix}"
        if isinstance(error, OSError):
            reason = error.strerror or errno.errorcode.get(error.errno or 0, "") or str(error)
            return f"cannot reach the database at {server} ({reason}): {fix}"
    if sqlstate is not None or _is(exc, "sqlalchemy.exc", "DBAPIError"):
        return f"the database at {where} failed: {text}"
    return None


def _chain(exc: BaseException) -> list[BaseException]:  # never empty
    """``exc`` and its causes (``raise … from``, SQLAlchemy's ``orig``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is s for s in seen):
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )
    return seen


def database_location(database_url: str | None, *, server_only: bool = False) -> str:
    """host:port/database of a URL (host:port with ``server_only``), never its user or
    password; the file of an SQLite URL."""
    if not database_url:
        return "LEADBOT_DATABASE_URL"
    from scheduler.store.urls import NotAUrl, url_parts

    try:
        url = url_parts(database_url)
    except NotAUrl:
        return "LEADBOT_DATABASE_URL"
    if url.backend == "sqlite":
        return url.database or ":memory:"
    server = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"{server}/{url.database}" if url.database and not server_only else server
