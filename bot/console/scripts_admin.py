"""Console page module (filled in by its own change)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
