"""CLI of follow-up timing: ``leadbot cadence check`` and ``leadbot scheduler``.

``leadbot scheduler`` runs the app's components and periodic jobs (touch sweeper, reaper,
dormant and reactivation jobs, outbox delivery) without serving HTTP; pair it with
``leadbot serve --no-scheduler`` web workers. Several scheduler processes may run against
PostgreSQL: claims use ``FOR UPDATE SKIP LOCKED`` and the outbox key keeps every touch
at most once. On SQLite run one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.support import (
    check_files,
    configure_logging,
    console,
    err_console,
    prepare_store,
    print_setup,
    settings_or_exit,
    settings_with_secrets_or_exit,
)

if TYPE_CHECKING:
    from bot.settings import Settings

cadence_app = typer.Typer(help="Follow-up cadences (LEADBOT_CADENCE_FILE).")


@cadence_app.command("check")
def cadence_check(
    file: Annotated[
        Path | None, typer.Argument(help="Cadence file; default LEADBOT_CADENCE_FILE.")
    ] = None,
) -> None:
    """Validate a cadence file and its templates; print its sequences or every problem."""
    from rich.table import Table

    from scheduler.followups.cadence import CadenceError, format_offset, load_cadence

    path = file if file is not None else settings_or_exit().cadence_file
    try:
        cadence = load_cadence(path)
    except CadenceError as exc:
        for problem in exc.problems:
            err_console.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table(
        "sequence",
        "step",
        "offset",
        "channel",
        "purpose",
        "approval",
        "template",
        title=f"{path} ({cadence.version})",
    )
    for name, sequence in cadence.sequences.items():
        for step in sequence.steps:
            table.add_row(
                name,
                step.id,
                format_offset(step.offset),
                step.channel,
                step.purpose,
                str(step.approval),
                step.template,
            )
    console.print(table)
    quiet = cadence.quiet_hours
    hours = f"{quiet.start:%H:%M}–{quiet.end:%H:%M}" if quiet.enabled else "off"
    console.print(
        f"quiet hours: {hours}; "
        f"business days: "
        f"{', '.join(cadence.business_days.days) if cadence.business_days.enabled else 'off'}"
    )
    console.print("cadence OK")


def scheduler() -> None:
    """Run only the scheduler: periodic jobs and outbox delivery, no HTTP server."""
    from bot.cli.setup_report import check_setup

    configure_logging()
    settings = settings_or_exit()
    check_setup(settings)
    check_files(settings)
    if settings.is_sqlite:
        # The embedded key `serve` uses: erased people's suppressions are matched with it.
        settings = settings_with_secrets_or_exit(settings)
    prepare_store(settings, upgrade=settings.is_sqlite)  # Postgres: `leadbot db upgrade`
    print_setup(settings, scheduler=True)
    asyncio.run(run_scheduler(settings))


async def run_scheduler(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Start the app's contexts (no listening socket) until SIGINT/SIGTERM or ``stop``."""
    from aiohttp import web

    from bot.app import create_app

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on some platforms: then ``stop`` ends it.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings, run_scheduler=True), handle_signals=False)
    await runner.setup()  # runs every cleanup context: the scheduler loop starts last
    console.print("scheduler running (no HTTP); Ctrl-C stops it after the current sweep")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # waits for the jobs in progress
