"""Response headers every answer of the service carries (``app.on_response_prepare``).

- ``Server: leadbot``: aiohttp would announce ``Python/3.x aiohttp/3.y.z``, a free hint of
  which known vulnerabilities to try.
- ``X-Content-Type-Options: nosniff`` on everything.
- HTML pages (the unsubscribe and approval pages) get a Content-Security-Policy that allows
  nothing but their own inline styles and forms posting back to this origin, may not be
  framed (``frame-ancestors 'none'``: no clickjacking of the one-click buttons), and send
  no Referer (their URLs carry signed tokens).
- The console's pages (``/console/…``) get a policy allowing only this origin's vendored
  scripts and styles (no inline script: an injected ``<script>`` does not run), images
  from this origin (QR codes, charts) and requests back to it (htmx, the live streams).
"""

from __future__ import annotations

from aiohttp import web, web_response

SERVER = "leadbot"
# A request the HTTP parser refuses (a malformed request line, a header too long) is answered
# before any app signal runs, with aiohttp's default Server value: make that ours too.
setattr(web_response, "SERVER_SOFTWARE", SERVER)  # noqa: B010 (not a public attribute)
HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set the headers above on ``response`` just before it is sent."""
    headers = response.headers
    headers["Server"] = SERVER
    headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html":
        console = request.path.startswith("/console/")
        headers["Content-Security-Policy"] = CONSOLE_POLICY if console else HTML_POLICY
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "same-origin" if console else "no-referrer"
