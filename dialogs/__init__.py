"""The conversation brain: script model, dialog engine, interpreters and ICP scoring.

Pure: nothing here does I/O except loading script files. The data types are imported eagerly;
the engine and loader load on first use (PEP 562) because the engine imports the interpreters,
which import this package's data types — an eager import here would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dialogs.actions import (
    Action,
    Button,
    CancelFollowUps,
    HandOff,
    NotifyRep,
    OptOut,
    Qualify,
    Row,
    ScheduleFollowUps,
    SendButtons,
    SendCtaUrl,
    SendList,
    SendText,
    SetSlot,
    SetStage,
)
from dialogs.events import (
    ChoiceSelected,
    Event,
    Started,
    TextReceived,
    TimedOut,
    UnsupportedMedia,
)
from dialogs.interpretation import Intent, Interpretation, Interpreter, SlotValue
from dialogs.script import AnswerKind, FaqEntry, Option, Outcome, Question, Script
from dialogs.session import Session, SessionVersionError, SlotRecord

if TYPE_CHECKING:
    from dialogs.engine import StepResult, step, summary
    from dialogs.loader import ScriptError, check_dir, load_script, load_scripts
    from dialogs.yaml_source import Problem

_LAZY = {
    "StepResult": "dialogs.engine",
    "step": "dialogs.engine",
    "summary": "dialogs.engine",
    "Problem": "dialogs.yaml_source",
    "ScriptError": "dialogs.loader",
    "check_dir": "dialogs.loader",
    "load_script": "dialogs.loader",
    "load_scripts": "dialogs.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dialogs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Action",
    "AnswerKind",
    "Button",
    "CancelFollowUps",
    "ChoiceSelected",
    "Event",
    "FaqEntry",
    "HandOff",
    "Intent",
    "Interpretation",
    "Interpreter",
    "NotifyRep",
    "OptOut",
    "Option",
    "Outcome",
    "Problem",
    "Qualify",
    "Question",
    "Row",
    "ScheduleFollowUps",
    "Script",
    "ScriptError",
    "SendButtons",
    "SendCtaUrl",
    "SendList",
    "SendText",
    "Session",
    "SessionVersionError",
    "SetSlot",
    "SetStage",
    "SlotRecord",
    "SlotValue",
    "Started",
    "StepResult",
    "TextReceived",
    "TimedOut",
    "UnsupportedMedia",
    "check_dir",
    "load_script",
    "load_scripts",
    "step",
    "summary",
]
