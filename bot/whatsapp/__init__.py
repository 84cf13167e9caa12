"""WhatsApp, in and through: Meta's signature check, our own envelope parser, the webhook and
the sandbox; the inbox's conversation processor (stored inbound messages → one engine turn →
one reply: :mod:`~bot.whatsapp.processor`, with ``bursts``, ``turns``, ``sender``, ``effects``
and ``hooks``); the outbound payload schema the channel consumes, and click-to-chat
attribution.

An inbound message, hop by hop (→ a call, ⇢ an asynchronous hand-off, [DB] a round trip):

1. ``webhook.receive``: signature over the raw bytes, ``envelope.parse_envelope``.
2. ⇢ ``ingest.InboxWriter.write`` (group commit: bodies arriving together share it)
   → ``ingest_many`` ⇢ one greenlet → ``scheduler.store.inbox`` append [DB: the durable
   inbox row, committed] → ``processor.kick`` → 200.
3. ⇢ ``bursts.BurstScheduler`` (one task per sender): waits out the burst window, then
   → ``processor.InboxProcessor.process``: the sender's lock (``bot.locks``; Redis: a round
   trip).
4. ⇢ load (group commit) → ``_load_many`` [DB: rows, contact-point owners, leads and
   sessions, suppressions: one session for the batch].
5. → ``_plan``: store state says whether to answer (opted out, bot paused), then
   → ``dialogs.turn.take_turn`` (``turns.build_events``, the interpreter, ``engine.step`` per
   event; one reply): no I/O but the interpreter's.
6. ⇢ commit (group commit) → ``_commit_many`` [DB: one transaction for the batch: lock and
   read its leads at once, mark the rows processed, ``scheduler.pipeline.leads.lead_seen_at``,
   ``effects.apply`` (outbox rows keyed by the wamid), messages and sessions one statement
   each]; the lock is released.
7. → ``deliver`` (``scheduler.delivery.outbox``), in the sender's own task: claim [DB], send,
   record the outcome [DB].

Every hand-off left carries a guarantee: the group commits (2, 4, 6) share a transaction
between conversations, the burst task (3) makes a burst one turn, delivery (7) runs after the
lock is released so a slow vendor holds no lock.
"""
