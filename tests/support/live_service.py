"""A live ``leadbot serve`` in its own process, and an event loop in a thread for the fakes.

:class:`LiveService` runs the real command (``python -m bot.cli.main serve``) on a free
local port with a fresh SQLite file in a scratch directory (the command migrates it), waits
until ``/healthz`` answers, and talks to it over plain HTTP. Nothing from the developer's
environment leaks in: ``LEADBOT_*`` and ``OPENAI_*`` variables are dropped and the process
runs in the scratch directory (no ``.env`` file there), so every setting is the test's.

:class:`BackgroundLoop` runs an asyncio loop in a daemon thread: synchronous tests (the
browser tests drive Playwright's sync API) host the async fakes there (the fake Graph API)
and run store coroutines on it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

from tests.support.fakes.tcp import closed_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class ServiceStartError(RuntimeError):
    """``leadbot serve`` exited or did not answer ``/healthz`` in time."""


class LiveService:
    """One ``leadbot serve`` process (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        api_token: str = "e2e-api-token",
        secret_key: str = "e2e-secret-key-" + "x" * 24,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.port = closed_port()
        self.api_token = api_token
        self.args = args
        self.env = {
            "LEADBOT_HOST": "127.0.0.1",
            "LEADBOT_PORT": str(self.port),
            "LEADBOT_DATABASE_URL": self.database_url,
            "LEADBOT_API_TOKEN": api_token,
            "LEADBOT_SECRET_KEY": secret_key,
            "LEADBOT_PUBLIC_URL": self.url,
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The service's base URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        """The SQLite URL of the service's store."""
        return f"sqlite+aiosqlite:///{self.directory / 'leadbot.db'}"

    @property
    def log_path(self) -> Path:
        """Where the process's stderr (its log) goes."""
        return self.directory / "serve.log"

    def log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until ``/healthz`` answers 200."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADBOT_", "OPENAI_"))}
        env.update(self.env, PYTHONPATH=str(ROOT))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli.main", "serve", *self.args],
                cwd=self.directory,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"leadbot serve exited:\n{self.log()[-3000:]}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)  # polling for readiness, not covering a race
        self.stop()
        raise ServiceStartError(f"leadbot serve did not answer /healthz within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, lower-cased headers, body)."""
        return http_call(self.port, method, path, body, headers)

    def api(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """A JSON API call with the bearer token: (status, parsed body)."""
        headers = {"Authorization": f"Bearer {self.api_token}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, _, data = self.call(method, path, body, headers)
        return status, json.loads(data) if data else None


class BackgroundLoop:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:``port`` on a fresh connection: (status, lower-cased
    headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data
