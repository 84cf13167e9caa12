"""``leadbot dialogs check`` and ``leadbot chat``: tune dialog scripts from the terminal.

``check`` validates every script file and prints each problem as ``file:line: reason``;
``chat`` plays the prospect against a script (the loop is :func:`bot.cli.chat.chat_command`,
imported when the command runs: the dialog engine and the interpreters are not needed for
``leadbot --help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.support import check_scripts, settings_or_exit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIALOGS_DIR = ROOT / "dialogs" / "scripts"
DEFAULT_ICP_FILE = ROOT / "dialogs" / "icp" / "default.yaml"
DEFAULT_PROMPTS_DIR = ROOT / "prompts"

dialogs_app = typer.Typer(help="Dialog scripts: validate them, talk to them.")


@dialogs_app.callback()
def _group() -> None:
    """Dialog scripts (a callback keeps `check` a subcommand even while it is the only one)."""


@dialogs_app.command("check")
def check(
    dir: Annotated[Path, typer.Argument(help="Folder of *.yaml scripts.")] = DEFAULT_DIALOGS_DIR,
    prompts: Annotated[
        Path, typer.Option(help="Prompt folder each script's `prompt` must name a file in.")
    ] = DEFAULT_PROMPTS_DIR,
    icp: Annotated[
        Path, typer.Option(help="ICP file whose slots and options must exist.")
    ] = DEFAULT_ICP_FILE,
) -> None:
    """Validate every script in DIR; print each problem as file:line: reason."""
    from dialogs.icp import IcpError, load_icp
    from dialogs.loader import check_dir

    # Plain echo, not Rich: a wrapped "file:line:" is no longer clickable or greppable.
    try:
        profile = load_icp(icp)
    except IcpError as exc:
        typer.echo(str(exc))
        raise typer.Exit(1) from None
    problems = check_dir(dir, prompts, icp=profile)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.secho(f"{len(problems)} problem(s)", fg="red")
        raise typer.Exit(1)
    count = sum(1 for p in dir.iterdir() if p.suffix in (".yaml", ".yml"))
    typer.secho(f"{count} scripts OK", fg="green")


def chat(
    script: Annotated[str, typer.Option(help="Id of the dialog script to talk to.")] = (
        "b2b_default"
    ),
    variant: Annotated[
        str | None, typer.Option(help="Play this A/B variant of the script's experiment.")
    ] = None,
) -> None:
    """Play a prospect against a dialog script in the terminal (no server needed)."""
    from bot.cli.chat import chat_command
    from bot.interpreters import build_interpreter

    settings = settings_or_exit()
    check_scripts(settings)  # a broken script or ICP: one line, exit 2
    chat_command(
        script,
        settings.dialogs_dir,
        settings.icp_file,
        interpreter=build_interpreter(settings),
        calendly_url=settings.calendly_url or None,
        resource_url=settings.resource_url,
        variant=variant,
    )
