"""The home page: the numbers a sales lead looks at each morning (issue 14, item 6)."""

from __future__ import annotations

from aiohttp import web

from bot.console.render import render

routes = web.RouteTableDef()


@routes.get("/console/")
async def today_page(request: web.Request) -> web.Response:
    """Today: placeholder until the page's figures land."""
    return render(request, "today.html", {})
