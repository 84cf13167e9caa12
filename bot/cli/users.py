"""``leadbot users``: who may sign in to the console (add, list, deactivate, password)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.reps import _run
from bot.cli.support import console, err_console

if TYPE_CHECKING:
    from scheduler.store import Session
    from scheduler.store.models import User

app = typer.Typer(help="Console users: admins and reps who sign in to the browser console.")

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (scripts)."
    ),
]


def _password(from_stdin: bool) -> str:
    """The new password, from stdin or asked twice; a policy breach exits with 2."""
    from scheduler.errors import InvalidUserError
    from scheduler.pipeline.users import check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except InvalidUserError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    return password


def _email_or_exit(email: str) -> None:
    """Exit with 2 (one line) when ``email`` is not an email address."""
    from scheduler.errors import InvalidUserError
    from scheduler.pipeline.users import normalize_user_email

    try:
        normalize_user_email(email)
    except InvalidUserError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None


@app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's email: their sign-in name.")],
    role: Annotated[str, typer.Option(help="admin or rep.")],
    rep: Annotated[
        str | None, typer.Option(help="For a rep user: the email of the rep they are.")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a console user; a rep user is linked to an existing rep (`leadbot reps add`)."""
    from scheduler.pipeline.users import Role, create_user
    from scheduler.store.models import utcnow

    if role not in {r.value for r in Role}:
        err_console.print(f"[red]unknown role {role!r}: use admin or rep[/red]")
        raise typer.Exit(2)
    if role == Role.REP and not rep:
        err_console.print("[red]a rep user needs --rep REP_EMAIL (the rep they are)[/red]")
        raise typer.Exit(2)
    if role == Role.ADMIN and rep:
        err_console.print("[red]an admin is not linked to a rep: leave out --rep[/red]")
        raise typer.Exit(2)
    _email_or_exit(email)
    password = _password(password_stdin)

    async def work(session: Session) -> User:
        return await create_user(
            session, email=email, password=password, role=role, rep_email=rep, now=utcnow()
        )

    user = _run(work)
    console.print(f"user {user.id} added: {user.email} ({user.role})")


@app.command("list")
def users_list() -> None:
    """Show every console user, active or not (never their password hashes)."""
    from rich.table import Table

    from scheduler.pipeline.users import list_users

    async def work(session: Session) -> list[User]:
        return await list_users(session)

    table = Table("id", "email", "role", "rep", "active", "locked until", "created")
    for user in _run(work, writes=False):
        locked = user.locked_until.isoformat(timespec="seconds") if user.locked_until else ""
        table.add_row(
            str(user.id),
            user.email,
            user.role,
            str(user.rep_id) if user.rep_id is not None else "",
            "yes" if user.active else "no",
            locked,
            user.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@app.command("deactivate")
def users_deactivate(email: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Refuse a user's sign-ins from now on and end every session of theirs."""
    from scheduler.pipeline.users import deactivate_user

    _email_or_exit(email)

    async def work(session: Session) -> User:
        return await deactivate_user(session, email)

    user = _run(work)
    console.print(f"user {user.email} deactivated; their sessions are ended")


@app.command("password")
def users_password(
    email: Annotated[str, typer.Argument(metavar="EMAIL")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a user's password (and lift a lockout); every session of theirs ends."""
    from scheduler.pipeline.users import change_password
    from scheduler.store.models import utcnow

    _email_or_exit(email)
    password = _password(password_stdin)

    async def work(session: Session) -> User:
        return await change_password(session, email, password, now=utcnow())

    user = _run(work)
    console.print(f"password of {user.email} changed; their sessions are ended")
