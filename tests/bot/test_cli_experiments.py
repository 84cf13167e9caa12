"""``leadbot experiments report`` (issue 16, item 6), run as an operator would: a table per
experiment with the control first, the p-value and the verdict; ``--json``; ``--script``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from bot.cli import support
from bot.cli.chat import chat_command
from bot.cli.main import app
from scheduler.store.engine import create_engine, session_factory
from tests.support.experiments import Arm, seed_arms

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "tests" / "data" / "experiments"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    scripts = tmp_path / "scripts"
    shutil.copytree(ROOT / "dialogs" / "scripts", scripts)
    # The scripts name each experiment's control (the first variant declared).
    text = (ROOT / "tests" / "data" / "experiments" / "b2b_experiment.yaml").read_text("utf-8")
    (scripts / "b2b_experiment.yaml").write_text(text, "utf-8")
    return {
        "LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "LEADBOT_DIALOGS_DIR": str(scripts),
    }


async def seed(url: str) -> None:
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await seed_arms(sessions, [Arm("control", 200, 60, 20), Arm("short", 200, 70, 36)])
        await seed_arms(
            sessions,
            [Arm("a", 10, 2, 1), Arm("b", 10, 5, 4)],
            script_id="b2b_es",
            experiment="es-1",
        )
    finally:
        await engine.dispose()


@pytest.fixture
def seeded(env: dict[str, str]) -> dict[str, str]:
    import asyncio

    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    asyncio.run(seed(env["LEADBOT_DATABASE_URL"]))
    return env


def test_the_report_is_a_table_per_experiment_with_the_verdict(
    seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(support.console, "width", 160)  # a wide terminal: no wrapped cells
    result = runner.invoke(app, ["experiments", "report"], env=seeded)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "b2b_default · experiment greeting-test-1" in out
    assert "b2b_es · experiment es-1" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert re.search(r"│ 200 .*│ 60 .*│ 30\.0% .*│ 20 .*│ 10\.0%", rows["control (control)"])
    # 36/200 against 20/200: z = +2.31, p = 0.0211, significant.
    assert re.search(
        r"│ 200 .*│ 70 .*│ 35\.0% .*│ 36 .*│ 18\.0% .*│ \+2\.31 .*│ 0\.0211 .*│ yes", rows["short"]
    )
    assert re.search(r"│ no \(too small\)", rows["b"])
    assert "too few conversations for a reliable test" in out


def test_json_and_one_script(seeded: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["experiments", "report", "--script", "b2b_default", "--json"], env=seeded
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report["experiment"] == "greeting-test-1" and report["too_small"] is False
    control, short = report["arms"]
    assert (control["variant"], control["control"], control["booking_test"]) == (
        "control",
        True,
        None,
    )
    assert (short["assigned"], short["qualified"], short["booked"]) == (200, 70, 36)
    assert short["booking_rate"] == 0.18
    assert short["booking_test"]["p_value"] == pytest.approx(0.02113, abs=1e-4)
    assert short["booking_test"]["significant"] is True


def test_no_experiments_yet(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(app, ["experiments", "report", "--script", "nope"], env=env)
    assert result.exit_code == 0
    assert "no conversations in an experiment yet for nope" in result.output
    assert (
        json.loads(runner.invoke(app, ["experiments", "report", "--json"], env=env).output) == []
    )


# -- leadbot chat --variant ------------------------------------------------------------------


def chat(variant: str | None, *typed: str) -> str:
    buffer = io.StringIO()
    typing = iter(typed)

    def read(prompt: str) -> str:
        try:
            return next(typing)
        except StopIteration:
            raise EOFError from None

    with contextlib.suppress(typer.Exit):
        chat_command(
            "b2b_experiment",
            EXPERIMENTS,
            console=Console(file=buffer, width=120, color_system=None),
            read=read,
            variant=variant,
        )
    return buffer.getvalue()


def test_chat_plays_a_variant_and_refuses_an_unknown_one() -> None:
    short = chat("short", "/quit")
    assert "Four quick questions" in short and "What do you need help with?" in short
    control = chat(None, "/quit")
    assert "Four quick questions" not in control
    assert "What are you looking for help with?" in control
    assert "has no variant 'long' (control, short)" in chat("long")
