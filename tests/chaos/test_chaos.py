"""The chaos run in CI (``bench.chaos`` at a small size), and checks of the harness itself.

``test_chaos_run`` starts two ``leadbot serve --no-scheduler`` and one ``leadbot scheduler``
on Postgres + Redis, has ~50 prospects talk through the signed webhook while the fake Graph
API fails sends and a process is killed every ~10 s, then audits the store and the fake's
log (see ``bench/chaos_audit.py``). It needs PostgreSQL and Redis: skipped with the reason
when they are unreachable, failed instead under ``LEADBOT_TEST_REQUIRE_SERVICES=1``.

The other tests show that the audit can fail: each feeds it one kind of violation.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

# The one place tests import bench/: the subject of these tests is bench.chaos itself.
from bench import chaos
from bench.chaos_audit import (
    Audit,
    _answers,
    _deliveries,
    _moves,
    _opt_outs,
    _stuck,
    _touches,
    _waits,
)
from bench.chaos_cluster import compress_cadence
from bench.chaos_traffic import Prospect, Turn
from scheduler.followups.cadence import load_cadence
from scheduler.store.engine import create_engine
from tests.support.fakes.graph_api import FakeGraphAPI, FaultPlan, GraphRequest, Reply

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES = os.environ.get("LEADBOT_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get(
    "LEADBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _services() -> str | None:
    """Why the chaos run cannot run here (None: Postgres and Redis answer)."""
    import redis.asyncio as aioredis

    engine = create_engine(POSTGRES_URL, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable ({POSTGRES_URL}: {type(exc).__name__}: {exc})"
    finally:
        await engine.dispose()
    client = aioredis.from_url(chaos.REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return f"Redis not reachable ({chaos.REDIS_URL}: {type(exc).__name__}: {exc})"
    finally:
        await client.aclose()
    return None


@pytest.mark.timeout(300)
async def test_chaos_run(tmp_path: Path) -> None:
    """Kills, duplicate and batched webhooks, Graph 500/429/hangs, compressed cadence: after
    the drain nothing was sent twice, nobody is unanswered or stuck, no duplicate lead, no
    illegal move, no slipped touch, nothing after STOP, no reply slower than 30 s."""
    problem = await _services()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; LEADBOT_TEST_REQUIRE_SERVICES=1 requires it")
        pytest.skip(problem)
    options = chaos.Options(
        prospects=50,
        email_leads=10,
        traffic_seconds=40,
        drain_seconds=35,
        kill_every=10,
        seed=12,
        day_seconds=1.5,
        min_offset=5,
        reply_timeout=35,
        think=(0.2, 1.2),
        timeout=240,
        postgres_url=POSTGRES_URL,
        workdir=tmp_path / "chaos",
        keep=True,
        quiet=True,
    )
    result = await chaos.run(options)
    sys.stdout.write(chaos.report(result) + "\n")  # shown with the failure (or -rA)
    figures = result.figures
    # The run must have done what it claims, or a pass proves nothing.
    assert figures["kills"] != "none"
    assert figures["webhook bodies / batched / delivered twice"].split(" / ")[2] != "0"
    assert figures["fault plan drawn"], "no send was faulted"
    assert figures["turns handled"] >= options.prospects
    assert figures["touches sent"] > 0
    assert not result.failed, chaos.report(result)


# -- the harness's own parts ---------------------------------------------------------------


def test_compressed_cadence_loads_with_seconds(tmp_path: Path) -> None:
    """The compressed copy is a valid cadence: days became seconds, offsets still increase,
    quiet hours and business days are off."""
    default = ROOT / "scheduler" / "followups" / "cadences" / "default.yaml"
    path = compress_cadence(default, tmp_path, day_seconds=2, min_seconds=5)
    cadence = load_cadence(path)
    steps = cadence.sequence("new_lead").steps
    assert [s.offset for s in steps] == [
        timedelta(0),
        *(timedelta(seconds=x) for x in (5, 6, 14, 28)),
    ]
    assert cadence.sequence("new_lead").after_last == timedelta(seconds=28)
    assert not cadence.quiet_hours.enabled
    assert not cadence.business_days.enabled


async def test_fault_plan_is_repeatable_and_optional() -> None:
    """Same seed, same faults for the same messages; without a plan every send is accepted;
    a disabled plan faults nothing."""

    def bodies() -> list[dict[str, Any]]:
        return [
            {
                "messaging_product": "whatsapp",
                "to": f"1415555{i:04d}",
                "type": "text",
                "text": {"body": "hello"},
            }
            for i in range(200)
        ]

    def draws(plan: FaultPlan) -> list[int | float]:
        return [(r.delay or r.status) for r in map(plan.draw, bodies())]

    plan = dict(seed=3, server_error=0.1, rate_limited=0.1, hang=0.1, hang_seconds=0.01)
    first, second = draws(FaultPlan(**plan)), draws(FaultPlan(**plan))  # type: ignore[arg-type]
    assert first == second
    assert {500, 429, 0.01} <= set(first) and 200 in first
    off = FaultPlan(**plan, enabled=False)  # type: ignore[arg-type]
    assert set(draws(off)) == {200}
    async with FakeGraphAPI() as graph:
        assert graph.faults is None


def _request(
    to: str, text_: str, *, wamid: str | None, at: float, delay: float = 0.0, wall: float = 0.0
) -> GraphRequest:
    body = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": text_}}
    return GraphRequest(
        "/v1/x/messages", {}, body, Reply(delay=delay), wamid=wamid, at=at, wall=wall
    )


def _row(**values: Any) -> SimpleNamespace:
    base: dict[str, Any] = dict(
        channel="whatsapp", lead_id=1, attempts=1, error=None, external_id=None, state="sent"
    )
    return SimpleNamespace(**{**base, **values})


def test_audit_finds_a_message_sent_twice() -> None:
    """A row delivered once with its wamid and once more unrecorded, and two rows answering
    one inbound message, are both duplicates; an uncertain row's lone send is not."""
    outbox = [
        _row(
            id=1,
            key="wa:w1:0",
            recipient="+14155550001",
            payload={"text": "Q1", "reply_to": "w1"},
            external_id="wamid.1",
        ),
        _row(
            id=2,
            key="wa:w2:0",
            recipient="+14155550002",
            payload={"text": "Q2", "reply_to": "w2"},
            state="uncertain",
        ),
        _row(
            id=3,
            key="wa:w3:0",
            recipient="+14155550003",
            payload={"text": "A", "reply_to": "w4"},
            external_id="wamid.3",
        ),
        _row(
            id=4,
            key="wa:w4:0",
            recipient="+14155550003",
            payload={"text": "B", "reply_to": "w4"},
            external_id="wamid.4",
        ),
    ]
    requests = [
        _request("14155550001", "Q1", wamid="wamid.1", at=1),
        _request("14155550001", "Q1", wamid="wamid.9", at=2),  # the same row, again
        _request("14155550002", "Q2", wamid="wamid.5", at=3),  # uncertain: went out once
        _request("14155550003", "A", wamid="wamid.3", at=4),
        _request("14155550003", "B", wamid="wamid.4", at=5),
        _request("14155550004", "??", wamid="wamid.7", at=6),  # no row at all
    ]
    result = Audit()
    _deliveries(result, requests, outbox)
    assert result.count("sent twice") == 2
    assert result.count("sends no row explains") == 1
    assert (
        result.figures["whatsapp uncertain rows (Graph accepted / never reached)"] == "1 (1 / 0)"
    )
    clean = Audit()
    _deliveries(clean, [requests[0], requests[2]], outbox[:2])
    assert not clean.failures


def test_audit_finds_illegal_and_unreasoned_moves() -> None:
    """Moves outside ALLOWED_MOVES, from a stage the lead was not in, and to lost without a
    reason are each reported; a legal history is not."""
    events = [
        SimpleNamespace(id=1, lead_id=1, from_stage=None, to_stage="new", reason=None),
        SimpleNamespace(id=2, lead_id=1, from_stage="new", to_stage="contacted", reason=None),
        SimpleNamespace(id=3, lead_id=1, from_stage="contacted", to_stage="won", reason=None),
        SimpleNamespace(id=4, lead_id=2, from_stage=None, to_stage="new", reason=None),
        SimpleNamespace(id=5, lead_id=2, from_stage="contacted", to_stage="lost", reason="x"),
        SimpleNamespace(id=6, lead_id=3, from_stage=None, to_stage="new", reason=None),
        SimpleNamespace(id=7, lead_id=3, from_stage="new", to_stage="lost", reason=" "),
    ]
    result = Audit()
    _moves(result, events)
    assert result.count("illegal moves") == 3
    legal = Audit()
    _moves(legal, events[:2])
    assert not legal.failures


def test_audit_finds_slipped_touches() -> None:
    """A touch sent later than the tolerance after due (or after approval), or still pending
    that long after due, slipped; an approved one measured from its approval did not."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    touch = dict(sequence="new_lead", step="day3", approved_at=None)
    touches = [
        SimpleNamespace(
            id=1, due_at=t0, sent_at=t0 + timedelta(seconds=5), status="sent", **touch
        ),
        SimpleNamespace(
            id=2, due_at=t0, sent_at=t0 + timedelta(seconds=30), status="sent", **touch
        ),
        SimpleNamespace(id=3, due_at=t0, sent_at=None, status="pending", **touch),
        SimpleNamespace(
            id=4,
            due_at=t0,
            sent_at=t0 + timedelta(seconds=62),
            status="sent",
            sequence="new_lead",
            step="day1",
            approved_at=t0 + timedelta(seconds=60),
        ),
    ]
    result = Audit()
    _touches(result, touches, timedelta(seconds=11), t0 + timedelta(seconds=40))
    assert result.count("touches slipped") == 2


def _prospect(turns: list[Turn]) -> Prospect:
    prospect = Prospect(0, "14155550009", "P", random.Random(0), "r", 0, None, None)
    prospect.turns = turns
    return prospect


def test_audit_finds_messages_after_stop_and_slow_replies() -> None:
    """A message after STOP other than the confirmation breaks the opt-out; a reply after
    more than 30 s is slow unless a send to the same prospect hung meanwhile."""
    stop = _prospect([Turn(10.0, ["w1"], ["STOP"], stop=True)])
    opted_out = datetime(2026, 1, 1, tzinfo=UTC)
    lead = SimpleNamespace(phone="+14155550009", opted_out_at=opted_out)
    at = opted_out.timestamp()
    requests = [
        _request("14155550009", "What budget?", wamid="x", at=0, wall=at - 0.2),  # in flight
        _request(
            "14155550009", "Done — you won't hear from us again.", wamid="a", at=0, wall=at + 0.3
        ),
        _request("14155550009", "Still there?", wamid="b", at=0, wall=at + 9),
    ]
    result = Audit()
    _opt_outs(result, requests, [stop], [lead])
    assert result.count("after opt-out") == 1

    slow = _prospect(
        [Turn(0.0, ["w1"], ["hi"]), Turn(100.0, ["w2"], ["20k"]), Turn(200.0, ["w3"], ["asap"])]
    )
    replies = [
        _request("14155550009", "Q1", wamid="a", at=40.0),  # slow, nothing hung
        _request("14155550009", "Q2", wamid="b", at=101.0, delay=3.0),  # hung, went out
        _request("14155550009", "Q3", wamid="c", at=240.0),  # slow, behind the hang? no
    ]
    waits = Audit()
    _waits(waits, replies, [slow], hang_window=5.0)
    assert waits.count("slow replies") == 2
    excused = Audit()
    # The first answer hung and was never accepted; the retry came 45 s later.
    _waits(
        excused,
        [
            _request("14155550009", "Q", wamid=None, at=5.0, delay=3.0),
            _request("14155550009", "Q", wamid="d", at=45.0),
        ],
        [_prospect([Turn(0.0, ["w1"], ["hi"])])],
        hang_window=5.0,
    )
    assert not excused.failures


def test_run_kills_its_children_when_interrupted(tmp_path: Path) -> None:
    """Whatever ends a run (here: a start that cannot succeed), no child outlives it."""
    from bench.chaos_cluster import Cluster, child_env

    cluster = Cluster(
        child_env({"LEADBOT_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/x"}), tmp_path
    )

    async def start() -> None:
        try:
            await cluster.start_all(timeout=30)
        finally:
            cluster.stop_all()

    with pytest.raises((RuntimeError, TimeoutError)):
        asyncio.run(start())
    assert all(p.popen is not None and p.popen.poll() is not None for p in cluster.procs)


def test_audit_finds_unanswered_and_stuck_messages() -> None:
    """A turn handled without a reply or a reason, and a message that got its 200 but was
    never stored, are unanswered; a turn of an opted-out lead is not; an unprocessed row, a
    row still sending, a claimed touch and a held lock are stuck."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    prospect = _prospect(
        [
            Turn(0.0, ["w1"], ["hi"], delivered=["w1"]),
            Turn(1.0, ["w2"], ["20k"], delivered=["w2"]),
            Turn(2.0, ["w3"], ["asap"], delivered=["w3"]),
        ]
    )
    inbox = [
        SimpleNamespace(
            id=1, external_id="w1", sender=prospect.phone, processed_at=t0, attempts=0, error=None
        ),
        SimpleNamespace(
            id=2,
            external_id="w2",
            sender=prospect.phone,
            processed_at=t0 + timedelta(seconds=1),
            attempts=0,
            error=None,
        ),
    ]
    outbox = [_row(id=1, key="wa:w1:0", recipient=prospect.phone, payload={"text": "Q"})]
    lead = SimpleNamespace(phone=prospect.phone, opted_out_at=None, bot_paused=False)
    result = Audit()
    _answers(result, inbox, outbox, [lead], [prospect])
    assert result.count("unanswered") == 2  # w2 handled silently, w3 never stored
    opted_out = Audit()
    lead.opted_out_at = t0
    _answers(opted_out, inbox, outbox, [lead], [prospect])
    assert opted_out.count("unanswered") == 1  # w3 only

    stuck = Audit()
    _stuck(
        stuck,
        [SimpleNamespace(id=3, sender="+1", processed_at=None, attempts=0, error=None)],
        [_row(id=2, key="wa:w9:0", state="sending")],
        [SimpleNamespace(id=1, status="claimed")],
        ["leadbot:lock:wa:+1"],
    )
    assert stuck.count("stuck") == 4
    reached = Audit(reached={2})  # its request left: unknown outcome, not a stuck row
    _stuck(reached, [], [_row(id=2, key="wa:w9:0", state="sending")], [], [])
    assert not reached.failures
    # Started and never reached: a kill between the start mark and the request (the row
    # becomes uncertain after the send lease, never resent), at most one a kill.
    in_flight = [
        _row(id=i, key=f"wa:w{i}:0", state="sending", sending_started_at=t0) for i in (4, 5)
    ]
    one_kill = Audit()
    _stuck(one_kill, [], in_flight[:1], [], [], kills=1)
    assert not one_kill.failures
    too_many = Audit()
    _stuck(too_many, [], in_flight, [], [], kills=1)
    assert too_many.count("stuck") == 2
