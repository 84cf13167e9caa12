"""Database URLs, read without connecting (settings validation): light to import."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dialogs.errors import ConfigError


class NotAUrl(ConfigError, ValueError):
    """The string cannot be parsed as a database URL at all."""


def driver_name(url: str) -> str:
    """The URL's ``backend+driver`` (``sqlite+aiosqlite``). Raises :class:`NotAUrl` when
    ``url`` is not a database URL at all, :class:`ValueError` for a bad part (a port that
    is not a number)."""
    try:
        return make_url(url).drivername
    except ArgumentError:
        raise NotAUrl("not a database URL") from None


@dataclass(frozen=True, slots=True)
class UrlParts:
    """Where a database URL points (never its user or password)."""

    backend: str  # "sqlite", "postgresql"
    host: str | None
    port: int | None
    database: str | None


def url_parts(url: str) -> UrlParts:
    """The parts of ``url``; raises as :func:`driver_name` does."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise NotAUrl("not a database URL") from None
    return UrlParts(parsed.get_backend_name(), parsed.host, parsed.port, parsed.database)
