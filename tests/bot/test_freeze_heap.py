"""The service's process takes what startup built out of the cyclic GC's sight."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from tests.bot.support import make_settings

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


class _Cycle:
    """Garbage only the cyclic GC can free: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Nothing frozen before the test, and what it froze handed back to the GC after. The
    automatic GC is off meanwhile: only the collections the code makes itself run."""
    gc.unfreeze()
    gc.disable()
    yield
    gc.enable()
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
async def test_a_started_service_freezes_its_heap_but_not_its_garbage(
    engine: AsyncEngine, aiohttp_client: MakeClient
) -> None:
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage
    app = create_app(
        make_settings(first_touch=False), engine=engine, run_scheduler=False, freeze=True
    )

    await aiohttp_client(app)

    assert gc.get_freeze_count() > 10_000  # the modules, the app, the engine ...
    assert gone() is None  # collected before the freeze, not kept forever


@pytest.mark.usefixtures("unfrozen")
async def test_an_app_built_without_freeze_leaves_the_gc_alone(
    engine: AsyncEngine, aiohttp_client: MakeClient
) -> None:
    app = create_app(make_settings(first_touch=False), engine=engine, run_scheduler=False)

    await aiohttp_client(app)

    assert gc.get_freeze_count() == 0
