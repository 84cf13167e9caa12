"""``leadbot link`` (click-to-chat links per campaign) and ``leadbot sandbox chat`` (play the
prospect against a running server's WhatsApp sandbox, through the real inbox path).

Mounted in ``bot/cli/main.py``::

    app.command("link")(link)
    app.add_typer(sandbox_app, name="sandbox")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.errors import CliError
from bot.cli.support import settings_or_exit, settings_with_secrets_or_exit

if TYPE_CHECKING:
    from rich.console import Console

sandbox_app = typer.Typer(help="The WhatsApp sandbox of a running server.")
SANDBOX_PATH = "/api/sandbox/whatsapp/messages"


def link(
    campaign: Annotated[str, typer.Option(help="Campaign name, e.g. 'fb-spring'.")],
    text: Annotated[
        str | None,
        typer.Option(help="The message prefilled for the prospect; a short greeting if unset."),
    ] = None,
    number: Annotated[
        str | None, typer.Option(help="WhatsApp number; LEADBOT_WHATSAPP_NUMBER by default.")
    ] = None,
) -> None:
    """Print a wa.me click-to-chat link whose first message carries the campaign's ref code."""
    from bot.whatsapp.attribution import DEFAULT_TEXT, click_to_chat_link, ref_code

    number = number or settings_or_exit().whatsapp_number
    if not number:
        typer.secho("set LEADBOT_WHATSAPP_NUMBER or pass --number", fg="red", err=True)
        raise typer.Exit(2)
    try:
        url = click_to_chat_link(number, campaign, DEFAULT_TEXT if text is None else text)
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
    asyncio.run(check_server(url))  # no server: say so before "you>" (and before any token)
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
    """The chat loop; returns how many replies were shown. Numbers tap the last choices.

    :raises CliError: no server answers at ``url``, or it refuses ``token``.
    """
    import aiohttp
    from rich.console import Console
    from rich.text import Text

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
            status, body = await _request(http, url, "POST", SANDBOX_PATH, json=message)
            if status != 200:
                out.print(Text(f"error {status}: {body}", style="red"))
                continue
            for reply in body["replies"]:
                choices = _show(out, reply["payload"]) or choices
                shown += 1
    return shown


async def check_server(url: str) -> None:
    """Raise :class:`CliError` unless a leadbot server answers at ``url``."""
    import aiohttp

    async with aiohttp.ClientSession(base_url=url.rstrip("/")) as http:
        await _request(http, url, "GET", "/healthz")


async def _request(http: Any, url: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body) of one request to the server, or :class:`CliError` when no
    leadbot server answers there or it refuses the token."""
    import aiohttp

    try:
        async with http.request(method, path, **kwargs) as response:
            status = response.status
            body = await response.json(content_type=None)
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = "connection refused" if refused else exc.os_error.strerror or str(exc)
        raise CliError(
            f"no leadbot server answers at {url} ({reason}): start one with `leadbot serve`, "
            "or pass its address with --url"
        ) from None
    except (aiohttp.ClientError, ValueError) as exc:  # not JSON: another kind of server
        raise CliError(
            f"{url} does not answer like a leadbot server ({exc}): check --url"
        ) from None
    if status == 401:
        raise CliError(
            f"the server at {url} refused the API token: pass --token, or run this where its "
            "LEADBOT_API_TOKEN (or .leadbot-secrets.json) is"
        )
    return status, body


def _show(out: Console, payload: dict[str, Any]) -> list[str]:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

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
