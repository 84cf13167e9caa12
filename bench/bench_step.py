"""Dialog engine throughput: ``step()`` with the rules interpreter on one core.

    .venv/bin/python -m bench.bench_step                 # default: 200,000 turns
    .venv/bin/python -m bench.bench_step --turns 50000 --script b2b_es

Conversations are replayed from a realistic mix of replies (taps, typed answers, several
answers at once, "idk", off-script questions, typos, media, stop) so each turn runs the
interpreter, the engine and, when a conversation completes, the ICP scorer. A turn is one
``step()`` call; conversations restart when they finish. The target is >= 20,000 turns/s.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialogs.engine import step
from dialogs.events import ChoiceSelected, Event, Started, TextReceived, UnsupportedMedia
from dialogs.icp import load_icp
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.loader import load_scripts
from dialogs.script import button_id
from dialogs.session import Session

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "dialogs" / "scripts"

REPLIES = {
    "en": [
        "we need a new website",
        "marketing",
        "cnsulting pls",
        "about 200 people",
        "we're 40 people and need it by March",
        "just me",
        "50k",
        "$1.2M",
        "around 20,000 dollars",
        "idk",
        "not sure tbh",
        "asap",
        "next week",
        "sometime next year",
        "price?",
        "who is this?",
        "hmm",
        "👍",
        "ok",
    ],
    "es": [
        "necesitamos una página web",
        "marketing",
        "somos unas 30 personas",
        "solo yo",
        "unos 20 mil euros",
        "50k",
        "ni idea",
        "cuanto antes",
        "el año que viene",
        "¿cuánto cuesta?",
        "¿quién eres?",
        "vale",
    ],
}


def make_events(script_id: str, n: int, seed: int = 7) -> list[Event]:
    """``n`` events: 75% typed text, 20% taps on the script's buttons, a little media/stop."""
    scripts = load_scripts(SCRIPTS_DIR)
    script = scripts[script_id]
    rng = random.Random(seed)
    replies = REPLIES.get(script.language, REPLIES["en"])
    taps = [button_id(q.slot, o.id) for q in script.questions for o in q.options]
    events: list[Event] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.75:
            events.append(TextReceived(rng.choice(replies)))
        elif r < 0.95:
            events.append(ChoiceSelected(rng.choice(taps)))
        elif r < 0.99:
            events.append(UnsupportedMedia(rng.choice(["image", "audio", "sticker"])))
        else:
            events.append(TextReceived("stop"))
    return events


def run(script_id: str, turns: int) -> tuple[float, int]:
    """Replay ``turns`` events; return (seconds, conversations completed)."""
    script = load_scripts(SCRIPTS_DIR)[script_id]
    icp = load_icp()
    interpreter = RulesInterpreter()
    events = make_events(script_id, turns)
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    nows = [t0 + timedelta(seconds=i) for i in range(turns)]
    session = step(script, Session.new(script, t0), Started(), t0, icp=icp).session
    finished = 0
    gc.collect()
    start = time.perf_counter()
    for event, now in zip(events, nows, strict=True):
        session = step(script, session, event, now, icp=icp, interpreter=interpreter).session
        if session.status != "active":
            finished += 1
            session = step(script, Session.new(script, now), Started(), now, icp=icp).session
    return time.perf_counter() - start, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200_000)
    parser.add_argument("--script", default="b2b_default")
    args = parser.parse_args()
    run(args.script, 2_000)  # warm up caches (compiled script tables, imports)
    seconds, finished = run(args.script, args.turns)
    print(
        f"{args.script}: {args.turns:,} turns in {seconds:.2f}s = "
        f"{args.turns / seconds:,.0f} turns/s on one core "
        f"({finished:,} conversations finished; restarts not counted as turns)"
    )


if __name__ == "__main__":
    main()
