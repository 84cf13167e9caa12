"""The root of every exception leadbot raises itself, and the kinds that group them.

Defined in the bottom layer (``dialogs/``) so that every package may derive from it; it imports
nothing, so importing it costs nothing (``leadbot --help`` derives its own errors from it).

``except LeadbotError`` catches what leadbot raised on purpose, never a bug of a library or a
built-in error of Python's. Each exception class in ``bot/``, ``scheduler/``, ``dialogs/`` and
``crm_sync/`` derives from it, directly or through one of the kinds below
(``tests/test_names.py`` fails otherwise). Classes that callers also catch as a built-in error
keep that base too (``class IcpError(FileFormatError, ValueError)``).
"""

from __future__ import annotations


class LeadbotError(Exception):
    """Root of leadbot's own errors."""


class ConfigError(LeadbotError):
    """What the operator configured is wrong: a setting, or a file they wrote."""


class FileFormatError(ConfigError):
    """A dialog script, cadence, ICP or prompt file that cannot be used as written."""


class InputError(LeadbotError):
    """Input from outside (a request, a webhook, an intake record) is unusable; the message
    says why and is safe to show whoever sent it."""
