"""A fake OpenAI-compatible server: a real aiohttp app on 127.0.0.1, port chosen by the OS.

It implements ``POST /v1/chat/completions`` well enough for ``langchain-openai``'s
``ChatOpenAI`` (json_schema structured output included). Tests queue the replies they want —
good JSON, truncated JSON, prose, an HTTP error, a reply that never comes (the client times
out), ``finish_reason: "length"`` — and read back every request it received, to check where
the prospect's text went and which ``response_format`` was asked for.

    async with FakeOpenAI() as fake:
        fake.reply_json({...})
        llm = ChatOpenAI(base_url=fake.base_url, api_key="k", ...)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``hang`` means: never answer (until the server closes)."""

    content: str | None = None
    status: int = 200
    finish_reason: str = "stop"
    hang: bool = False
    error_body: dict[str, Any] | None = None


class FakeOpenAI:
    """Scriptable fake of the Chat Completions endpoint. Replies are served in order; when
    the queue is empty the ``default`` reply is used (a 500 unless set)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply(status=500, error_body={"error": {"message": "no reply queued"}})
        self._release = asyncio.Event()  # set on close, so hanging handlers finish
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- scripting ---------------------------------------------------------------------------

    def reply_json(self, obj: Any) -> None:
        """Answer with ``obj`` serialized as the message content."""
        self.replies.append(Reply(content=json.dumps(obj)))

    def reply_text(self, content: str, finish_reason: str = "stop") -> None:
        """Answer with raw content (prose, truncated JSON, ...)."""
        self.replies.append(Reply(content=content, finish_reason=finish_reason))

    def reply_status(self, status: int, message: str = "boom") -> None:
        """Answer with an HTTP error and an OpenAI-style error body."""
        body = {"error": {"message": message, "type": "server_error", "code": None}}
        self.replies.append(Reply(status=status, error_body=body))

    def reply_hang(self) -> None:
        """Never answer: the client's timeout has to fire."""
        self.replies.append(Reply(hang=True))

    # -- inspection --------------------------------------------------------------------------

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        """The ``messages`` of request ``index``."""
        messages: list[dict[str, Any]] = self.requests[index]["messages"]
        return messages

    # -- server ------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self.replies.popleft() if self.replies else self.default
        if reply.hang:
            await self._release.wait()
            return web.json_response({"error": {"message": "server closing"}}, status=503)
        if reply.status != 200:
            return web.json_response(reply.error_body or {}, status=reply.status)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def start(self) -> str:
        """Listen on 127.0.0.1 (OS-chosen port); returns the base URL ending in ``/v1``."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def close(self) -> None:
        """Release hanging handlers and stop the server."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
