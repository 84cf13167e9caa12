"""Secrets for the embedded default: generated once, kept next to the SQLite file.

So that ``leadbot serve`` works on a fresh machine with no configuration, an unset
``LEADBOT_SECRET_KEY`` or ``LEADBOT_API_TOKEN`` is generated and persisted (mode 0600,
whatever mode an existing file had) in ``.leadbot-secrets.json`` beside the database. With
Postgres, both must be configured.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from pydantic import SecretStr

from bot.settings import Settings, SettingsError

SECRETS_FILE = ".leadbot-secrets.json"


def with_embedded_secrets(settings: Settings) -> Settings:
    """Return ``settings`` with missing secrets filled from (or written to) the secrets file."""
    missing = [
        name
        for name in ("secret_key", "api_token")
        if not getattr(settings, name).get_secret_value()
    ]
    if not missing:
        return settings
    db_path = settings.sqlite_path
    if db_path is None:
        names = ", ".join(f"LEADBOT_{name.upper()}" for name in missing)
        raise SettingsError(f"{names} must be set when the database is not an SQLite file")
    path = db_path.parent / SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    changed = False
    for name in missing:
        if name not in stored:
            stored[name] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        _write_private(path, stored)
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # a file left readable by others (an older version, a copy)
    return settings.model_copy(update={name: SecretStr(stored[name]) for name in missing})


def _write_private(path: Path, stored: dict[str, str]) -> None:
    """Replace ``path`` with ``stored``, mode 0600 whatever the old file's mode was: written
    to a fresh owner-only file beside it, then renamed over it (atomic: a crash leaves the
    old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(stored, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def secrets_path(settings: Settings) -> Path | None:
    """Where embedded secrets are kept, or None when not embedded."""
    db_path = settings.sqlite_path
    return None if db_path is None else db_path.parent / SECRETS_FILE
