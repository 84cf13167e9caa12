"""Email, out and in: the fast first touch after ``POST /api/leads``
(:mod:`~bot.email.first_touch_service`), one-click unsubscribe, what an opt-out or a bounce
does to a lead (:mod:`~bot.email.actions`), and inbound email: the webhook, parsing
(``inbound_message``), classification, quote stripping and the effects (``inbound``). The
adapter that sends email is :mod:`bot.channels.email`."""
