"""Published script versions in the store: stored once, never overwritten, cheaply watched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import VersionTakenError
from scheduler.store import script_versions
from scheduler.store.models import utcnow


async def test_a_version_is_stored_once_and_the_fingerprint_moves(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions() as db:
        assert await script_versions.fingerprint(db) == (0, 0)
    async with sessions.begin() as db:
        first = await script_versions.add_version(
            db, script_id="s", version="2", source="a", published_by="x@y", now=now
        )
        await script_versions.add_version(
            db, script_id="other", version="2", source="b", published_by="x@y", now=now
        )
        await script_versions.add_version(
            db, script_id="s", version="1", source="c", published_by="x@y", now=now
        )
    with pytest.raises(VersionTakenError) as caught:  # a second admin with the same version
        async with sessions.begin() as db:
            await script_versions.add_version(
                db,
                script_id="s",
                version="2",
                source="d",
                published_by="z@y",
                now=now + timedelta(seconds=1),
            )
    assert caught.value.status == 409
    async with sessions() as db:
        rows = await script_versions.list_versions(db, "s")
        assert [(r.version, r.source) for r in rows] == [("2", "a"), ("1", "c")]
        assert rows[0].id == first
        assert len(await script_versions.list_versions(db)) == 3
        found = await script_versions.get_version(db, "other", "2")
        assert found is not None and found.source == "b"
        assert await script_versions.get_version(db, "s", "3") is None
        count, highest = await script_versions.fingerprint(db)
    assert count == 3 and highest >= first
