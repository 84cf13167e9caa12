"""The chaos run's traffic: WhatsApp prospects talking through the real webhook, and a rep.

A :class:`Prospect` reads what the bot sent it (at the fake Graph API) and answers the
question asked: a tap on a button or list row, or free text; some ask a question of their
own, some answer in a burst of two messages, some say STOP midway (and write once more
after it), some go quiet. Each prospect's choices come from a random generator seeded by
the run's seed and its number, so a seed replays the same conversations.

The :class:`Mailman` is Meta's side of the webhook: it signs bodies with the app secret
(``X-Hub-Signature-256`` over the exact bytes), sometimes batches two senders' messages in
one body, delivers a fifth of bodies a second time to the OTHER web worker, and retries a
body that got no 200 (a killed worker) on the other one, as Meta does.

The :class:`Rep` creates email leads through ``POST /api/leads`` (their follow-up cadence
runs during the run) and approves the drafts that wait for a rep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.whatsapp.signature import HEADER, sign
from tests.support.fakes.graph_api import FakeGraphAPI, GraphRequest

BUSINESS_NUMBER = "15550001111"
ACCOUNT_ID = "102290129340398"

OPENERS = [
    "Hi, I saw your ad",
    "hello",
    "Hi! we need a new website",
    "hey, who is this?",
    "Hi, interested in your services",
]
FREE_TEXT = {
    "need": [
        "we need a new website",
        "help with marketing and ads",
        "consulting please",
        "an integration with our CRM",
        "ongoing support for our app",
        "idk yet",
    ],
    "company_size": [
        "about 40 people",
        "we're 8",
        "200ish",
        "around 5000 employees",
        "just me",
        "12 people",
    ],
    "budget": ["20k", "around $50,000", "5k", "maybe 10k", "1M", "not sure, 15k?"],
    "timeline": ["asap", "next month", "this year", "no rush", "in 2 weeks", "Q3"],
}
FILLERS = ["ok", "hmm", "sure", "one sec"]
QUESTIONS = ["how much does it cost?", "who are you?", "how does it work?"]


def graph_text(body: dict[str, Any]) -> str:
    """The text a Graph message body shows its recipient (any message type)."""
    kind = body.get("type")
    if kind == "text":
        return str((body.get("text") or {}).get("body", ""))
    if kind == "interactive":
        return str(((body.get("interactive") or {}).get("body") or {}).get("text", ""))
    if kind == "template":
        params = [
            p.get("text", "")
            for c in (body.get("template") or {}).get("components") or []
            for p in c.get("parameters") or []
        ]
        return " ".join(str(p) for p in params)
    return ""


def graph_choices(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, id, title)`` of the buttons or list rows a message offers."""
    interactive = body.get("interactive") or {}
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        return [
            ("button_reply", b["reply"]["id"], b["reply"]["title"])
            for b in action.get("buttons", [])
        ]
    if interactive.get("type") == "list":
        return [
            ("list_reply", r["id"], r["title"])
            for s in action.get("sections", [])
            for r in s.get("rows", [])
        ]
    return []


def slot_asked(body: dict[str, Any]) -> str | None:
    """Which qualifying question a bot message asks (None: an outcome or something else)."""
    choices = graph_choices(body)
    if choices and ":" in choices[0][1]:
        return choices[0][1].split(":", 1)[0]
    text = graph_text(body).lower()
    for slot, words in (
        ("company_size", ("how many people", "team")),
        ("budget", ("budget",)),
        ("timeline", ("get started", "start")),
        ("need", ("looking for", "what you need")),
    ):
        if any(w in text for w in words):
            return slot
    return None


def is_outcome(body: dict[str, Any]) -> bool:
    """True for the conversation's last word: the booking link, the deflection, the end."""
    text = graph_text(body).lower()
    interactive = body.get("interactive") or {}
    return (
        interactive.get("type") == "cta_url"
        or "guide" in text
        or "great fit" in text
        or "everything we need" in text
        or "colleague will continue" in text
        or "getting a colleague" in text
    )


@dataclass
class Turn:
    """One thing a prospect said (one or two messages) and whether it expects an answer."""

    sent_at: float  # perf_counter when the first message was handed to the mailman
    wamids: list[str]
    texts: list[str]
    expects_reply: bool = True
    stop: bool = False
    got_reply_in_run: bool = False
    delivered: list[str] = field(default_factory=list)  # wamids a worker answered 200 for


@dataclass
class Prospect:
    """One WhatsApp prospect (see the module docstring)."""

    index: int
    wa_id: str
    name: str
    rng: random.Random
    run_id: str
    start_delay: float
    stop_at: int | None  # the turn at which they say STOP
    quiet_at: int | None  # the turn after which they stop answering
    turns: list[Turn] = field(default_factory=list)
    outcome: str = "running"
    inbox: asyncio.Queue[GraphRequest] = field(default_factory=asyncio.Queue)
    _n: int = 0

    @property
    def phone(self) -> str:
        """The E.164 form leads store."""
        return "+" + self.wa_id

    def _wamid(self) -> str:
        self._n += 1
        return f"wamid.CHAOS.{self.run_id}.{self.index}.{self._n}"

    def _message(
        self, text: str | None, tap: tuple[str, str, str] | None, context: str | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "from": self.wa_id,
            "id": self._wamid(),
            "timestamp": str(int(time.time())),
        }
        if tap is not None:
            kind, choice_id, title = tap
            reply: dict[str, str] = {"id": choice_id, "title": title}
            if kind == "list_reply":
                reply["description"] = ""
            message.update(type="interactive", interactive={"type": kind, kind: reply})
        else:
            message.update(type="text", text={"body": text})
        if context:
            message["context"] = {"from": BUSINESS_NUMBER, "id": context}
        return message

    async def run(
        self,
        mailman: Mailman,
        reply_timeout: float,
        think: tuple[float, float],
        stop_event: asyncio.Event,
    ) -> None:
        """Hold the conversation until an outcome, STOP, silence, or no reply."""
        await asyncio.sleep(self.start_delay)
        await self._say(mailman, [(self.rng.choice(OPENERS), None)], None)
        for step in range(12):
            reply = await self._wait(reply_timeout)
            if reply is None:
                self.outcome = "no reply"
                return
            self.turns[-1].got_reply_in_run = True
            if self.turns[-1].stop:
                self.outcome = "stopped"
                if self.rng.random() < 0.5:  # writes once more: must be recorded, not answered
                    await asyncio.sleep(self.rng.uniform(*think))
                    await self._say(
                        mailman, [("hello? one more thing", None)], None, expects_reply=False
                    )
                return
            if is_outcome(reply.body):
                self.outcome = "finished"
                return
            if stop_event.is_set() and step > 0:
                self.outcome = "cut off"
                return
            await asyncio.sleep(self.rng.uniform(*think))
            if self.quiet_at == step:
                self.outcome = "quiet"
                return
            context = reply.wamid
            if self.stop_at == step:
                await self._say(mailman, [("STOP", None)], context, stop=True)
                continue
            if self.rng.random() < 0.1:
                await self._say(mailman, [(self.rng.choice(QUESTIONS), None)], context)
                continue
            slot = slot_asked(reply.body) or "need"
            choices = graph_choices(reply.body)
            parts: list[tuple[str | None, tuple[str, str, str] | None]] = []
            if self.rng.random() < 0.15:
                parts.append((self.rng.choice(FILLERS), None))  # a burst of two messages
            if choices and self.rng.random() < 0.5:
                parts.append((None, self.rng.choice(choices)))
            else:
                parts.append((self.rng.choice(FREE_TEXT.get(slot, FREE_TEXT["need"])), None))
            await self._say(mailman, parts, context)
        self.outcome = "too long"

    async def _say(
        self,
        mailman: Mailman,
        parts: list[tuple[str | None, tuple[str, str, str] | None]],
        context: str | None,
        *,
        expects_reply: bool = True,
        stop: bool = False,
    ) -> None:
        while not self.inbox.empty():  # what came before this turn is not its answer
            self.inbox.get_nowait()
        turn = Turn(time.perf_counter(), [], [], expects_reply=expects_reply, stop=stop)
        self.turns.append(turn)
        deliveries = []
        for i, (text, tap) in enumerate(parts):
            if i:
                await asyncio.sleep(self.rng.uniform(0.05, 0.25))  # a burst: within the window
            message = self._message(text, tap, context)
            turn.wamids.append(message["id"])
            turn.texts.append(f"[tap {tap[1]}]" if tap is not None else str(text))
            deliveries.append(asyncio.create_task(mailman.post(message, self)))
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        turn.delivered = [w for w, o in zip(turn.wamids, outcomes, strict=True) if o is None]

    async def _wait(self, timeout: float) -> GraphRequest | None:
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            return None


def make_prospects(
    count: int,
    *,
    seed: int,
    run_id: str,
    exchange: int,
    spread: float,
    stop_share: float = 0.08,
    quiet_share: float = 0.1,
) -> list[Prospect]:
    """``count`` prospects with numbers ``+1 415 <exchange> NNNN`` (one exchange per run, so
    runs sharing a Redis never share a lock key), starting within ``spread`` seconds."""
    prospects = []
    for i in range(count):
        rng = random.Random(f"{seed}:prospect:{i}")
        roll = rng.random()
        stop_at = rng.randrange(0, 4) if roll < stop_share else None
        quiet_at = rng.randrange(0, 4) if stop_share <= roll < stop_share + quiet_share else None
        prospects.append(
            Prospect(
                i,
                f"1415{exchange:03d}{i:04d}",
                f"Prospect {i}",
                rng,
                run_id,
                rng.uniform(0, spread),
                stop_at,
                quiet_at,
            )
        )
    return prospects


@dataclass
class MailStats:
    """What the mailman did."""

    bodies: int = 0
    batched: int = 0  # bodies carrying two senders
    duplicates: int = 0  # bodies delivered a second time to the other worker
    retries: int = 0  # POSTs that got no 200 (worker down) and were sent again
    refused: dict[int, int] = field(default_factory=dict)  # non-200 statuses
    given_up: int = 0  # messages never accepted by any worker


class Mailman:
    """Meta's webhook delivery (see the module docstring)."""

    def __init__(
        self,
        urls: list[str],
        secret: str,
        *,
        seed: int,
        duplicate_share: float,
        batch_share: float,
        deadline: float = 90.0,
    ) -> None:
        self.urls = urls
        self.secret = secret
        self.seed = seed
        self.duplicate_share = duplicate_share
        self.batch_share = batch_share
        self.deadline = deadline
        self.stats = MailStats()
        self._queue: asyncio.Queue[tuple[dict[str, Any], Prospect, asyncio.Future[None]]] = (
            asyncio.Queue()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start sorting messages into bodies."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._loop_task = asyncio.create_task(self._sort())

    async def close(self) -> None:
        """Wait for deliveries in flight (bounded), then stop."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=15)
        for task in [*self._tasks, *([self._loop_task] if self._loop_task else [])]:
            task.cancel()
        if self._http is not None:
            await self._http.close()

    async def post(self, message: dict[str, Any], prospect: Prospect) -> None:
        """Deliver ``message``; return once a worker answered 200 for its body."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((message, prospect, done))
        await done

    async def _sort(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            rng = random.Random(f"{self.seed}:body:{first[0]['id']}")
            if rng.random() < self.batch_share:
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(self._queue.get(), 0.05))
            task = asyncio.create_task(self._deliver(batch, rng))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _body(self, batch: list[tuple[dict[str, Any], Prospect, Any]]) -> bytes:
        contacts: dict[str, dict[str, Any]] = {}
        for _, prospect, _ in batch:
            contacts[prospect.wa_id] = {
                "profile": {"name": prospect.name},
                "wa_id": prospect.wa_id,
            }
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": BUSINESS_NUMBER,
                "phone_number_id": "106540352242922",
            },
            "contacts": list(contacts.values()),
            "messages": [message for message, _, _ in batch],
        }
        entry = {"id": ACCOUNT_ID, "changes": [{"field": "messages", "value": value}]}
        return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()

    async def _deliver(
        self, batch: list[tuple[dict[str, Any], Prospect, Any]], rng: random.Random
    ) -> None:
        raw = self._body(batch)
        self.stats.bodies += 1
        if len({p.wa_id for _, p, _ in batch}) > 1:
            self.stats.batched += 1
        target = rng.randrange(len(self.urls))
        accepted_by = await self._post(raw, target)
        for _, _, done in batch:
            if not done.done():
                if accepted_by is None:
                    done.set_exception(RuntimeError("no worker accepted the body"))
                else:
                    done.set_result(None)
        if accepted_by is not None and rng.random() < self.duplicate_share:
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            self.stats.duplicates += 1
            await self._post(raw, (accepted_by + 1) % len(self.urls))

    async def _post(self, raw: bytes, target: int) -> int | None:
        """POST until a worker answers 200 (trying the other after a failure); its index."""
        assert self._http is not None
        headers = {HEADER: sign(self.secret, raw), "Content-Type": "application/json"}
        deadline = time.monotonic() + self.deadline
        while time.monotonic() < deadline:
            try:
                async with self._http.post(
                    self.urls[target], data=raw, headers=headers
                ) as response:
                    await response.read()
                    if response.status == 200:
                        return target
                    self.stats.refused[response.status] = (
                        self.stats.refused.get(response.status, 0) + 1
                    )
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            self.stats.retries += 1
            target = (target + 1) % len(self.urls)
            await asyncio.sleep(0.3)
        self.stats.given_up += 1
        return None


class Router:
    """Hands each message the fake Graph API accepted to the prospect it is addressed to."""

    def __init__(self, graph: FakeGraphAPI, prospects: list[Prospect]) -> None:
        self.graph = graph
        self.by_wa_id = {p.wa_id: p for p in prospects}
        self._cursor = 0

    async def run(self) -> None:
        """Poll the fake's log (every 20 ms) until cancelled."""
        while True:
            requests = self.graph.requests
            while self._cursor < len(requests):
                request = requests[self._cursor]
                self._cursor += 1
                to = str(request.body.get("to") or "").lstrip("+")
                prospect = self.by_wa_id.get(to)
                if prospect is not None and request.accepted and "type" in request.body:
                    prospect.inbox.put_nowait(request)
            await asyncio.sleep(0.02)


@dataclass
class RepStats:
    """What the rep did."""

    leads_created: int = 0
    lead_errors: int = 0
    approved: int = 0
    approve_errors: int = 0


class Rep:
    """Creates email leads and approves waiting drafts, through the JSON API."""

    def __init__(
        self, urls: Callable[[], list[str]], token: str, *, seed: int, run_id: str
    ) -> None:
        self.urls = urls
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(f"{seed}:rep")
        self.run_id = run_id
        self.stats = RepStats()
        self.emails: list[str] = []

    async def leads(self, http: aiohttp.ClientSession, count: int, spread: float) -> None:
        """Create ``count`` email leads over ``spread`` seconds."""
        roles = ["VP Sales", "Head of Marketing", "CTO", "Founder", "Operations Manager"]
        for i in range(count):
            await asyncio.sleep(spread / max(count, 1))
            email = f"lead{i}.{self.run_id}@company{i}.example.com"
            body = {
                "name": f"Email Lead {i}",
                "email": email,
                "company": f"Company {i}",
                "role": self.rng.choice(roles),
                "source": "chaos",
            }
            for attempt in range(5):
                url = self.urls()[(i + attempt) % len(self.urls())]
                try:
                    async with http.post(
                        f"{url}/api/leads", json=body, headers=self.headers
                    ) as response:
                        await response.read()
                        if response.status in (200, 201):
                            self.stats.leads_created += 1
                            self.emails.append(email)
                            break
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.5)
            else:
                self.stats.lead_errors += 1

    async def approve(
        self, http: aiohttp.ClientSession, every: float, stop: asyncio.Event
    ) -> None:
        """Approve every draft that waits for a rep, every ``every`` seconds, until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            url = self.rng.choice(self.urls())
            try:
                async with http.get(
                    f"{url}/api/touches?status=awaiting_approval&limit=100", headers=self.headers
                ) as response:
                    if response.status != 200:
                        continue
                    touches = (await response.json())["touches"]
                for touch in touches:
                    async with http.post(
                        f"{url}/api/touches/{touch['id']}/approve",
                        json={"by": "chaos-rep"},
                        headers=self.headers,
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            self.stats.approved += 1
                        else:
                            self.stats.approve_errors += 1
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
                self.stats.approve_errors += 1
