"""``leadbot serve``: check everything, take the port, then start the service.

The order is the point: settings, the files the service loads and the port are checked
before anything is written or any job runs, so a second ``serve`` on a port already taken
fails in one line without having swept a single touch. The listening sockets are bound here
and handed to aiohttp (``web.run_app(sock=…)``), which otherwise binds only after every
start-up context (the scheduler's included) has run.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.errors import CliError
from bot.cli.support import (
    check_files,
    configure_logging,
    console,
    prepare_store,
    print_setup,
    settings_or_exit,
    settings_with_secrets_or_exit,
)

if TYPE_CHECKING:
    from bot.settings import Settings

BACKLOG = 128  # aiohttp's default for the sites it binds itself


def serve(
    host: Annotated[str | None, typer.Option(help="Overrides LEADBOT_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides LEADBOT_PORT.")] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Web only; run `leadbot scheduler` apart.")
    ] = False,
) -> None:
    """Run the service. On the embedded SQLite default, migrations run first."""
    from bot.cli.setup_report import check_setup

    configure_logging()
    settings = settings_or_exit()
    check_setup(settings)  # combinations the service cannot run with
    check_files(settings)
    sockets = listen(
        settings.host if host is None else host, settings.port if port is None else port
    )
    try:
        settings = settings_with_secrets_or_exit(settings)
        prepare_store(settings, upgrade=settings.is_sqlite)  # Postgres: `leadbot db upgrade`
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    _run(settings, sockets, scheduler=not no_scheduler)


def _run(settings: Settings, sockets: list[socket.socket], *, scheduler: bool) -> None:
    from aiohttp import web

    from bot.app import create_app
    from bot.redact import ACCESS_LOG_CLASS
    from bot.secrets_store import secrets_path

    print_setup(settings, scheduler=scheduler)
    where = secrets_path(settings)
    if where is not None:
        console.print(f"API token and secret key: {where}")
    web.run_app(
        create_app(settings, run_scheduler=scheduler, freeze=True),
        sock=sockets,
        print=lambda text: console.print(text.strip()),
        access_log_class=ACCESS_LOG_CLASS,  # link tokens, phones, verify tokens: redacted
    )


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening sockets for every address ``host`` resolves to, or :class:`CliError`
    saying why not (port in use, not allowed, not an address of this machine)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CliError(
            f"LEADBOT_HOST {host!r} does not resolve ({exc.strerror}): use an address such "
            "as 127.0.0.1, or 0.0.0.0 for every interface"
        ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(
            (info[0], info[1], info[2], info[3], info[4]) for info in infos
        ):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As asyncio binds: a restart may reuse a port whose old connections linger
            # in TIME_WAIT; a port someone listens on stays refused (EADDRINUSE).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise CliError(_bind_problem(exc, host, port)) from None
    return sockets


def _bind_problem(exc: OSError, host: str, port: int) -> str:
    change = "choose another with --port or LEADBOT_PORT"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another leadbot serve?): stop that "
            f"process or {change}"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (below 1024 needs privileges): {change}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: set --host or LEADBOT_HOST to one "
            "of its addresses, or 0.0.0.0"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
