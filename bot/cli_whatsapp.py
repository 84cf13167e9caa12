"""``leadbot link`` (click-to-chat links per campaign) and ``leadbot sandbox chat`` (play the
prospect against a running server's WhatsApp sandbox, through the real inbox path).

Mounted in ``bot/cli.py``::

    app.command("link")(link)
    app.add_typer(sandbox_app, name="sandbox")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import aiohttp
import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot.cli_support import settings_or_exit, settings_with_secrets_or_exit
from bot.whatsapp.attribution import DEFAULT_TEXT, click_to_chat_link, ref_code

sandbox_app = typer.Typer(help="The WhatsApp sandbox of a running server.")
SANDBOX_PATH = "/api/sandbox/whatsapp/messages"


def link(
    campaign: Annotated[str, typer.Option(help="Campaign name, e.g. 'fb-spring'.")],
    text: Annotated[str, typer.Option(help="The message prefilled for the prospect.")] = (
        DEFAULT_TEXT
    ),
    number: Annotated[
        str | None, typer.Option(help="WhatsApp number; LEADBOT_WHATSAPP_NUMBER by default.")
    ] = None,
) -> None:
    """Print a wa.me click-to-chat link whose first message carries the campaign's ref code."""
    number = number or settings_or_exit().whatsapp_number
    if not number:
        typer.secho("set LEADBOT_WHATSAPP_NUMBER or pass --number", fg="red", err=True)
        raise typer.Exit(2)
    try:
        url = click_to_chat_link(number, campaign, text)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(url)  # plain stdout: scripts capture it
    typer.secho(f"ref code: {ref_code(campaign)}", fg="bright_black", err=True)


@sandbox_app.callback()
def _group() -> None:
    """The WhatsApp sandbox (a callback keeps `chat` a subcommand)."""


@sandbox_app.command("chat")
def chat(
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8080",
    phone: Annotated[str, typer.Option(help="The prospect's phone.")] = "+15555550100",
    name: Annotated[str | None, typer.Option(help="The prospect's profile name.")] = None,
    token: Annotated[str | None, typer.Option(help="API token; from the settings.")] = None,
) -> None:
    """Play a prospect against a running server over its sandbox (type /quit to leave)."""
    if token is None:
        token = settings_with_secrets_or_exit().api_token.get_secret_value()
    asyncio.run(sandbox_chat(url, phone, token, name=name))


async def sandbox_chat(
    url: str,
    phone: str,
    token: str,
    *,
    name: str | None = None,
    read: Callable[[str], str] = input,
    console: Console | None = None,
) -> int:
    """The chat loop; returns how many replies were shown. Numbers tap the last choices."""
    out = console or Console()
    choices: list[str] = []
    shown = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=url.rstrip("/"), headers=headers) as http:
        while True:
            try:
                line = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/quit", "/exit"):
                break
            if not line:
                continue
            message: dict[str, Any] = {"from": phone, "name": name}
            if line.isdigit() and 1 <= int(line) <= len(choices):
                message["choice"] = choices[int(line) - 1]
            else:
                message["text"] = line
            async with http.post(SANDBOX_PATH, json=message) as response:
                body = await response.json()
                if response.status != 200:
                    out.print(Text(f"error {response.status}: {body}", style="red"))
                    continue
            for reply in body["replies"]:
                choices = _show(out, reply["payload"]) or choices
                shown += 1
    return shown


def _show(out: Console, payload: dict[str, Any]) -> list[str]:
    parts: list[Text] = [Text(str(payload.get("text", "")))]
    ids: list[str] = []
    options = payload.get("buttons") or payload.get("rows") or []
    for i, option in enumerate(options, 1):
        extra = f" — {option['description']}" if option.get("description") else ""
        parts.append(Text(f"  {i}. {option['title']}{extra}"))
        ids.append(option["id"])
    if payload.get("kind") == "cta_url":
        parts.append(Text(f"[{payload.get('title')}] → {payload.get('url')}", style="underline"))
    out.print(Panel(Group(*parts), title="bot", title_align="left", expand=False))
    return ids
