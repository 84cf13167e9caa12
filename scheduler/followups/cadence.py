"""Follow-up cadences as a file: which touches a lead gets, when, on which channel.

``LEADBOT_CADENCE_FILE`` (default ``scheduler/followups/cadences/default.yaml``) holds named
sequences of steps. A step's ``offset`` counts from the moment the sequence starts (``0``, ``30s``,
``5m``, ``2h``, ``1d``, ``2w``), so the same file runs over two weeks in production and over
seconds in a demo. Quiet hours and business days are applied in the lead's own time zone
(:mod:`scheduler.followups.timing`).

Admins edit the file by hand, so a bad one is refused at load time with file, line and
reason for every problem, like dialog scripts are.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from dialogs.errors import ConfigError, FileFormatError
from dialogs.yaml_source import Problem, YamlError, load_yaml
from scheduler.followups.templates import template_problem

Purpose = Literal[
    "first_reply",
    "personal_follow_up",
    "value_nudge",
    "soft_check_in",
    "final_touch",
    "reactivation",
    "rebook",
    "conversation_nudge",
]
ChannelName = Literal["email", "whatsapp"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_OFFSET = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 0}
_ID = r"^[a-z0-9_]+$"


def parse_offset(value: object) -> timedelta:
    """``"3d"`` → 3 days. Units: s, m, h, d, w; a bare ``0`` means now."""
    if isinstance(value, timedelta):
        return value
    match = _OFFSET.match(str(value))
    if match is None:
        raise ValueError(f"expected a duration such as 0, 30s, 5m, 2h, 3d or 2w, got {value!r}")
    amount, unit = int(match[1]), match[2]
    if unit == "" and amount != 0:
        raise ValueError(f"a duration needs a unit (s, m, h, d, w): {value!r}")
    return timedelta(seconds=amount * _UNITS[unit])


def format_offset(offset: timedelta) -> str:
    """The shortest spelling of ``offset`` in the file's units (``3d``, ``90m``, ``0``)."""
    seconds = int(offset.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s" if seconds else "0"


def _parse_clock(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads 20:00 as a sexagesimal integer (1200)
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = re.match(r"^(\d{1,2}):(\d{2})$", str(value).strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"expected a time of day HH:MM, got {value!r}")
    return time(int(match[1]), int(match[2]))


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]
Clock = Annotated[time, BeforeValidator(_parse_clock)]


class _Model(BaseModel):
    # Typos in an admin-edited file must fail loudly rather than be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Model):
    """One touch of a sequence."""

    id: str = Field(pattern=_ID, max_length=50)
    offset: Offset
    channel: ChannelName
    purpose: Purpose
    # True: a rep approves every draft; "hot": only when the lead's qualification tier is hot.
    approval: bool | Literal["hot"] = False
    template: str = Field(min_length=1)
    subject: str | None = None  # email subject (Jinja2), the sender's default when absent
    # A first reply to someone who just wrote goes out at once, even at night.
    respect_quiet_hours: bool = True
    # The latest offset quiet hours may push the step to (a WhatsApp nudge must stay inside
    # the 24-hour window): past it, the step goes at its plain offset. None: no limit.
    deadline: Offset | None = None


class Sequence(_Model):
    """Steps in order of their offsets; the lead goes dormant ``after_last`` the last one."""

    description: str = ""
    steps: list[Step] = Field(min_length=1)
    after_last: Offset | None = timedelta(days=14)
    # Started by the reactivation job for leads dormant at least this long.
    start_when_dormant_for: Offset | None = None
    # Started anew (the next cycle) each time it is started, e.g. after every bot reply to
    # a conversation that is not finished; otherwise starting it twice is a no-op.
    repeat: bool = False


class QuietHours(_Model):
    """No touches between ``start`` and ``end`` (local time; may wrap past midnight)."""

    enabled: bool = True
    start: Clock = time(20, 0)
    end: Clock = time(8, 0)


class BusinessDays(_Model):
    """Touches only on these weekdays (local time)."""

    enabled: bool = True
    days: list[Weekday] = Field(default=["mon", "tue", "wed", "thu", "fri"], min_length=1)


class Sender(_Model):
    """Who the follow-ups are from, as templates and prompts name them.

    Empty fields mean "not said": the operator's settings (``LEADBOT_COMPANY_NAME``,
    ``LEADBOT_SENDER_NAME``, ``LEADBOT_EMAIL_SIGNATURE``) fill them (:func:`with_sender`), and
    what is still empty reads neutrally (:meth:`template_values`).
    """

    company: str = ""
    name: str = ""
    signature: str = ""  # the closing lines of an email; empty: built from name and company
    default_subject: str = "Following up"

    def template_values(self, channel: ChannelName = "email") -> dict[str, str]:
        """``sender.*`` as a template for ``channel`` sees it: never empty where prose needs
        a word. ``signature`` is the configured one in emails; on WhatsApp (and when none is
        configured) the short "<name>, <company>"."""
        company, name = self.company.strip(), self.name.strip()
        if channel == "email" and self.signature.strip():
            signature = self.signature.strip()
        elif name:
            signature = f"{name}, {company}" if company else name
        else:
            signature = f"The {company} team" if company else "The team"
        return {
            "company": company or NEUTRAL_COMPANY,
            "name": name,
            "signature": signature,
            "default_subject": self.default_subject,
        }


# What an unnamed company is called in prose ("Thanks for reaching out to our team").
NEUTRAL_COMPANY = "our team"


class Cadence(_Model):
    """A whole cadence file. ``path`` and ``default_timezone`` are set by the loader."""

    version: str = Field(min_length=1)
    sender: Sender = Sender()
    quiet_hours: QuietHours = QuietHours()
    business_days: BusinessDays = BusinessDays()
    # URLs a draft may contain besides the Calendly and public URL from the settings.
    resources: dict[str, str] = {}
    # Price strings a draft may mention verbatim; any other price is filtered out.
    allowed_prices: list[str] = []
    max_length: dict[ChannelName, int] = {"email": 1500, "whatsapp": 700}
    sequences: dict[str, Sequence] = Field(min_length=1)
    path: Path = Path(".")
    default_timezone: str = "UTC"

    @property
    def templates_dir(self) -> Path:
        """Templates live beside the cadence file."""
        return self.path.parent / "templates"

    def sequence(self, name: str) -> Sequence:
        """The named sequence; :class:`UnknownSequenceError` lists the known ones."""
        try:
            return self.sequences[name]
        except KeyError:
            known = ", ".join(sorted(self.sequences))
            raise UnknownSequenceError(
                f"no sequence {name!r} in {self.path}; known: {known}"
            ) from None

    def step(self, sequence: str, step_id: str) -> Step | None:
        """The step of ``sequence`` with ``step_id`` (None if the file no longer has it)."""
        seq = self.sequences.get(sequence)
        return None if seq is None else next((s for s in seq.steps if s.id == step_id), None)


class UnknownSequenceError(ConfigError, KeyError):
    """``start_sequence`` was asked for a sequence the cadence file does not define."""

    def __str__(self) -> str:
        return str(self.args[0])


class CadenceError(FileFormatError):
    """The cadence file is invalid; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_cadence(path: Path | str, *, default_timezone: str = "UTC") -> Cadence:
    """Read and validate a cadence file and its templates; :class:`CadenceError` otherwise."""
    path = Path(path)
    try:
        doc = load_yaml(path, expected="a mapping with version and sequences")
    except YamlError as exc:
        raise CadenceError(exc.problems) from None
    problems = list(doc.duplicates)
    try:
        cadence = Cadence.model_validate(
            {**doc.data, "path": path, "default_timezone": default_timezone}
        )
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "<cadence>"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(doc.problem(loc, f"{where}: {message}"))
        raise CadenceError(problems) from None
    for loc, message in _semantic_issues(cadence):
        where = ".".join(str(p) for p in loc)
        problems.append(doc.problem(loc, f"{where}: {message}"))
    if problems:
        raise CadenceError(problems)
    return cadence


def with_sender(
    cadence: Cadence, *, company: str = "", name: str = "", signature: str = ""
) -> Cadence:
    """``cadence`` with the operator's sender settings filling what its own ``sender`` block
    leaves unsaid (a cadence file that names its sender keeps it)."""
    given = {key for key, value in cadence.sender.model_dump().items() if value}
    update = {
        key: value.strip()
        for key, value in (("company", company), ("name", name), ("signature", signature))
        if value.strip() and key not in given
    }
    if not update:
        return cadence
    return cadence.model_copy(update={"sender": cadence.sender.model_copy(update=update)})


def _semantic_issues(cadence: Cadence) -> list[tuple[tuple[str | int, ...], str]]:
    sender = cadence.sender.template_values()
    out: list[tuple[tuple[str | int, ...], str]] = []
    for name, seq in cadence.sequences.items():
        if not re.match(_ID, name):
            out.append((("sequences", name), "sequence names are lower_snake_case"))
        seen: set[str] = set()
        previous: timedelta | None = None
        for i, step in enumerate(seq.steps):
            loc: tuple[str | int, ...] = ("sequences", name, "steps", i)
            if step.id in seen:
                out.append(((*loc, "id"), f"duplicate step id {step.id!r}"))
            seen.add(step.id)
            if previous is not None and step.offset <= previous:
                out.append(((*loc, "offset"), "offsets must increase from step to step"))
            previous = step.offset
            if step.deadline is not None and step.deadline < step.offset:
                out.append(((*loc, "deadline"), "the deadline cannot come before the offset"))
            problem = template_problem(
                cadence.templates_dir, step.template, sender=sender, resources=cadence.resources
            )
            if problem:
                out.append(((*loc, "template"), problem))
    for key, url in cadence.resources.items():
        if not url.startswith("https://") and not url.startswith("http://"):
            out.append((("resources", key), f"not an http(s) URL: {url!r}"))
    return out


__all__ = [
    "WEEKDAYS",
    "Cadence",
    "CadenceError",
    "Problem",
    "Sequence",
    "Step",
    "UnknownSequenceError",
    "format_offset",
    "load_cadence",
    "parse_offset",
    "with_sender",
]
