"""What every ``leadbot`` command shares: the consoles, reading the settings once, opening
the database, the service's files and its logging.

Imported by ``leadbot --help``: heavy libraries (SQLAlchemy, aiohttp, LangChain, the loaders)
are imported inside the functions that use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from bot.cli.errors import CliError, database_location, database_problem, explain, one_line

if TYPE_CHECKING:
    from bot.settings import Settings
    from scheduler.store import Engine

console = Console()
err_console = Console(stderr=True)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
EXIT_CONFIG = 2  # configuration errors exit as the command line's usage errors do


class OneLineErrors(TyperGroup):
    """The root command group: a known failure of any command is one line, exit 2."""

    def invoke(self, ctx: Any) -> Any:  # click's Context, which Typer vendors privately
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exits, Ctrl-C and usage errors: Typer reports them itself
        except Exception as exc:
            message = explain(exc, database_url=_configured_database_url())
            if message is None:
                raise  # not a known failure: a bug, and its traceback is what helps
            raise fail(message) from None


def _configured_database_url() -> str | None:
    """LEADBOT_DATABASE_URL as the command read it (to name the database in a message)."""
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings().database_url
    except SettingsError:
        return None


def fail(message: str) -> typer.Exit:
    """Print ``message`` as the one error line; return the exit (code 2) to raise."""
    err_console.print(Text(one_line(message), style="red"), soft_wrap=True)
    return typer.Exit(EXIT_CONFIG)


def version() -> str:
    """The installed leadbot's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("leadbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def warn(message: str) -> None:
    """One yellow ``warning:`` line on stderr (never wrapped, no markup interpreted)."""
    err_console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with every bad variable named on one line; warns about
    ``LEADBOT_*`` names (environment or ``.env``) that are no setting."""
    from bot.settings import SettingsError, load_settings

    for message in _unknown_variables():  # first: a misspelt name may be why a value is bad
        warn(message)
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def _unknown_variables() -> list[str]:
    import os

    from dotenv import dotenv_values

    from bot.cli.setup_report import unknown_variables

    sources: dict[str, list[str]] = {"environment": list(os.environ)}
    if Path(".env").is_file():  # where pydantic-settings reads it: the working directory
        sources[".env"] = [name for name in dotenv_values(".env") if name]
    return unknown_variables(sources)


def settings_with_secrets_or_exit(settings: Settings | None = None) -> Settings:
    """The settings with the embedded mode's generated secrets filled in, or exit 2."""
    from bot.secrets_store import with_embedded_secrets
    from bot.settings import SettingsError

    try:
        return with_embedded_secrets(settings or settings_or_exit())
    except SettingsError as exc:
        raise fail(str(exc)) from None


@contextlib.asynccontextmanager
async def open_store(settings: Settings, *, upgrade: bool) -> AsyncIterator[Engine]:
    """An engine on the configured database, checked before any work starts.

    ``upgrade`` brings the schema to the newest revision (``db upgrade``; commands that
    write to the embedded SQLite file); otherwise the schema must already be there. Any
    failure to connect or a schema behind the code is a :class:`CliError` that names the
    database (never its password) and what to do.
    """
    from scheduler.store.engine import create_engine
    from scheduler.store.migrate import upgrade as upgrade_schema

    url = settings.database_url
    where = database_location(url)
    path = settings.sqlite_path
    if not upgrade and path is not None and not path.exists():
        # Opening it would create an empty file: say where we looked instead.
        raise CliError(
            f"there is no database at {path}: run `leadbot db upgrade` (or `leadbot serve`) "
            "first, or set LEADBOT_DATABASE_URL to yours"
        )
    engine = create_engine(url)
    try:
        try:  # only the check: what fails in the caller's block is the caller's
            if upgrade:
                await upgrade_schema(engine)
            else:
                await _require_newest_schema(engine, where)
        except CliError:
            raise
        except Exception as exc:
            message = database_problem(exc, url)
            if message is None:
                raise
            raise CliError(message) from exc
        yield engine
    finally:
        await engine.dispose()


async def _require_newest_schema(engine: Engine, where: str) -> None:
    from scheduler.store.migrate import current_revision, head_revision

    current, head = await current_revision(engine), head_revision()
    if not current:
        raise CliError(f"the database {where} has no leadbot schema: run `leadbot db upgrade`")
    if current != head:
        raise CliError(
            f"the database {where} is at schema revision {', '.join(current)}, this leadbot "
            f"needs {', '.join(head)}: run `leadbot db upgrade`"
        )


def prepare_store(settings: Settings, *, upgrade: bool) -> None:
    """Check (and with ``upgrade``, migrate) the database before a long-running command."""

    async def probe() -> None:
        async with open_store(settings, upgrade=upgrade):
            pass

    asyncio.run(probe())


def check_scripts(settings: Settings) -> dict[str, object]:
    """Load the dialog scripts (their prompts must exist) and the ICP the settings name;
    raise their loaders' errors (``file:line: reason``). Returns the scripts by id."""
    from dialogs.icp import load_icp
    from dialogs.loader import load_scripts

    scripts = load_scripts(settings.dialogs_dir, prompts_dir=settings.prompts_dir)
    load_icp(settings.icp_file)
    return dict(scripts)


def check_files(settings: Settings) -> None:
    """Every file the service loads at start — dialog scripts, ICP, cadence — and the
    script new WhatsApp conversations start with; called before anything starts, so a
    bad edit is one line (``file:line: reason``) instead of a failed start-up."""
    from scheduler.followups.cadence import load_cadence

    scripts = check_scripts(settings)
    if settings.whatsapp_script not in scripts:
        raise CliError(
            f"LEADBOT_WHATSAPP_SCRIPT={settings.whatsapp_script!r} is not a script in "
            f"{settings.dialogs_dir} (there: {', '.join(sorted(scripts))})"
        )
    load_cadence(settings.cadence_file, default_timezone=settings.default_timezone)


class _ChatterAtDebug(logging.Filter):
    """Libraries' routine INFO lines become DEBUG records (hidden at the INFO level).

    APScheduler logs each run of each job ("Running job …", "… executed successfully") and
    each job it adds: 86% of an idle service's log. Alembic logs its plugins and dialect at
    every start; its "Running upgrade …" lines say something and stay. Warnings and errors
    of both stay as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_chatter(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _is_chatter(record: logging.LogRecord) -> bool:
    if record.name.startswith(("apscheduler.", "alembic.runtime.plugins")):
        return True
    return record.name == "alembic.runtime.migration" and not str(record.msg).startswith(
        "Running "
    )


def configure_logging(level: int = logging.INFO) -> None:
    """The service's logging: one line a record, libraries' routine lines at DEBUG, and
    no email address or phone number in any line."""
    from bot import redact

    logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ChatterAtDebug())
    redact.install()


def print_setup(settings: Settings, *, scheduler: bool) -> None:
    """The active setup, one line a piece, then a warning per half-configured piece."""
    from bot.cli.setup_report import setup_summary, setup_warnings

    rows = [*setup_summary(settings), ("scheduler", "on" if scheduler else "off")]
    width = max(len(name) for name, _ in rows)
    console.print(Text(f"leadbot {version()}"))
    for name, value in rows:
        console.print(Text(f"  {name:<{width}}  {value}"), soft_wrap=True)
    for message in setup_warnings(settings):
        warn(message)
