"""``leadbot experiments report``: each A/B variant's booking and qualified rates, tested
against the control with a two-proportion z-test (:mod:`scheduler.pipeline.experiments`)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.support import console, open_store, settings_or_exit

if TYPE_CHECKING:
    from bot.settings import Settings
    from scheduler.pipeline.experiments import ExperimentReport, ZTest

app = typer.Typer(help="A/B experiments of the dialog scripts.")


@app.command("report")
def report(
    script: Annotated[
        str | None, typer.Option("--script", help="Only this script's experiments.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Booking and qualified rate per variant, with the p-value against the control."""
    settings = settings_or_exit()
    reports = asyncio.run(_reports(settings, script))
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=2))  # plain: piped
        return
    if not reports:
        console.print(
            "no conversations in an experiment yet" + (f" for {script}" if script else "")
        )
        return
    for found in reports:
        _print(found)


async def _reports(settings: Settings, script_id: str | None) -> list[ExperimentReport]:
    from scheduler.pipeline.experiments import experiments_report
    from scheduler.store.engine import session_factory

    async with (
        open_store(settings, upgrade=False) as engine,
        session_factory(engine)() as session,
    ):
        return await experiments_report(session, script_id, _controls(settings))


def _controls(settings: Settings) -> dict[str, str]:
    """Each experiment's control (the first variant its script declares), from the script
    files; none when they cannot be read (the report then takes the first by name)."""
    from dialogs.experiments import controls
    from dialogs.loader import ScriptError, load_scripts

    try:
        return controls(load_scripts(settings.dialogs_dir).values())
    except ScriptError:
        return {}


def _print(found: ExperimentReport) -> None:
    from rich.table import Table

    table = Table(
        "variant",
        "assigned",
        "qualified",
        "rate",
        "booked",
        "booking rate",
        "z",
        "p-value",
        "significant",
        title=f"{found.script_id} · experiment {found.experiment}",
    )
    for arm in found.arms:
        c = arm.counts
        table.add_row(
            f"{c.variant} (control)" if arm.control else c.variant,
            str(c.assigned),
            str(c.qualified),
            f"{arm.qualified_rate:.1%}",
            str(c.booked),
            f"{arm.booking_rate:.1%}",
            *_test_cells(arm.booking_test),
        )
    console.print(table)
    if found.too_small:
        console.print(
            "[yellow]too few conversations for a reliable test (under 30 per variant or under "
            "5 bookings/non-bookings expected): keep it running[/yellow]"
        )


def _test_cells(test: ZTest | None) -> tuple[str, str, str]:
    if test is None:
        return "", "", ""
    verdict = "yes" if test.significant else "no"
    if test.too_small:
        verdict += " (too small)"
    return f"{test.z:+.2f}", f"{test.p_value:.4f}", verdict
