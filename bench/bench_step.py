"""Dialog engine throughput: ``step()`` with the rules interpreter on one core.

    .venv/bin/python -m bench.bench_step                 # 100,000 turns, best of 3
    .venv/bin/python -m bench.bench_step --turns 50000 --script b2b_es

Conversations are replayed from a realistic mix of replies (taps, typed answers, several
answers at once, "idk", off-script questions, typos, media, stop), so a turn runs the rules
interpreter, the engine and, when a conversation completes, the ICP scorer. A turn is one
``step()`` call; a finished conversation is followed by a new prospect. The sessions are
recorded first and each step is replayed from its recorded session, so only ``step()`` is
timed. Also printed: ``step()`` alone, with the interpreter's readings precomputed (what the
bot does when the async interpreter already ran). The target is >= 20,000 turns/s.
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
    "pt": [
        "precisamos de um site novo",
        "marketing",
        "somos uns 30 funcionários",
        "só eu",
        "uns 20 mil reais",
        "meio milhão",
        "sei lá",
        "o quanto antes",
        "para março",
        "quanto custa?",
        "quem é você?",
        "beleza",
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


def conversation(script_id: str, turns: int) -> list[tuple[Session, Event]]:
    """Replay ``turns`` events through the engine; return each (session before, event) pair,
    with the rules interpreter's reading attached to every text event.

    A finished conversation is followed by a new prospect's ``Started()``, which counts as
    a turn like any other ``step()`` call.
    """
    script = load_scripts(SCRIPTS_DIR)[script_id]
    icp = load_icp()
    interpreter = RulesInterpreter()
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    session = Session.new(script, t0)
    pairs: list[tuple[Session, Event]] = []
    for planned in make_events(script_id, turns):
        event = planned
        if session.status != "active":
            session = Session.new(script, t0)
            event = Started()
        elif isinstance(planned, TextReceived):
            reading = interpreter.interpret_now(script, session, planned.text, t0)
            event = TextReceived(planned.text, reading)
        pairs.append((session, event))
        session = step(script, session, event, t0, icp=icp).session
    return pairs


def measure(script_id: str, pairs: list[tuple[Session, Event]], *, with_rules: bool) -> float:
    """Seconds to run every step; ``with_rules`` drops the attached readings so each text
    event runs the rules interpreter inside ``step()``, as the bot's default does."""
    script = load_scripts(SCRIPTS_DIR)[script_id]
    icp = load_icp()
    interpreter = RulesInterpreter()
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    work = [
        (s, TextReceived(e.text) if with_rules and isinstance(e, TextReceived) else e)
        for s, e in pairs
    ]
    nows = [t0 + timedelta(seconds=i) for i in range(len(work))]
    gc.collect()
    start = time.perf_counter()
    for (session, event), now in zip(work, nows, strict=True):
        step(script, session, event, now, icp=icp, interpreter=interpreter)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--script", default="b2b_default")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    pairs = conversation(args.script, args.turns)
    measure(args.script, pairs[:2000], with_rules=True)  # warm caches and imports
    texts = sum(isinstance(e, TextReceived) for _, e in pairs)
    print(f"{args.script}: {len(pairs):,} turns ({texts:,} typed, the rest taps/media/starts)")
    for label, with_rules in (("step() + rules interpreter", True), ("step() alone", False)):
        runs = sorted(
            measure(args.script, pairs, with_rules=with_rules) for _ in range(args.repeat)
        )
        best, median = runs[0], runs[len(runs) // 2]
        print(
            f"  {label:<28} {len(pairs) / best:>9,.0f} turns/s best, "
            f"{len(pairs) / median:>9,.0f} median of {args.repeat} (one core)"
        )


if __name__ == "__main__":
    main()
