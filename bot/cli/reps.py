"""``leadbot reps``: the sales reps who own leads and get notified (add, list, timezone,
deactivate)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot.cli.support import console, err_console, open_store, settings_or_exit

if TYPE_CHECKING:
    from bot.settings import Settings
    from scheduler.store import Session
    from scheduler.store.models import Rep

app = typer.Typer(help="Sales reps: who owns leads and gets notified.")
T = TypeVar("T")


def _run(
    work: Callable[[Session], Awaitable[T]],
    *,
    writes: bool = True,
    settings: Settings | None = None,
) -> T:
    """Run ``work`` in one transaction on the configured database; its errors exit with 1.

    A command that ``writes`` migrates the embedded SQLite file first (as ``serve`` does);
    otherwise, and on Postgres, the schema must be there already (one line, exit 2).
    """
    from scheduler.errors import StoreError
    from scheduler.store.engine import session_factory

    settings = settings or settings_or_exit()

    async def main() -> T:
        async with (
            open_store(settings, upgrade=writes and settings.is_sqlite) as engine,
            session_factory(engine).begin() as session,
        ):
            return await work(session)

    try:
        return asyncio.run(main())
    except StoreError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


@app.command("add")
def reps_add(
    name: Annotated[str, typer.Argument(help="The rep's name.")],
    email: Annotated[str | None, typer.Option(help="Where notifications are emailed.")] = None,
    whatsapp: Annotated[
        str | None, typer.Option(help="WhatsApp number for notifications (E.164).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="IANA time zone (e.g. Europe/Berlin) for the daily digest."),
    ] = None,
) -> None:
    """Add an active rep; new leads are assigned to active reps in turn."""
    from scheduler.errors import StoreError
    from scheduler.pipeline.contacts import normalize_email, normalize_phone
    from scheduler.store.models import utcnow
    from scheduler.store.reps import add_rep, check_timezone

    settings = settings_or_exit()
    if not email and not whatsapp:
        err_console.print("[red]give --email and/or --whatsapp: a rep must be reachable[/red]")
        raise typer.Exit(2)
    try:
        clean_email = normalize_email(email) if email else None
        phone = normalize_phone(whatsapp, settings.default_region) if whatsapp else None
        zone = check_timezone(timezone) if timezone else None
    except StoreError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None

    async def work(session: Session) -> Rep:
        return await add_rep(
            session, name=name, email=clean_email, whatsapp=phone, now=utcnow(), timezone=zone
        )

    rep = _run(work, settings=settings)  # read once: its warnings are printed once
    console.print(f"rep {rep.id} added: {rep.name}")


@app.command("list")
def reps_list() -> None:
    """Show every rep, active or not."""
    from rich.table import Table

    from scheduler.store.reps import list_reps

    async def work(session: Session) -> list[Rep]:
        return await list_reps(session)

    reps = _run(work, writes=False)
    # The zone column only when a rep has one (the others follow LEADBOT_DEFAULT_TIMEZONE):
    # a narrow terminal keeps the contacts readable.
    zones = any(rep.timezone for rep in reps)
    columns = ["id", "name", "email", "whatsapp", *(["zone"] if zones else [])]
    table = Table(*columns, "active", "last assigned")
    for rep in reps:
        last = rep.last_assigned_at.isoformat(timespec="seconds") if rep.last_assigned_at else ""
        zone = [rep.timezone or "(default)"] if zones else []
        table.add_row(
            str(rep.id),
            rep.name,
            rep.email or "",
            rep.whatsapp or "",
            *zone,
            "yes" if rep.active else "no",
            last,
        )
    console.print(table)


@app.command("timezone")
def reps_timezone(
    rep_id: Annotated[int, typer.Argument(metavar="ID")],
    timezone: Annotated[
        str,
        typer.Argument(help="IANA name (e.g. America/New_York), or 'default' to unset."),
    ],
) -> None:
    """Set the time zone a rep's daily digest follows (LEADBOT_DIGEST_HOUR local time)."""
    from scheduler.errors import StoreError
    from scheduler.store.reps import check_timezone, set_timezone

    zone = None if timezone.strip().lower() == "default" else timezone.strip()
    try:
        if zone is not None:
            check_timezone(zone)  # a typo exits 2 before the database is opened
    except StoreError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None

    async def work(session: Session) -> Rep:
        return await set_timezone(session, rep_id, zone)

    rep = _run(work)
    console.print(f"rep {rep.id} ({rep.name}) time zone: {rep.timezone or '(default)'}")


@app.command("deactivate")
def reps_deactivate(rep_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Stop assigning leads to a rep (their leads move to active reps when next notified)."""
    from scheduler.store.reps import deactivate_rep

    async def work(session: Session) -> Rep:
        return await deactivate_rep(session, rep_id)

    rep = _run(work)
    console.print(f"rep {rep.id} ({rep.name}) deactivated")
