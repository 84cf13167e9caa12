"""``leadbot dialogs check`` and the terminal prospect simulator, driven with scripted input."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from bot.cli.chat import DEFAULT_DIALOGS_DIR, chat_command
from bot.cli.dialogs import dialogs_app
from dialogs.interpretation import Intent, Interpretation
from dialogs.script import Script
from dialogs.session import Session

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "data" / "scripts"
runner = CliRunner()


def lines(*typed: str) -> Callable[[str], str]:
    """An input function that types ``typed`` one line at a time, then hits EOF."""
    it: Iterator[str] = iter(typed)

    def read(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def ticking() -> Callable[[], datetime]:
    t = [datetime(2025, 3, 3, 9, 0, tzinfo=UTC)]

    def now() -> datetime:
        t[0] += timedelta(seconds=5)
        return t[0]

    return now


def chat(*typed: str, **kwargs: object) -> tuple[Session, str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    session = chat_command(
        console=console,
        read=lines(*typed),
        clock=ticking(),
        **kwargs,  # type: ignore[arg-type]
    )
    return session, buffer.getvalue()


# ---- dialogs check -------------------------------------------------------------------------


def test_check_passes_the_shipped_scripts() -> None:
    result = runner.invoke(dialogs_app, ["check", str(DEFAULT_DIALOGS_DIR)])
    assert result.exit_code == 0, result.output
    assert "3 scripts OK" in result.output


def test_check_prints_every_problem_and_fails(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "interpret.yaml").write_text("version: t\n", "utf-8")
    for name in ("duplicate_slot.yaml", "missing_outcome.yaml", "unknown_placeholder.yaml"):
        shutil.copy(BROKEN / name, tmp_path / name)
    result = runner.invoke(dialogs_app, ["check", str(tmp_path), "--prompts", str(prompts)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'duplicate_slot.yaml'}:26: questions.3.slot: duplicate slot" in (
        result.output
    )
    assert "missing_outcome.yaml:34: outcomes: missing outcome 'handoff'" in result.output
    assert "unknown_placeholder.yaml:35:" in result.output
    assert "scripts OK" not in result.output
    assert "3 problem(s)" in result.output


def test_check_names_a_missing_prompt(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    result = runner.invoke(
        dialogs_app, ["check", str(DEFAULT_DIALOGS_DIR), "--prompts", str(prompts)]
    )
    assert result.exit_code == 1
    assert "b2b_default.yaml:8: prompt: no prompt file interpret.yaml" in result.output


def test_check_refuses_a_bad_icp_file(tmp_path: Path) -> None:
    icp = tmp_path / "icp.yaml"
    icp.write_text("version: 1\nslots: nope\n", "utf-8")
    result = runner.invoke(dialogs_app, ["check", str(DEFAULT_DIALOGS_DIR), "--icp", str(icp)])
    assert result.exit_code == 1
    assert str(icp) in result.output


# ---- chat ----------------------------------------------------------------------------------


def test_a_full_chat_with_taps_typing_and_media() -> None:
    session, out = chat(
        "2",  # taps "Build something" in the list
        "about 200 people",
        "/media",
        "price?",
        "50k",
        "next week",
        calendly_url="https://calendly.com/acme/intro",
    )
    assert session.status == "qualified"
    assert "1. Strategy & consulting — Roadmaps, audits, advice" in out
    assert "Sorry, I can only read text here" in out
    assert "most start between 5k and 50k" in out
    assert "[Book a call] → https://calendly.com/acme/intro" in out
    assert "slot need = 'build'" in out
    # the end: a slots table and the qualification as JSON
    assert "Slots (qualified)" in out and "51–200 people" in out
    tail = out[out.rindex("{\n") :]
    assert json.loads(tail)["decision"] == "qualified"


def test_quit_leaves_early_and_shows_what_was_answered() -> None:
    session, out = chat("we need a website", "/quit", "never read")
    assert session.status == "active"
    assert session.slots["need"].value == "build"
    assert "No decision yet." in out


def test_eof_ends_the_chat() -> None:
    session, out = chat()
    assert session.open_slot == "need" and "Slots (active)" in out


def test_a_number_out_of_range_is_typed_text_not_a_tap() -> None:
    session, _ = chat("2", "40")  # the size list has 4 rows: "40" is forty people
    assert session.slots["company_size"].value == "11-50"


def test_stop_ends_the_chat() -> None:
    session, out = chat("stop")
    assert session.status == "opted_out"
    assert "won't hear from us again" in out


def test_timeout_nudges() -> None:
    _, out = chat("/timeout")
    assert "Still there?" in out or "No rush" in out


def test_the_given_interpreter_is_used() -> None:
    class Human:
        async def interpret(
            self, script: Script, session: Session, text: str, now: datetime
        ) -> Interpretation:
            return Interpretation(Intent.HUMAN)

    session, out = chat("anything", interpreter=Human())
    assert session.status == "handoff"
    assert "handed off" in out


def test_each_typed_line_is_a_turn_under_the_whatsapp_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chat and the WhatsApp processor share one turn policy (``dialogs.turn``): one turn
    of one event per line typed, and what that rule adds shows (the quiet follow-ups a
    WhatsApp turn that leaves a question open would schedule)."""
    import bot.cli.chat as chat_module
    from dialogs import turn as turn_module

    seen: list[list[object]] = []

    async def spy(
        script: Script, session: Session, events: list[object], *a: object, **kw: object
    ) -> turn_module.TurnResult:
        seen.append(list(events))
        return await turn_module.take_turn(script, session, events, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(chat_module, "take_turn", spy)
    session, out = chat("2", "about 200 people")
    assert [len(events) for events in seen] == [1, 1, 1]  # the start, then each line
    assert [type(events[0]).__name__ for events in seen] == [
        "Started",
        "ChoiceSelected",
        "TextReceived",
    ]
    assert session.slots["company_size"].value == "51-200"
    assert "follow-ups scheduled: whatsapp_quiet" in out


def test_spanish_script_and_markup_in_text_is_shown_verbatim() -> None:
    session, out = chat("[bold]hola[/bold] necesitamos una web", script="b2b_es")
    assert session.slots["need"].value == "build"
    assert "¿Cuántas personas trabajan en tu empresa?" in out


def test_unknown_script_or_broken_dir_exits_1(tmp_path: Path) -> None:
    with pytest.raises(typer.Exit) as caught:
        chat(script="nope")
    assert caught.value.exit_code == 1
    shutil.copy(BROKEN / "bad_yaml.yaml", tmp_path / "bad_yaml.yaml")
    with pytest.raises(typer.Exit):
        chat(dialogs_dir=tmp_path)


# ---- `leadbot chat`: links from the settings -------------------------------------------------

QUALIFIES = "2\nabout 200 people\n50k\nnext week\n"
DEFLECTED = "marketing\njust me\n500 dollars\nno rush\n"


def leadbot_chat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, typed: str, **env: str) -> str:
    """``leadbot chat`` as an operator runs it, with only ``env`` configured."""
    from bot.cli.main import app

    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in list(os.environ):
        if name.startswith(("LEADBOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    # A wide terminal: Rich wraps the panels at 80 columns otherwise.
    result = runner.invoke(app, ["chat"], input=typed, env={"COLUMNS": "300", **env})
    assert result.exit_code == 0, result.output
    return result.output


def test_chat_shows_the_configured_calendly_link(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = leadbot_chat(
        monkeypatch, tmp_path, QUALIFIES, LEADBOT_CALENDLY_URL="https://calendly.com/nw/intro"
    )
    assert "[Book a call] → https://calendly.com/nw/intro" in out
    assert "{calendly_url}" not in out


def test_chat_without_a_calendly_link_says_which_setting_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = leadbot_chat(monkeypatch, tmp_path, QUALIFIES)
    assert "[Book a call] → (no booking link: set LEADBOT_CALENDLY_URL)" in out
    assert "{calendly_url}" not in out


def test_chat_deflects_to_the_configured_resource(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    guide = "https://www.northwind.example/guides/start"
    out = leadbot_chat(monkeypatch, tmp_path, DEFLECTED, LEADBOT_RESOURCE_URL=guide)
    assert f"this guide should help: {guide}" in out
    unset = leadbot_chat(monkeypatch, tmp_path, DEFLECTED)
    assert "we'll keep you in mind" in unset and "guide" not in unset
