"""``leadbot chat``: tune a dialog script from the terminal.

``chat`` lets you play the prospect against a script: the bot's replies appear in a panel,
buttons and lists as numbered choices (type the number to tap one), ``/media`` sends an
image the bot cannot read, ``/timeout`` simulates going quiet, ``/quit`` leaves. At the end
it shows the slots and the qualification.

The commands themselves are in :mod:`bot.cli.dialogs`, which imports this module only when
``leadbot chat`` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

import dialogs
from dialogs.actions import (
    CALENDLY_PLACEHOLDER,
    Action,
    Button,
    Row,
    SendButtons,
    SendCtaUrl,
    SendList,
    SendText,
)
from dialogs.events import (
    ChoiceSelected,
    Event,
    Started,
    TextReceived,
    TimedOut,
    UnsupportedMedia,
)
from dialogs.experiments import variant_script
from dialogs.icp import Icp, IcpError, load_icp
from dialogs.interpretation import Interpreter
from dialogs.loader import ScriptError, load_scripts
from dialogs.render import describe, note
from dialogs.script import Script
from dialogs.session import Session
from dialogs.turn import take_turn

DEFAULT_DIALOGS_DIR = Path(dialogs.__file__).resolve().parent / "scripts"
DEFAULT_ICP_FILE = Path(dialogs.__file__).resolve().parent / "icp" / "default.yaml"
# Shown for the booking link when LEADBOT_CALENDLY_URL is unset (never the raw placeholder).
NO_CALENDLY_URL = "(no booking link: set LEADBOT_CALENDLY_URL)"


def chat_command(
    script: str = "b2b_default",
    dialogs_dir: Path = DEFAULT_DIALOGS_DIR,
    icp_file: Path = DEFAULT_ICP_FILE,
    *,
    interpreter: Interpreter | None = None,
    console: Console | None = None,
    read: Callable[[str], str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    calendly_url: str | None = None,
    resource_url: str = "",
    name: str | None = None,
    variant: str | None = None,
) -> Session:
    """Play the prospect against ``script`` in the terminal; return the final session.

    :param interpreter: turns typed text into answers; the rules interpreter by default
        (the caller passes the LLM interpreter when one is configured).
    :param console: where the conversation is drawn (injectable for tests).
    :param read: reads one line of input, given a prompt (``input`` by default).
    :param calendly_url: shown in place of the ``{calendly_url}`` the engine leaves
        (:data:`NO_CALENDLY_URL` when None).
    :param resource_url: the deflection link of scripts that name none
        (``LEADBOT_RESOURCE_URL``).
    :param variant: play this A/B variant of the script's experiment (its texts).
    :raises typer.Exit: the scripts, the ICP, the script id or the variant are unusable.
    """
    out = console or Console()
    try:
        scripts = load_scripts(dialogs_dir, resource_url=resource_url)
        profile = load_icp(icp_file)
    except (ScriptError, IcpError) as exc:
        out.print(Text(str(exc), style="red"))
        raise typer.Exit(1) from None
    if script not in scripts:
        out.print(Text(f"no script {script!r} in {dialogs_dir} ({', '.join(scripts)})"))
        raise typer.Exit(1)
    chosen = scripts[script]
    if variant is not None:
        experiment = chosen.experiment
        if experiment is None or variant not in experiment.variants:
            known = ", ".join(experiment.variants) if experiment else "it runs no experiment"
            out.print(Text(f"script {script!r} has no variant {variant!r} ({known})"))
            raise typer.Exit(1)
        chosen = variant_script(chosen, variant)
    if interpreter is None:
        from dialogs.interpreters.rules import RulesInterpreter

        interpreter = RulesInterpreter()
    sim = _Simulator(
        chosen,
        icp=profile,
        interpreter=interpreter,
        out=out,
        clock=clock,
        calendly_url=calendly_url,
    )
    return asyncio.run(sim.run(read or input, name))


class _Simulator:
    """The chat loop: one turn per line typed."""

    def __init__(
        self,
        script: Script,
        *,
        icp: Icp,
        interpreter: Interpreter,
        out: Console,
        clock: Callable[[], datetime],
        calendly_url: str | None,
    ) -> None:
        self.script = script
        self.icp = icp
        self.interpreter = interpreter
        self.out = out
        self.clock = clock
        self.calendly_url = calendly_url
        self.choices: tuple[Button | Row, ...] = ()

    async def run(self, read: Callable[[str], str], name: str | None) -> Session:
        self.out.print(
            Text(
                f"Chatting with {self.script.id} v{self.script.version}. Type a number to "
                "tap a choice, /media to send a photo, /timeout to go quiet, /quit to leave.",
                style="dim",
            )
        )
        session = await self._turn(Session.new(self.script, self.clock(), name=name), Started())
        while session.status == "active":
            try:
                line = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line == "/quit":
                break
            session = await self._turn(session, self._event(line))
        self._report(session)
        return session

    def _event(self, line: str) -> Event:
        if line == "/media":
            return UnsupportedMedia("image")
        if line == "/timeout":
            return TimedOut()
        if line.isdigit() and 1 <= int(line) <= len(self.choices):
            return ChoiceSelected(self.choices[int(line) - 1].id)
        return TextReceived(line)  # interpreted by the turn, with self.interpreter

    async def _turn(self, session: Session, event: Event) -> Session:
        """One typed line is one turn of one event, under the rule WhatsApp turns follow
        (:func:`dialogs.turn.take_turn`: one reply, the quiet follow-ups it would schedule)."""
        result = await take_turn(
            self.script, session, [event], self.interpreter, self.clock(), icp=self.icp
        )
        for action in result.actions:
            self._show(action)
        return result.session

    def _show(self, action: Action) -> None:
        match action:
            case SendText(text):
                self._panel(Text(self._filled(text)))
            case SendButtons(body, buttons):
                self._panel(Text(self._filled(body)), buttons)
            case SendList(body, button_title, rows):
                self._panel(Text(self._filled(body)), rows, f"[{button_title}]")
            case SendCtaUrl(body, title, url):
                link = Text(f"[{title}] → {self._filled(url)}", style="bold underline")
                self._panel(Group(Text(self._filled(body)), Text(""), link))
            case _:
                self.out.print(Text(f"  · {note(action)}", style="dim"))

    def _filled(self, text: str) -> str:
        """``text`` with the engine's ``{calendly_url}`` replaced by the configured link."""
        return text.replace(CALENDLY_PLACEHOLDER, self.calendly_url or NO_CALENDLY_URL)

    def _panel(
        self, body: Text | Group, choices: tuple[Button | Row, ...] = (), label: str = ""
    ) -> None:
        self.choices = choices
        parts: list[Text | Group] = [body]
        if choices:
            parts.append(Text(label) if label else Text(""))
            for i, c in enumerate(choices, 1):
                extra = f" — {c.description}" if isinstance(c, Row) and c.description else ""
                parts.append(Text(f"  {i}. {c.title}{extra}"))
        self.out.print(Panel(Group(*parts), title="bot", title_align="left", expand=False))

    def _report(self, session: Session) -> None:
        table = Table(title=f"Slots ({session.status})")
        for column in ("slot", "answer", "evidence"):
            table.add_column(column)
        for q in self.script.questions:
            record = session.slots.get(q.slot)
            if record is None:
                table.add_row(q.slot, Text("—", style="dim"), "")
            else:
                table.add_row(q.slot, Text(describe(q, record)), Text(record.evidence))
        self.out.print(table)
        if session.qualification is None:
            self.out.print(Text("No decision yet.", style="dim"))
        else:
            self.out.print_json(data=session.qualification)
