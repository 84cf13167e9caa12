"""`leadbot link` and `leadbot sandbox chat`."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, unquote, urlsplit

from rich.console import Console
from typer.testing import CliRunner

from bot.cli.main import app
from bot.cli.whatsapp import sandbox_chat
from bot.whatsapp.attribution import attribute, campaign_of
from bot.whatsapp.envelope import parse_envelope
from tests.bot.support import API_TOKEN
from tests.bot.whatsapp.conftest import Client, Recorder, lead_by_phone, text_body


def test_link_prints_a_wa_me_link_with_the_ref_code() -> None:
    result = CliRunner().invoke(
        app, ["link", "--campaign", "FB Spring", "--number", "+1 (415) 555-0123"]
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "wa.me", "/14155550123")
    text = unquote(parse_qs(parts.query)["text"][0])
    # What the prospect sends unchanged attributes the lead to the campaign.
    first = parse_envelope(text_body("14155550123", "wamid.L", text)).messages[0]
    assert attribute(first).source == "fb-spring"
    code = text.rsplit("[ref:", 1)[1].rstrip("]")
    assert campaign_of(code) == "fb-spring"


def test_link_without_a_number_says_what_to_set() -> None:
    result = CliRunner(env={"LEADBOT_WHATSAPP_NUMBER": ""}).invoke(
        app, ["link", "--campaign", "x"]
    )
    assert result.exit_code == 2
    assert "LEADBOT_WHATSAPP_NUMBER" in result.output


async def test_sandbox_chat_plays_the_prospect(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    lines = iter(["hi", "2", "/quit"])  # "2": tap the second option of the list shown
    out = io.StringIO()
    shown = await sandbox_chat(
        str(client.make_url("/")),
        "+14155550190",
        API_TOKEN,
        name="Sam",
        read=lambda _: next(lines),
        console=Console(file=out, width=100),
    )
    assert shown == 2
    assert "Build something" in out.getvalue()
    lead = await lead_by_phone(client, "+14155550190")
    assert lead is not None and lead.name == "Sam"
