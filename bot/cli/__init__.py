"""The ``leadbot`` command line, one module per command group.

:mod:`bot.cli.main` builds the Typer app from the groups (:mod:`~bot.cli.dialogs`,
:mod:`~bot.cli.reps`, :mod:`~bot.cli.scheduler`, :mod:`~bot.cli.serve`,
:mod:`~bot.cli.whatsapp`); :mod:`~bot.cli.support` and :mod:`~bot.cli.errors` are what they
share. This package imports nothing itself, so that ``bot.cli:main`` (the console script)
stays as fast as :mod:`bot.cli.main` makes it.
"""

from __future__ import annotations


def main() -> None:
    """The ``leadbot`` console script (``bot.cli:main`` in ``pyproject.toml``)."""
    from bot.cli.main import main as run

    run()
