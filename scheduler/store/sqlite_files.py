"""The embedded SQLite database holds every lead's personal data: owner-only files.

:func:`restrict` runs before the engine opens the file: it creates a missing database file
empty with mode 0600 (SQLite would create it with the process's umask, typically 0644)
and takes group and other permissions away from an existing one and from its ``-wal`` and
``-shm`` files. SQLite creates those companions later with the database file's own
permissions, so they are owner-only from then on too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

MODE = 0o600
COMPANIONS = ("-wal", "-shm", "-journal")


def database_file(url: str) -> Path | None:
    """The file an SQLite URL names, or None (in-memory, ``file:`` URIs, other backends)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def restrict(path: Path) -> None:
    """Create ``path`` (mode 0600) if missing; make it and its companions owner-only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE))
    for one in (path, *(path.with_name(path.name + suffix) for suffix in COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(one.stat().st_mode) & 0o077:
                os.chmod(one, stat.S_IMODE(one.stat().st_mode) & 0o700)
