"""The small HTML pages a link opens without a login (unsubscribe, one-click approval)."""

from __future__ import annotations

import html

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:{width};margin:3rem auto;padding:0 1rem">
<h1 style="font-size:1.4rem">{title}</h1>
{body}
</body></html>
"""


def html_page(title: str, body: str, status: int = 200, *, width: str = "40rem") -> web.Response:
    """A page with ``title`` (escaped here) and ``body`` (HTML the caller escaped), never
    cached and sending no referrer (the URL carries a signed token)."""
    response = web.Response(
        text=_PAGE.format(title=html.escape(title), body=body, width=width),
        status=status,
        content_type="text/html",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
