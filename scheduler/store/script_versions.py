"""Dialog script versions published from the console: append-only rows, never changed.

A version is stored once per script (UNIQUE ``(script_id, version)``): publishing a version
that exists is refused, never an overwrite, so a running conversation's version always
means the same text. Readers that keep the versions in memory (every worker's script
catalog) ask :func:`fingerprint` first and reload only when it changed. Every function runs
in the caller's transaction; none locks a row (inserts only), so the lock order is moot.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.errors import VersionTakenError
from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import ScriptVersion

_TABLE = cast(Table, ScriptVersion.__table__)
_ID = _TABLE.c.id

Fingerprint = tuple[int, int]
"""``(row count, highest id)``: changes whenever a version is stored, even when a row with
a lower id commits after a higher one (sequences hand out ids before commit)."""


async def add_version(
    session: AsyncSession,
    *,
    script_id: str,
    version: str,
    source: str,
    published_by: str,
    now: datetime,
) -> int:
    """Store a published version; its row id. :class:`VersionTakenError` when the script
    has that version already (checked by the unique index: two admins racing both ask)."""
    statement = insert_or_ignore(session, _TABLE, ["script_id", "version"], returning=(_ID,))
    row = (
        await session.execute(
            statement,
            {
                "script_id": script_id,
                "version": version,
                "source": source,
                "published_by": published_by,
                "published_at": now,
            },
        )
    ).first()
    if row is None:
        raise VersionTakenError(f"{script_id} version {version!r} is published already")
    return int(row[0])


async def list_versions(
    session: AsyncSession, script_id: str | None = None
) -> list[ScriptVersion]:
    """Every published version (of ``script_id`` only, if given), oldest first."""
    query = select(ScriptVersion).order_by(ScriptVersion.published_at, ScriptVersion.id)
    if script_id is not None:
        query = query.where(ScriptVersion.script_id == script_id)
    return list((await session.scalars(query)).all())


async def get_version(session: AsyncSession, script_id: str, version: str) -> ScriptVersion | None:
    """One published version, or None."""
    query = select(ScriptVersion).where(
        ScriptVersion.script_id == script_id, ScriptVersion.version == version
    )
    return await session.scalar(query)


async def fingerprint(session: AsyncSession) -> Fingerprint:
    """What :data:`Fingerprint` says: one cheap aggregate over the (small) table."""
    count, highest = (
        await session.execute(select(func.count(), func.coalesce(func.max(ScriptVersion.id), 0)))
    ).one()
    return int(count), int(highest)
