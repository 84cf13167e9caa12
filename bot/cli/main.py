"""The ``leadbot`` command line: the entry point that reads settings once and wires things.

Every command runs in :class:`~bot.cli.errors.OneLineErrors`: known failures (settings,
database, port, script/cadence/ICP files, a server that is not running) are one line on
stderr and exit code 2. ``leadbot --help`` imports only Typer and these small modules; each
command imports the libraries it uses when it runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.crm import app as crm_app
from bot.cli.dialogs import chat, dialogs_app
from bot.cli.digest import digest
from bot.cli.experiments import app as experiments_app
from bot.cli.reps import app as reps_app
from bot.cli.scheduler import cadence_app, scheduler
from bot.cli.serve import serve
from bot.cli.support import (
    OneLineErrors,
    console,
    err_console,
    fail,
    open_store,
    settings_or_exit,
    settings_with_secrets_or_exit,
    version,
)
from bot.cli.users import app as users_app
from bot.cli.whatsapp import link as whatsapp_link
from bot.cli.whatsapp import sandbox_app
from scheduler.stage_names import Stage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.settings import Settings
    from scheduler.intake.importer import ImportReport, Rejection
    from scheduler.store.erasure import ErasureReport
    from scheduler.store.models import Lead

app = typer.Typer(
    cls=OneLineErrors, help="leadbot: qualify leads on WhatsApp and keep one shared pipeline."
)
db_app = typer.Typer(help="Database schema.")
leads_app = typer.Typer(help="Leads in the pipeline.")
app.command()(serve)
app.command()(chat)
app.add_typer(db_app, name="db")
app.add_typer(leads_app, name="leads")
app.add_typer(dialogs_app, name="dialogs")
app.add_typer(reps_app, name="reps")
app.add_typer(users_app, name="users")
app.add_typer(cadence_app, name="cadence")
app.command("scheduler")(scheduler)
app.command("link")(whatsapp_link)
app.command("digest")(digest)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(crm_app, name="crm")
app.add_typer(experiments_app, name="experiments")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"leadbot {version()}")  # plain stdout: scripts read it
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print leadbot's version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """leadbot: qualify leads on WhatsApp and keep one shared pipeline."""


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database at LEADBOT_DATABASE_URL to the newest schema."""
    settings = settings_or_exit()

    async def migrate() -> None:
        async with open_store(settings, upgrade=True):
            pass

    asyncio.run(migrate())
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
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from bot.channels.events import configure_events
    from scheduler.errors import InvalidLeadError
    from scheduler.intake.importer import import_csv
    from scheduler.store.engine import session_factory
    from scheduler.store.models import utcnow

    # New leads are announced (lead.created); the service's outbox job delivers them.
    configure_events(settings)
    async with open_store(settings, upgrade=settings.is_sqlite) as engine:
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
                raise fail(f"{file}: {exc.message}") from None


def _print_report(report: ImportReport) -> None:
    console.print(
        f"rows: {report.rows}  created: {report.created}  updated: {report.updated}  "
        f"duplicates: {report.duplicates}  rejected: {report.rejected}"
    )
    if report.blank:
        console.print(f"blank rows skipped: {report.blank}")
    if report.duplicates:
        _print_rows(
            "duplicate rows (nothing new)", "lead", report.duplicate_rows, report.duplicates
        )
    if report.conflicted:  # imported, but a contact point stays with another lead
        _print_rows(
            "contact points kept by another lead", "reason", report.conflicts, report.conflicted
        )
    if report.ignored_columns:
        console.print(f"ignored columns: {', '.join(report.ignored_columns)}")
    if report.rejected:
        _print_rows("rejected rows", "reason", report.rejections, report.rejected)
        for reason, count in report.reasons.most_common():
            console.print(f"  {count:>7}  {reason}")


def _print_rows(title: str, what: str, rows: Sequence[Rejection], total: int) -> None:
    """A table of listed rows (line, ``what``), and how many more there were than listed."""
    from rich.table import Table

    table = Table("line", what, title=title)
    for row in rows:
        table.add_row(str(row.line), row.reason)
    console.print(table)
    if total > len(rows):
        console.print(f"… and {total - len(rows)} more")


@leads_app.command("list")
def leads_list(
    stage: Annotated[Stage | None, typer.Option(help="Only leads in this stage.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Show leads, oldest first."""
    from rich.table import Table

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
    from scheduler.pipeline.leads import list_leads
    from scheduler.store.engine import session_factory

    async with (
        open_store(settings, upgrade=False) as engine,
        session_factory(engine)() as session,
    ):
        return await list_leads(session, stage=stage, limit=limit)


@leads_app.command("erase")
def leads_erase(
    lead_id: Annotated[int, typer.Argument(help="Id of the lead to forget.", min=1)],
    actor: Annotated[str, typer.Option(help="Who asked, for the audit row.")] = "cli",
) -> None:
    """Forget a person: remove their data, keep an anonymous stage history (repeatable)."""
    settings = settings_or_exit()
    if not settings.secret_key.get_secret_value():
        # The embedded mode's generated key: the one `serve` matches erased suppressions with.
        settings = settings_with_secrets_or_exit(settings)
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
    from bot.http.privacy import hash_key
    from scheduler.errors import NotFoundError
    from scheduler.store.engine import session_factory
    from scheduler.store.erasure import erase_lead
    from scheduler.store.models import utcnow

    async with open_store(settings, upgrade=settings.is_sqlite) as engine:
        try:
            async with session_factory(engine).begin() as session:
                return await erase_lead(
                    session, lead_id, actor=actor, hash_key=hash_key(settings), now=utcnow()
                )
        except NotFoundError:
            return None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
