"""The interpreter protocol every backend implements (defined with the data it returns)."""

from __future__ import annotations

from dialogs.interpretation import Intent, Interpretation, Interpreter, SlotValue

__all__ = ["Intent", "Interpretation", "Interpreter", "SlotValue"]
