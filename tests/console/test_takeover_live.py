"""The take-over, live (issue 14, item 4): server-sent events bring a conversation's new
messages and delivery statuses, in the order stored, to every open console; a reconnect with
``Last-Event-ID`` resumes without a gap or a repeat; the queue page hears of changes; and the
streams end at once when the service shuts down."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from bot.console.takeover_events import STREAMS
from bot.console.takeover_feed import FeedPosition
from tests.console.takeover_support import (
    Desk,
    EventReader,
    MakeDesk,
    ServerEvent,
    events_url,
    make_desk,
    reply,
    take,
)
from tests.support.fakes.graph_api import graph_api

__all__ = ["graph_api", "make_desk"]
_MESSAGE_ID = re.compile(r'id="msg-(\d+)"')


def message_ids(events: list[ServerEvent]) -> list[int]:
    return [int(m.group(1)) for e in events if (m := _MESSAGE_ID.search(e.data))]


async def _taken_conversation(make: MakeDesk) -> tuple[Desk, int]:
    desk = await make()
    await desk.prospect().says("can I talk to a human please")
    lead = await desk.lead()
    assert (await take(desk.ana, lead.id)).status == 303
    return desk, lead.id


async def test_new_messages_and_statuses_arrive_live_in_stored_order(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _taken_conversation(make_desk)
    dana = desk.prospect()
    url = await events_url(desk.bo, lead_id)  # Bo watches; Ana writes
    async with desk.bo.client.session.get(desk.bo.client.make_url(url)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = EventReader(response)
        assert (await events.next()).event == "ready"

        await reply(desk.ana, lead_id, "Hello Dana, Ana here")
        # The row shows while it waits to go out, then the sent message replaces it.
        *waiting, sent = await events.until("message")
        assert all(e.event == "status" and 'id="outbox-' in e.data for e in waiting)
        assert "Hello Dana, Ana here" in sent.data and 'class="status s-sent"' in sent.data
        wamid = desk.graph.requests[-1].wamid
        assert wamid is not None

        await dana.says("Hi Ana <b>bold</b>")
        [heard] = await events.until("message")
        assert "Hi Ana &lt;b&gt;bold&lt;/b&gt;" in heard.data  # escaped by the server
        assert message_ids([sent, heard]) == sorted(message_ids([sent, heard]))

        await dana.status(wamid, "delivered")
        [status] = await events.until("status")
        assert "delivered" in status.data and "data-replace-only" in status.data
        outbox_id = re.search(r'id="status-(\d+)"', sent.data)
        assert outbox_id and f'id="status-{outbox_id.group(1)}"' in status.data


async def test_a_reconnect_resumes_from_the_last_event_without_repeats(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _taken_conversation(make_desk)
    dana = desk.prospect()
    url = desk.ana.client.make_url(await events_url(desk.ana, lead_id))
    async with desk.ana.client.session.get(url) as response:
        events = EventReader(response)
        await reply(desk.ana, lead_id, "First from Ana")
        first = (await events.until("message"))[-1]
        assert first.id is not None
    wamid = desk.graph.requests[-1].wamid
    assert wamid is not None

    # While nobody listens: the prospect writes twice and our message is read.
    await dana.says("one")
    await dana.says("two")
    await dana.status(wamid, "read")

    headers = {"Last-Event-ID": first.id}
    async with desk.ana.client.session.get(url, headers=headers) as response:
        events = EventReader(response)
        missed = await events.until("status")
        bodies = [e.data for e in missed if e.event == "message"]
        assert len(bodies) == 2 and ">one<" in bodies[0] and ">two<" in bodies[1]
        assert "First from Ana" not in "".join(e.data for e in missed)  # no repeat
        assert "read" in missed[-1].data

        await dana.says("three")
        [third] = await events.until("message")
        assert ">three<" in third.data and third.id is not None
        last = third.id

    # Resuming from the very last event gives nothing old: the next event is new.
    async with desk.ana.client.session.get(url, headers={"Last-Event-ID": last}) as response:
        events = EventReader(response)
        assert (await events.next()).event == "ready"
        await dana.says("four")
        [fourth] = await events.until("message")
        assert ">four<" in fourth.data and ">three<" not in fourth.data


async def test_a_stale_position_reads_back_statuses_it_has_not_seen(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _taken_conversation(make_desk)
    await reply(desk.ana, lead_id, "Sent before the page")
    url = await events_url(desk.ana, lead_id)
    start = FeedPosition.decode(url.split("from=")[1])
    assert start is not None and start.seen  # the page already shows the row as sent
    wamid = desk.graph.requests[-1].wamid
    assert wamid is not None
    await desk.prospect().status(wamid, "delivered")
    async with desk.ana.client.session.get(desk.ana.client.make_url(url)) as response:
        [status] = await EventReader(response).until("status")
        assert "delivered" in status.data


async def test_the_queue_page_hears_when_the_queue_changes(make_desk: MakeDesk) -> None:
    desk = await make_desk()
    page = await (await desk.bo.get("/console/takeover")).text()
    found = re.search(r'data-events="([^"]+)"', page)
    assert found
    url = desk.bo.client.make_url(found.group(1))
    async with desk.bo.client.session.get(url) as response:
        events = EventReader(response)
        assert (await events.next()).event == "ready"
        await desk.prospect().says("can I talk to a human please")
        [changed] = await events.until("queue")
        lead = await desk.lead()
        fragment = await (await desk.bo.get("/console/takeover/queue")).text()
        assert f"/console/takeover/{lead.id}" in fragment.split('id="waiting"')[1]

        await take(desk.ana, lead.id)
        [taken] = await events.until("queue")
        assert taken.id != changed.id


async def test_streams_end_at_once_when_the_service_shuts_down(make_desk: MakeDesk) -> None:
    desk, lead_id = await _taken_conversation(make_desk)
    url = desk.ana.client.make_url(await events_url(desk.ana, lead_id))
    response = await desk.ana.client.session.get(url)
    events = EventReader(response)
    assert (await events.next()).event == "ready"
    assert len(desk.client.app[STREAMS]) == 1
    started = time.monotonic()
    await asyncio.wait_for(desk.client.server.close(), timeout=10)
    assert time.monotonic() - started < 5  # not aiohttp's 60 s wait for the handler
    try:
        while True:
            await events.next(timeout=5)
    except (EOFError, ConnectionError):
        pass  # the stream ended
    response.release()


async def test_a_stream_needs_a_session(make_desk: MakeDesk) -> None:
    desk, lead_id = await _taken_conversation(make_desk)
    response = await desk.client.get(
        f"/console/takeover/{lead_id}/events", headers={"HX-Request": "true"}
    )
    assert response.status == 401
    assert (await desk.ana.get("/console/takeover/999999/events")).status == 404


def test_a_position_survives_its_event_id_and_junk_is_refused() -> None:
    at = datetime(2026, 12, 6, 10, 20, 30, 123456, tzinfo=UTC)
    position = FeedPosition(42, at, {7: ("delivered", at), 9: ("queued", at)})
    again = FeedPosition.decode(position.encode())
    assert again is not None and (again.message_id, again.status_at) == (42, at)
    assert {row: label for row, (label, _) in again.seen.items()} == {
        7: "delivered",
        9: "queued",
    }
    for junk in ("", "42", "42.x", "42.1.7:delivered9:queued", "42.1.7:Read", "-1.1"):
        assert FeedPosition.decode(junk) is None, junk
