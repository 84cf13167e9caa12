"""``leadbot digest --rep ID [--dry-run]``: a rep's reactivation digest, now.

``--dry-run`` prints the email the rep would get (subject and text, with the signed
links) and changes nothing. Without it the digest is queued under today's key (the rep's
local date), so it is the one digest of the day: the running service's outbox job
delivers it, and the scheduled digest finds it sent.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.cli.support import console, fail, open_store, settings_with_secrets_or_exit


def digest(
    rep: Annotated[int, typer.Option("--rep", metavar="ID", help="The rep's id.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the digest; send nothing.")
    ] = False,
) -> None:
    """Show (--dry-run) or queue a rep's daily digest of reactivation drafts."""
    from bot.http.digest import DigestLinks, build_digest, queue_digest, render
    from bot.http.followups import load_cadence_for
    from scheduler.store.engine import session_factory
    from scheduler.store.models import utcnow

    settings = settings_with_secrets_or_exit()
    if not settings.secret_key.get_secret_value():
        raise fail("LEADBOT_SECRET_KEY is needed to sign the digest's links")
    cadence = load_cadence_for(settings)
    now = utcnow()

    async def main() -> None:
        async with open_store(settings, upgrade=False) as engine:
            sessions = session_factory(engine)
            if dry_run:
                found = await build_digest(sessions, settings, cadence, rep, now=now)
                item_id = None
            else:
                found, item_id = await queue_digest(sessions, settings, cadence, rep, now=now)
        if found is None:
            raise fail(f"rep {rep} does not exist or has no email address")
        if not found.items:
            console.print(f"rep {rep}: no reactivation drafts are waiting; no digest")
            return
        email = render(found, DigestLinks.from_settings(settings), now)
        if dry_run:
            console.print(f"To: {found.rep.email}", highlight=False)
            console.print(f"Subject: {email['subject']}", highlight=False)
            console.print("", email["text"], sep="\n", highlight=False, soft_wrap=True)
        elif item_id is None:
            console.print(f"rep {rep}: today's digest ({found.local_date}) was queued already")
        else:
            console.print(
                f"rep {rep}: digest of {len(found.items)} draft(s) queued (outbox {item_id}); "
                "the running service delivers it"
            )

    asyncio.run(main())
