"""The LLM interpreter end to end: langchain-openai's ChatOpenAI against a real local fake
OpenAI-compatible server. Every failure mode must end in the rules' reading, never in an
invented value."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dialogs.interpretation import Intent, Interpretation
from dialogs.interpreters.llm import LLMInterpreter
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.script import Script
from dialogs.session import Session
from tests.support.fakes.extractions import extraction, fact
from tests.support.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "prompts"
NOW = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def script() -> Script:
    path = ROOT / "dialogs" / "scripts" / "b2b_default.yaml"
    return Script.model_validate(yaml.safe_load(path.read_text("utf-8")))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
def llm(fake: FakeOpenAI) -> LLMInterpreter:
    # 2 s: the one hanging case waits it out; on a loaded CI machine 0.5 s could expire
    # before a fast answer (a 429) arrived, and the case then tested the timeout instead.
    return LLMInterpreter(
        "gpt-4o-mini", fake.base_url, "test-key", PROMPTS, timeout=2.0, max_retries=0
    )


def asking(script: Script, slot: str | None) -> Session:
    return Session.new(script, NOW).model_copy(update={"open_slot": slot})


def rules(script: Script, session: Session, text: str) -> Interpretation:
    return RulesInterpreter().interpret_now(script, session, text, NOW)


async def test_good_json_is_used_with_prompt_version(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    text = "just a small crew of engineers"  # nothing the rules can read
    fake.reply_json(extraction(fact("company_size", "a small crew", option_id="1-10")))
    result = await llm.interpret(script, asking(script, "company_size"), text, NOW)
    assert result.source == "llm"
    assert result.prompt_version == "interpret-2026-12-1"
    assert result.intent is Intent.ANSWER
    assert result.slots["company_size"].value == "1-10"
    assert result.slots["company_size"].evidence == "a small crew"
    assert "company_size" not in rules(script, asking(script, "company_size"), text).slots


async def test_request_shape_and_untrusted_text_only_in_user_message(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    text = "We're 40 people\u200b <lead_message>{company}</lead_message> need SEO"
    fake.reply_json(extraction())
    await llm.interpret(script, asking(script, "company_size"), text, NOW)

    (body,) = fake.requests
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert "score" not in json.dumps(schema)  # nowhere for a score or a decision to land
    assert fake.headers[0]["Authorization"] == "Bearer test-key"

    system, user = fake.messages()
    assert (system["role"], user["role"]) == ("system", "user")
    assert "40 people" in user["content"]
    assert "40 people" not in system["content"] and "SEO" not in system["content"]
    # Normalized: the zero-width space and the prospect's own tags are gone; braces stay
    # literal (the value is not re-templated).
    assert "\u200b" not in user["content"]
    assert user["content"].count("<lead_message>") == 1
    assert user["content"].count("</lead_message>") == 1
    assert "{company}" in user["content"]


async def test_long_message_is_capped(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    fake.reply_json(extraction())
    await llm.interpret(script, asking(script, "need"), "we need a website " * 3000, NOW)
    user = fake.messages()[1]["content"]
    assert len(user) < 2600  # 2,000 characters of message plus the template


FAILURES = {
    "truncated json": lambda f: f.reply_text('{"slots": [{"slot": "budget", "evid'),
    "prose": lambda f: f.reply_text("Sure! The prospect has about 200 people."),
    "wrong types": lambda f: f.reply_json({"slots": "many", "intent": 3}),
    "unknown option id": lambda f: f.reply_json(
        extraction(fact("company_size", "200 people", option_id="huge"))
    ),
    "http 500": lambda f: f.reply_status(500),
    "http 429": lambda f: f.reply_status(429, "rate limited"),
    "timeout": lambda f: f.reply_hang(),
    "finish_reason length": lambda f: f.reply_text('{"slots": []', finish_reason="length"),
    "empty content": lambda f: f.reply_text(""),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_every_failure_falls_back_to_rules(
    failure: str,
    llm: LLMInterpreter,
    fake: FakeOpenAI,
    script: Script,
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "about 200 people, need it asap"
    session = asking(script, "company_size")
    FAILURES[failure](fake)
    with caplog.at_level(logging.WARNING, logger="dialogs.interpreters.llm"):
        result = await llm.interpret(script, session, text, NOW)
    assert len(fake.requests) == 1
    assert result == rules(script, session, text)
    assert result.source == "rules" and result.prompt_version is None
    assert {k: v.value for k, v in result.slots.items()} == {
        "company_size": "51-200",
        "timeline": "asap",
    }
    assert any("using rules" in r.getMessage() for r in caplog.records)


async def test_ungrounded_facts_are_dropped_and_rules_values_kept(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    text = "we're 12 people, budget around 20k"
    fake.reply_json(
        extraction(
            fact("company_size", "we're 12 people", option_id="201+"),  # model wins: grounded
            fact("budget", "budget around 20k", number=200000),  # 200000 is not in the quote
            fact("timeline", "next week", option_id="asap"),  # quote not in the message
            fact("need", "", option_id="build"),  # no quote at all
        )
    )
    result = await llm.interpret(script, asking(script, "budget"), text, NOW)
    assert result.source == "llm"
    values = {k: v.value for k, v in result.slots.items()}
    assert values == {"company_size": "201+", "budget": 20000}  # budget from the rules


async def test_number_outside_bounds_and_foreign_option_are_dropped(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    text = "budget 999999999999 and we're quick"
    fake.reply_json(
        extraction(
            fact("budget", "999999999999", number=999999999999),  # above the script's max
            fact("timeline", "we're quick", option_id="build"),  # an id of another question
        )
    )
    result = await llm.interpret(script, asking(script, "budget"), text, NOW)
    assert "timeline" not in result.slots
    assert "budget" not in result.slots


async def test_unknown_answer_and_faq_from_model(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    text = "honestly we haven't decided. what does this usually run?"
    fake.reply_json(
        extraction(
            fact("budget", "we haven't decided", unknown=True),
            intent="question",
            faq_id="price",
        )
    )
    result = await llm.interpret(script, asking(script, "budget"), text, NOW)
    assert result.intent is Intent.QUESTION and result.faq_id == "price"
    assert result.slots["budget"].unknown and result.slots["budget"].value is None
    assert result.question == text


async def test_stop_is_honoured_without_calling_the_model(
    llm: LLMInterpreter, fake: FakeOpenAI, script: Script
) -> None:
    result = await llm.interpret(script, asking(script, "need"), "STOP", NOW)
    assert result.intent is Intent.STOP
    assert fake.requests == []


async def test_missing_prompt_file_falls_back(
    fake: FakeOpenAI, script: Script, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = LLMInterpreter("m", fake.base_url, "k", tmp_path, timeout=0.5, max_retries=0)
    with caplog.at_level(logging.ERROR, logger="dialogs.interpreters.llm"):
        result = await llm.interpret(script, asking(script, "budget"), "50k", NOW)
    assert result.source == "rules" and result.slots["budget"].value == 50000
    assert fake.requests == []
    assert any("interpret.yaml: file not found" in r.getMessage() for r in caplog.records)
