"""The rep's daily reactivation digest: one email per rep per local day, with signed links.

:func:`send_due_digests` is the periodic job's body: for every active rep with an email whose
``LEADBOT_DIGEST_HOUR`` has come today in their time zone (``reps.timezone``, else
``LEADBOT_DEFAULT_TIMEZONE``), it lists the reactivation drafts waiting on the rep's leads
(:func:`scheduler.followups.digest.collect`) and enqueues one email under the key
``digest:rep:<id>:<local date>``, so running the job every few minutes, or in several
processes, still sends one. A rep with nothing waiting gets no email.

Each draft carries three links: approve and skip (signed, purposes ``digest_approve`` /
``digest_skip``, expiring after ``LEADBOT_DIGEST_LINK_HOURS``; served by
:mod:`bot.http.digest_links`) and edit (the console's approval queue, focused on the draft).
:func:`build_digest` is the same digest for ``leadbot digest --rep ID --dry-run``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.http.signing import Signer
from bot.settings import Settings
from scheduler.followups.cadence import Cadence
from scheduler.followups.digest import (
    Digest,
    collect,
    digest_key,
    due_date,
    reactivation_sequences,
    rep_zone,
)
from scheduler.store import Sessions
from scheduler.store.outbox import enqueue
from scheduler.store.reactivation import digest_reps, key_taken

APPROVE = "digest_approve"
SKIP = "digest_skip"
QUEUE_PATH = "/console/approvals"


@dataclass(frozen=True, slots=True)
class DigestLinks:
    """Builds a draft's approve, skip and edit links."""

    signer: Signer
    public_url: str
    valid_for: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> DigestLinks:
        """From ``LEADBOT_SECRET_KEY``, ``LEADBOT_PUBLIC_URL``, ``LEADBOT_DIGEST_LINK_HOURS``."""
        return cls(
            Signer(settings.secret_key),
            settings.public_url.rstrip("/"),
            timedelta(hours=settings.digest_link_hours),
        )

    def token(self, purpose: str, touch_id: int, now: datetime) -> str:
        """A signed token for ``touch_id`` that expires ``valid_for`` after ``now``."""
        expires = int((now + self.valid_for).timestamp())
        return self.signer.sign(purpose, {"touch": touch_id, "exp": expires})

    def approve(self, touch_id: int, now: datetime) -> str:
        """The one-click approve link."""
        return f"{self.public_url}/digest/approve/{self.token(APPROVE, touch_id, now)}"

    def skip(self, touch_id: int, now: datetime) -> str:
        """The one-click skip link."""
        return f"{self.public_url}/digest/skip/{self.token(SKIP, touch_id, now)}"

    def edit(self, touch_id: int) -> str:
        """The console's approval queue, focused on the draft."""
        return f"{self.public_url}{QUEUE_PATH}?touch={touch_id}#draft-{touch_id}"


def render(digest: Digest, links: DigestLinks, now: datetime) -> dict[str, Any]:
    """The email payload (subject, text, html) of ``digest``."""
    n = len(digest.items)
    day = digest.local_date.strftime("%a %d %b")
    subject = f"[leadbot] {n} reactivation draft{'s' if n != 1 else ''} to approve ({day})"
    text = [f"Hi {digest.rep.name}, these dormant leads have a draft waiting for you:", ""]
    body = [
        f"<p>Hi {html.escape(digest.rep.name)}, these dormant leads have a draft waiting "
        "for you:</p>"
    ]
    for i, item in enumerate(digest.items, 1):
        touch_id = item.touch_id
        who = item.who
        urls = {
            "approve": links.approve(touch_id, now),
            "skip": links.skip(touch_id, now),
            "edit": links.edit(touch_id),
        }
        text += [
            f"{i}. {who}: {item.reason} (by {item.channel})",
            *(f"   Subject: {item.subject}" for _ in [0] if item.subject),
            *("   > " + line for line in item.draft.splitlines()),
            f"   Approve: {urls['approve']}",
            f"   Skip: {urls['skip']}",
            f"   Edit: {urls['edit']}",
            "",
        ]
        subject_html = (
            f"<br><strong>Subject:</strong> {html.escape(item.subject)}" if item.subject else ""
        )
        body.append(
            f"<h3>{i}. {html.escape(who)}</h3><p>{html.escape(item.reason)} "
            f"(by {html.escape(item.channel)}){subject_html}</p>"
            f'<pre style="white-space:pre-wrap;font-family:inherit;border-left:3px solid #ccc;'
            f'padding-left:1rem">{html.escape(item.draft)}</pre>'
            f'<p><a href="{html.escape(urls["approve"])}">Approve and send</a> · '
            f'<a href="{html.escape(urls["skip"])}">Skip</a> · '
            f'<a href="{html.escape(urls["edit"])}">Edit</a></p>'
        )
    more = digest.total - n
    queue = f"{links.public_url}{QUEUE_PATH}"
    if more > 0:
        text.append(f"... and {more} more in the approval queue: {queue}")
        body.append(
            f'<p>… and {more} more in the <a href="{html.escape(queue)}">approval queue</a>.</p>'
        )
    hours = int(links.valid_for.total_seconds() // 3600)
    text.append(f"The approve and skip links work for {hours} hours.")
    body.append(f"<p>The approve and skip links work for {hours} hours.</p>")
    return {"subject": subject, "text": "\n".join(text), "html": "".join(body)}


async def build_digest(
    sessions: Sessions, settings: Settings, cadence: Cadence, rep_id: int, *, now: datetime
) -> Digest | None:
    """Rep ``rep_id``'s digest as it would go out now (None: no such rep with an email)."""
    async with sessions() as session:
        reps = await digest_reps(session, rep_id)
        if not reps:
            return None
        rep = reps[0]
        local = now.astimezone(rep_zone(rep.timezone, settings.default_timezone)).date()
        return await collect(
            session,
            rep,
            reactivation_sequences(cadence),
            local_date=local,
            now=now,
            limit=settings.digest_max_items,
        )


async def send_due_digests(
    sessions: Sessions, settings: Settings, cadence: Cadence, *, now: datetime
) -> list[int]:
    """Enqueue every digest due at ``now``; the new outbox ids (the caller delivers them)."""
    sequences = reactivation_sequences(cadence)
    if not sequences:
        return []
    links = DigestLinks.from_settings(settings)
    async with sessions() as session:
        reps = await digest_reps(session)
    ids: list[int] = []
    for rep in reps:
        local_date = due_date(
            rep_zone(rep.timezone, settings.default_timezone), settings.digest_hour, now
        )
        if local_date is None:
            continue
        key = digest_key(rep.id, local_date)
        async with sessions.begin() as session:
            if await key_taken(session, key):
                continue  # sent today already (here or by another process)
            digest = await collect(
                session,
                rep,
                sequences,
                local_date=local_date,
                now=now,
                limit=settings.digest_max_items,
            )
            if not digest.items:
                continue  # nothing to approve: no email; checked again on the next run
            item_id = await enqueue(
                session,
                key=key,
                channel="email",
                recipient=rep.email,
                payload=render(digest, links, now),
                now=now,
            )
        if item_id is not None:
            ids.append(item_id)
    return ids


async def queue_digest(
    sessions: Sessions, settings: Settings, cadence: Cadence, rep_id: int, *, now: datetime
) -> tuple[Digest | None, int | None]:
    """Enqueue rep ``rep_id``'s digest for their local today now, whatever the hour (the
    CLI); the digest and the new outbox id (None: nothing waiting, or sent today already)."""
    digest = await build_digest(sessions, settings, cadence, rep_id, now=now)
    if digest is None or not digest.items:
        return digest, None
    async with sessions.begin() as session:
        item_id = await enqueue(
            session,
            key=digest.key,
            channel="email",
            recipient=digest.rep.email,
            payload=render(digest, DigestLinks.from_settings(settings), now),
            now=now,
        )
    return digest, item_id
