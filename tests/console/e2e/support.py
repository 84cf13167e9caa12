"""What the browser tests do again and again: sign in, seed leads through the API, play a
prospect on WhatsApp, and save screenshots for the README.

Screenshots: with ``LEADBOT_SCREENSHOTS=docs`` (a folder, relative to the repository root)
:func:`screenshot` saves ``docs/console-<name>.png`` (1280×800, what the README shows);
without it, it does nothing. Regenerate them with::

    LEADBOT_SCREENSHOTS=docs .venv/bin/pytest tests/console/e2e
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Page

from bot.whatsapp.signature import HEADER, sign
from tests.bot.whatsapp.conftest import APP_SECRET, text_body
from tests.console.support import PASSWORD
from tests.support.fakes.graph_api import FakeGraphAPI
from tests.support.live_service import ROOT, BackgroundLoop, LiveService

T = TypeVar("T")
LEADS = json.loads((ROOT / "tests" / "data" / "first_touch" / "leads.json").read_text())


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form (the page lands where the console sends it)."""
    page.goto("/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page: Page, name: str) -> Path | None:
    """Save the page as ``console-<name>.png`` in ``LEADBOT_SCREENSHOTS`` (if set)."""
    folder = os.environ.get("LEADBOT_SCREENSHOTS")
    if not folder:
        return None
    path = ROOT / folder / f"console-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path)
    return path


def wait_until(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something (the service works in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or check}")
        time.sleep(0.1)  # polling for a condition, not covering a race


def add_lead(service: LiveService, body: dict[str, Any]) -> int:
    """A lead through ``POST /api/leads`` (the first touch starts as for any form lead);
    the same contact again is the same lead."""
    status, answer = service.api("POST", "/api/leads", body)
    assert status in (200, 201), answer
    return int(answer["lead"]["id"])


def held_first_reply(service: LiveService, **contact: str) -> tuple[int, dict[str, Any]]:
    """A hot lead (Marta Keller of Alpenbau Gruppe, unless ``contact`` says otherwise: a new
    ``email`` and ``name`` make another lead) whose first reply the service drafted and holds
    for approval: ``(lead id, touch)``."""
    body = {**LEADS["hot"], **contact}
    if contact:
        body.pop("phone")  # the phone would identify Marta's lead
    lead_id = add_lead(service, body)

    def held() -> dict[str, Any] | None:
        status, answer = service.api(
            "GET", f"/api/touches?status=awaiting_approval&lead_id={lead_id}"
        )
        assert status == 200, answer
        return answer["touches"][0] if answer["touches"] else None

    return lead_id, wait_until(held, what="the hot lead's first reply to be held")


def touch(service: LiveService, lead_id: int, touch_id: int) -> dict[str, Any]:
    """One of the lead's touches as the API shows it."""
    status, answer = service.api("GET", f"/api/touches?lead_id={lead_id}")
    assert status == 200, answer
    found: list[dict[str, Any]] = [t for t in answer["touches"] if t["id"] == touch_id]
    assert len(found) == 1, answer
    return found[0]


class Prospect:
    """Someone writing to the team's WhatsApp number: signed webhooks to the service, and
    what the fake Graph API received for them."""

    def __init__(
        self, service: LiveService, graph: FakeGraphAPI, background: BackgroundLoop, wa_id: str
    ) -> None:
        self.service, self.graph, self.background = service, graph, background
        self.wa_id, self.sent = wa_id, 0

    @property
    def phone(self) -> str:
        """The prospect's number as leads store it (E.164)."""
        return "+" + self.wa_id

    def says(self, text: str) -> None:
        """A text message from the prospect, as Meta delivers it."""
        self.sent += 1
        body = text_body(
            self.wa_id, f"wamid.E2E.{self.wa_id}.{self.sent}", text, ts=int(time.time())
        )
        status, _, answer = self.service.call(
            "POST",
            "/webhooks/whatsapp",
            body,
            {"Content-Type": "application/json", HEADER: sign(APP_SECRET, body)},
        )
        assert status == 200, answer

    def received(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the prospect got ``count`` messages; all of them, oldest first."""
        return self.background.run(self.graph.wait_sent_to(self.wa_id, count, timeout))


def text_of(message: dict[str, Any]) -> str:
    """The words of a message the fake Graph API accepted (text or interactive)."""
    if message["type"] == "text":
        return str(message["text"]["body"])
    if message["type"] == "interactive":
        return str(message["interactive"]["body"]["text"])
    return json.dumps(message)
