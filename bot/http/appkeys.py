"""Typed keys of the objects the app factory puts on the aiohttp application."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from bot.http.metrics import Metrics
from bot.settings import Settings
from scheduler.delivery.outbox import Channel, Dispatcher
from scheduler.loop import PeriodicJob
from scheduler.store import Engine, Sessions

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
SESSIONS = web.AppKey("sessions", Sessions)
METRICS = web.AppKey("metrics", Metrics)
CHANNELS = web.AppKey("channels", Mapping[str, Channel])
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
# Periodic jobs the app's scheduler loop runs; components append theirs while the app is built.
JOBS = web.AppKey("jobs", list[PeriodicJob])
# Called with the id of every lead POST /api/leads creates (not for duplicates); listeners
# must return at once (hand slow work to a background task).
ON_LEAD_CREATED = web.AppKey("on_lead_created", list[Callable[[int], None]])
