"""The ``leadbot`` command line: the entry point that reads settings once and wires things."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from bot import redact
from bot.app import create_app
from bot.chat import chat_command, dialogs_app
from bot.cli_reps import app as reps_app
from bot.cli_scheduler import cadence_app, scheduler
from bot.cli_support import (
    console,
    err_console,
    settings_or_exit,
    settings_with_secrets_or_exit,
)
from bot.cli_whatsapp import link as whatsapp_link
from bot.cli_whatsapp import sandbox_app
from bot.interpreters import build_interpreter
from bot.privacy import hash_key
from bot.redact import ACCESS_LOG_CLASS
from bot.secrets_store import secrets_path
from bot.settings import Settings, SettingsError, check_webhook_secrets
from scheduler.db import create_engine, session_factory
from scheduler.erasure import ErasureReport, erase_lead
from scheduler.errors import InvalidLeadError, NotFoundError
from scheduler.importer import ImportReport, import_csv
from scheduler.leads import list_leads
from scheduler.migrate import current_revision, head_revision, upgrade
from scheduler.models import Lead, Stage, utcnow

app = typer.Typer(help="leadbot: qualify leads on WhatsApp and keep one shared pipeline.")
db_app = typer.Typer(help="Database schema.")
leads_app = typer.Typer(help="Leads in the pipeline.")
app.add_typer(db_app, name="db")
app.add_typer(leads_app, name="leads")
app.add_typer(dialogs_app, name="dialogs")
app.add_typer(reps_app, name="reps")
app.add_typer(cadence_app, name="cadence")
app.command("scheduler")(scheduler)
app.command("link")(whatsapp_link)
app.add_typer(sandbox_app, name="sandbox")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _require_schema(settings: Settings) -> None:
    head = head_revision()
    engine = create_engine(settings.database_url)
    try:
        current = await current_revision(engine)
    finally:
        await engine.dispose()
    if current != head:
        err_console.print(
            f"[red]the database is at revision {', '.join(current) or 'none'}, "
            f"not {', '.join(head)}: "
            "run `leadbot db upgrade` first[/red]"
        )
        raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides LEADBOT_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides LEADBOT_PORT.")] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Web only; run `leadbot scheduler` apart.")
    ] = False,
) -> None:
    """Run the service. On the embedded SQLite default, migrations run first."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    redact.install()  # no email address or phone number in the logs
    settings = settings_with_secrets_or_exit()
    try:
        check_webhook_secrets(settings)
    except SettingsError as exc:
        err_console.print(f"[red]{exc}[/red]", soft_wrap=True)  # one line, never wrapped
        raise typer.Exit(2) from None
    if settings.is_sqlite:
        asyncio.run(_migrate(settings))
    else:
        asyncio.run(_require_schema(settings))
    where = secrets_path(settings)
    if where is not None:
        console.print(f"API token and secret key: {where}")
    web.run_app(
        create_app(settings, run_scheduler=not no_scheduler, freeze=True),
        host=host or settings.host,
        port=port or settings.port,
        print=lambda text: console.print(text.strip()),
        access_log_class=ACCESS_LOG_CLASS,  # link tokens, phones, verify tokens: redacted
    )


@app.command()
def chat(
    script: Annotated[str, typer.Option(help="Id of the dialog script to talk to.")] = (
        "b2b_default"
    ),
) -> None:
    """Play a prospect against a dialog script in the terminal (no server needed)."""
    settings = settings_or_exit()
    chat_command(
        script,
        settings.dialogs_dir,
        settings.icp_file,
        interpreter=build_interpreter(settings),
        calendly_url=settings.calendly_url or None,
        resource_url=settings.resource_url,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database at LEADBOT_DATABASE_URL to the newest schema."""
    settings = settings_or_exit()
    asyncio.run(_migrate(settings))
    console.print("database is up to date")


@leads_app.command("import")
def leads_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Import leads from a CSV file (header: name,email,phone,company,role,source,utm_*…)."""
    settings = settings_or_exit()
    report = asyncio.run(_import(settings, file))
    _print_report(report)
    if report.created == 0 and report.rejected > 0:
        raise typer.Exit(1)


async def _import(settings: Settings, file: Path) -> ImportReport:
    engine = create_engine(settings.database_url)
    try:
        if settings.is_sqlite:
            await upgrade(engine)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console,
        ) as progress:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            try:
                return await import_csv(
                    session_factory(engine),
                    file,
                    default_region=settings.default_region,
                    now=utcnow(),
                    on_progress=lambda n: progress.advance(task, n),
                )
            except InvalidLeadError as exc:
                err_console.print(f"[red]{exc.message}[/red]")
                raise typer.Exit(2) from None
    finally:
        await engine.dispose()


def _print_report(report: ImportReport) -> None:
    console.print(
        f"rows: {report.rows}  created: {report.created}  updated: {report.updated}  "
        f"duplicates: {report.duplicates}  rejected: {report.rejected}"
    )
    if report.conflicted:  # imported, but a contact point stays with another lead
        table = Table("line", "reason", title="contact points kept by another lead")
        for conflict in report.conflicts:
            table.add_row(str(conflict.line), conflict.reason)
        console.print(table)
        if report.conflicted > len(report.conflicts):
            console.print(f"… and {report.conflicted - len(report.conflicts)} more")
    if report.ignored_columns:
        console.print(f"ignored columns: {', '.join(report.ignored_columns)}")
    if report.rejected:
        table = Table("line", "reason", title="rejected rows")
        for rejection in report.rejections:
            table.add_row(str(rejection.line), rejection.reason)
        console.print(table)
        if report.rejected > len(report.rejections):
            console.print(f"… and {report.rejected - len(report.rejections)} more")
        for reason, count in report.reasons.most_common():
            console.print(f"  {count:>7}  {reason}")


@leads_app.command("list")
def leads_list(
    stage: Annotated[Stage | None, typer.Option(help="Only leads in this stage.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Show leads, oldest first."""
    settings = settings_or_exit()
    leads = asyncio.run(_list(settings, stage, limit))
    table = Table("id", "stage", "name", "email", "phone", "company", "source")
    for lead in leads:
        table.add_row(
            str(lead.id),
            lead.stage,
            *(value or "" for value in (lead.name, lead.email, lead.phone, lead.company)),
            lead.source or "",
        )
    console.print(table)


async def _list(settings: Settings, stage: Stage | None, limit: int) -> list[Lead]:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return await list_leads(session, stage=stage, limit=limit)
    finally:
        await engine.dispose()


@leads_app.command("erase")
def leads_erase(
    lead_id: Annotated[int, typer.Argument(help="Id of the lead to forget.", min=1)],
    actor: Annotated[str, typer.Option(help="Who asked, for the audit row.")] = "cli",
) -> None:
    """Forget a person: remove their data, keep an anonymous stage history (repeatable)."""
    settings = settings_or_exit()
    if not settings.secret_key.get_secret_value():
        # The embedded mode's generated key: the one `serve` matches erased suppressions with.
        settings = settings_with_secrets_or_exit()
    report = asyncio.run(_erase(settings, lead_id, actor))
    if report is None:
        err_console.print(f"[red]lead {lead_id} does not exist[/red]")
        raise typer.Exit(1)
    if report.already_erased:
        console.print(f"lead {lead_id} was already erased; checked again")
    else:
        console.print(f"lead {lead_id} erased")
    for table, count in report.rows.items():
        if count:
            console.print(f"  {table}: {count} row(s)")


async def _erase(settings: Settings, lead_id: int, actor: str) -> ErasureReport | None:
    engine = create_engine(settings.database_url)
    try:
        if settings.is_sqlite:
            await upgrade(engine)
        async with session_factory(engine).begin() as session:
            return await erase_lead(
                session, lead_id, actor=actor, hash_key=hash_key(settings), now=utcnow()
            )
    except NotFoundError:
        return None
    finally:
        await engine.dispose()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
