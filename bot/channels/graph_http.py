"""The HTTP client we hand pywa: an ``httpx.AsyncClient`` whose requests travel on aiohttp.

The seam of this fast path: the only code that stands in for httpx under pywa, and
:func:`graph_client` is what the WhatsApp channel asks for a client.

pywa needs an httpx client, and builds every Graph API call with ``client.request(method,
url, json=…)``. Through httpx and httpcore such a call costs several times the CPU of the
same POST through aiohttp, which the service already runs on (figures in
``bench/README.md``: ``python -m bench.bench_fast_paths graph``). So
:meth:`GraphHttpClient.request` sends plain JSON calls with aiohttp and answers with an
``httpx.Response``; anything else pywa might do (file uploads, streamed downloads) keeps
httpx's own path. Where httpx's or aiohttp's interface is not the one this was written
against (:func:`mismatch`), :func:`graph_client` hands pywa a plain ``httpx.AsyncClient``
instead, with a warning. That pywa sends every Graph call through ``request`` is pywa's
internal affair: ``tests/bot/channels/test_graph_http.py`` fails if its calls stop taking
this path.

Failures are mapped to httpx's exceptions by what they tell about the request, which is
what the channel decides on: a connection that could not be made is ``ConnectError`` /
``ConnectTimeout`` (nothing was sent); a timeout or a dropped connection after that is
``ReadTimeout`` / ``RemoteProtocolError`` (the request may have arrived).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

_PLAIN = frozenset({"json", "params", "headers"})
# Left to aiohttp: it sets its own (and decodes only the encodings it announces).
_TRANSPORT_HEADERS = frozenset({"accept-encoding", "connection", "host", "content-length"})
# What of aiohttp the error mapping names.
_AIOHTTP_ERRORS = ("ClientConnectorError", "ConnectionTimeoutError", "ClientError")

log = logging.getLogger("leadbot.whatsapp.send")


def mismatch() -> str | None:
    """Why :class:`GraphHttpClient` cannot stand in for httpx here, or None when it can."""
    try:
        accepted = inspect.signature(httpx.AsyncClient.request).parameters
        response = inspect.signature(httpx.Response).parameters
    except (TypeError, ValueError) as exc:
        return f"httpx's AsyncClient.request or Response cannot be inspected: {exc}"
    missing = [
        f"AsyncClient.request({name}=)"
        for name in ("method", "url", *sorted(_PLAIN))
        if name not in accepted
    ]
    missing += [
        f"Response({name}=)" for name in ("headers", "content", "request") if name not in response
    ]
    missing += [f"aiohttp.{name}" for name in _AIOHTTP_ERRORS if not hasattr(aiohttp, name)]
    if missing:
        return (
            f"httpx {httpx.__version__} / aiohttp {aiohttp.__version__}: no {', '.join(missing)}"
        )
    return None


@functools.cache
def available() -> bool:
    """True when pywa's calls can travel on aiohttp (checked once; a warning when not)."""
    reason = mismatch()
    if reason is not None:
        log.warning(
            "WhatsApp sends go through httpx's own transport (more CPU a send): %s", reason
        )
        return False
    return True


def graph_client(*, timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    """The client for pywa: a :class:`GraphHttpClient` where :func:`available`, else httpx's
    own, both with ``timeout`` for an answer and ``connect_timeout`` to connect."""
    if available():
        return GraphHttpClient(timeout=timeout, connect_timeout=connect_timeout)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect_timeout))


class GraphHttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` for pywa, sending JSON requests through one aiohttp session."""

    def __init__(self, *, timeout: float, connect_timeout: float) -> None:
        super().__init__(timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self._aiohttp_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=timeout
        )
        self._aiohttp: aiohttp.ClientSession | None = None

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """Send ``method url`` (relative to ``base_url``); see the module docstring."""
        if not set(kwargs) <= _PLAIN:
            return await super().request(method, url, **kwargs)
        target = self._absolute(url)
        headers = {k: v for k, v in self.headers.items() if k not in _TRANSPORT_HEADERS}
        headers.update(kwargs.get("headers") or {})
        data = None
        if kwargs.get("json") is not None:
            data = json.dumps(kwargs["json"]).encode()
            headers["Content-Type"] = "application/json"
        session = self._session()
        try:
            async with session.request(
                method,
                target,
                params=_params(kwargs.get("params")),
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                status, answer_headers = answer.status, list(answer.headers.items())
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS: never sent
            raise httpx.ConnectError(str(exc)) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except TimeoutError as exc:  # the request had left
            raise httpx.ReadTimeout(str(exc) or "timed out waiting for the answer") from exc
        except aiohttp.ClientError as exc:  # dropped, reset, a broken answer: it may have arrived
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        return httpx.Response(
            status,
            headers=answer_headers,
            content=content,
            request=httpx.Request(method, target),
        )

    def _absolute(self, url: httpx.URL | str) -> str:
        """``url`` under ``base_url`` (pywa passes paths like ``/<phone id>/messages``)."""
        text = str(url)
        if "://" in text:
            return text
        return f"{str(self.base_url).rstrip('/')}/{text.lstrip('/')}"

    def _session(self) -> aiohttp.ClientSession:
        if self._aiohttp is None or self._aiohttp.closed:
            self._aiohttp = aiohttp.ClientSession(timeout=self._aiohttp_timeout)
        return self._aiohttp

    async def aclose(self) -> None:
        """Close both sessions."""
        if self._aiohttp is not None:
            await self._aiohttp.close()
        await super().aclose()


def _params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}
