"""Running the package with ``python -m``: the same as the ``leadbot`` console script."""

from bot.cli import main

main()
