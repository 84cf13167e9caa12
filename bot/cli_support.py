"""What every ``leadbot`` command shares: the consoles and reading the settings once."""

from __future__ import annotations

import typer
from rich.console import Console

from bot.secrets_store import with_embedded_secrets
from bot.settings import Settings, SettingsError, load_settings

console = Console()
err_console = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with every bad variable named."""
    try:
        return load_settings()
    except SettingsError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def settings_with_secrets_or_exit() -> Settings:
    """The settings with the embedded mode's generated secrets filled in, or exit 2."""
    try:
        return with_embedded_secrets(settings_or_exit())
    except SettingsError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
